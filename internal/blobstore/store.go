// Package blobstore wraps gocloud.dev/blob: it is the only place that knows
// storage URLs, and it turns one URL into a streaming, private object store.
// S3 writes bypass gocloud's writer to bound memory and to abort reliably
// (see s3Writer); everything else goes through gocloud.
//
// Supported URLs (see Open):
//
//	file:///var/lib/chatvault/media
//	s3://bucket?region=eu-west-1
//	s3://bucket?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true
//	gs://bucket
//	azblob://container
//
// For file URLs, Open adds create_dir (the folder is made if missing) and
// no_tmp_dir (in-flight writes live next to their final path, so the commit
// is an atomic rename on the same filesystem rather than a copy out of
// os.TempDir, which is often a small tmpfs).
//
// For S3-compatible servers (MinIO, versitygw, Ceph, R2, ...) these query
// parameters of gocloud v0.47 matter: endpoint (a full URL; an http://
// endpoint is used as given), region, use_path_style=true (self-hosted
// servers rarely route bucket subdomains), hostname_immutable=true (the SDK
// leaves the endpoint's host alone), disable_https=true (plain HTTP to the
// SDK's own endpoints; not needed with an http:// endpoint) and
// request_checksum_calculation=when_required (for servers that reject the
// SDK's default CRC32 checksums). Also accepted: anonymous, profile, role,
// accelerate, dualstack, fips, ssetype and kmskeyid; any other parameter
// fails Open. Credentials come from the AWS default chain
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an instance
// role), never from the URL.
//
// Buckets are never made public: the store creates no bucket and sets no
// ACL or policy on anything. Clients reach media only through the API or
// its signed, expiring URLs.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	// Registered so that every production storage URL opens.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/chatvault/chatvault/internal/apperr"
)

// Defaults sized so that many concurrent archive passes fit in a small heap:
// an S3 writer holds at most PartSize × UploadConcurrency bytes, and 5 MiB
// is the smallest part S3 accepts. Eight writers at the defaults hold 40 MiB.
const (
	DefaultPartSize          = 5 << 20
	DefaultUploadConcurrency = 1
	DefaultSmallLimit        = 4 << 20
)

// Store is an object store opened from one storage URL. It is safe for
// concurrent use.
type Store struct {
	bucket      *blob.Bucket
	isFile      bool
	partSize    int
	concurrency int
	smallLimit  int64

	// Set for s3:// URLs, whose writes bypass gocloud (see s3Writer).
	s3       *s3.Client
	s3Bucket string
	parts    sync.Pool // *[]byte part buffers shared by this store's S3 writers

	fileRoot string // set for file:// URLs, whose writes bypass gocloud (see fileWriter)
}

// Option tunes a Store.
type Option func(*Store)

// WithPartSize sets the multipart part size (S3) or upload chunk size (GCS,
// Azure): what one writer buffers per part. Values under 5 MiB are raised
// to 5 MiB because S3 rejects smaller parts.
func WithPartSize(n int) Option {
	return func(s *Store) { s.partSize = max(n, 5<<20) }
}

// WithUploadConcurrency sets how many parts of one object may upload at
// once. At 1 a writer uploads a full part before it accepts more bytes; at
// 2 it fills one part while the previous uploads, for twice the memory.
func WithUploadConcurrency(n int) Option {
	return func(s *Store) { s.concurrency = max(n, 1) }
}

// WithSmallLimit sets the most bytes PutSmall writes and GetSmall reads.
func WithSmallLimit(n int64) Option {
	return func(s *Store) { s.smallLimit = max(n, 1) }
}

// Open opens the bucket named by storageURL. It does not contact the
// bucket; call Ping for that.
func Open(ctx context.Context, storageURL string, opts ...Option) (*Store, error) {
	u, err := url.Parse(storageURL)
	if err != nil {
		return nil, fmt.Errorf("blobstore: storage URL: %w", err)
	}
	isFile := u.Scheme == "file"
	if isFile {
		q := u.Query()
		for _, k := range []string{"create_dir", "no_tmp_dir"} {
			if q.Get(k) == "" {
				q.Set(k, "true")
			}
		}
		u.RawQuery = q.Encode()
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		// The URL may carry secrets (a SAS token, say), so name only its scheme.
		return nil, fmt.Errorf("blobstore: open %s:// bucket: %w", u.Scheme, err)
	}
	s := &Store{
		bucket:      b,
		isFile:      isFile,
		partSize:    DefaultPartSize,
		concurrency: DefaultUploadConcurrency,
		smallLimit:  DefaultSmallLimit,
	}
	for _, o := range opts {
		o(s)
	}
	if isFile {
		s.fileRoot = filepath.FromSlash(u.Path)
	}
	var c *s3.Client
	if b.As(&c) {
		s.s3, s.s3Bucket = c, u.Host
	}
	return s, nil
}

// Close releases the bucket. In-flight readers and writers must be closed first.
func (s *Store) Close() error { return s.bucket.Close() }

// Ping reports whether the bucket is reachable and exists, for readiness
// checks. Its errors are apperr.Unavailable.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.bucket.IsAccessible(ctx)
	if err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "object storage is unreachable")
	}
	if !ok {
		return apperr.New(apperr.Unavailable, "object storage bucket does not exist")
	}
	return nil
}

// NewWriter streams an object to key. Nothing is visible under key until
// Close returns nil. Cancelling ctx before Close aborts the write: a
// multipart upload is aborted and a file's temporary is removed. Close must
// be called either way. An empty contentType is sniffed from the first
// bytes.
func (s *Store) NewWriter(ctx context.Context, key, contentType string) (io.WriteCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	ct, err := normalizeType(contentType)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	wr := &writer{ctx: ctx, cancel: cancel, s: s, key: key}
	if s.s3 != nil {
		wr.w = s.newS3Writer(ctx, key, ct)
		return wr, nil
	}
	if s.fileRoot != "" {
		fw, err := s.newFileWriter(ctx, key, ct)
		if err != nil {
			cancel()
			return nil, s.wrap("write", key, err)
		}
		wr.w = fw
		return wr, nil
	}
	w, err := s.bucket.NewWriter(ctx, key, &blob.WriterOptions{
		ContentType:    ct,
		BufferSize:     s.partSize,
		MaxConcurrency: s.concurrency,
	})
	if err != nil {
		cancel()
		return nil, s.wrap("write", key, err)
	}
	wr.w = w
	return wr, nil
}

// normalizeType canonicalises a MIME type the way gocloud does, so every
// backend stores the same string and a malformed type fails before any
// byte is sent.
func normalizeType(contentType string) (string, error) {
	if contentType == "" {
		return "", nil
	}
	t, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", apperr.Wrap(apperr.Invalid, err, "invalid content type")
	}
	return mime.FormatMediaType(t, params), nil
}

// writer gives every backend the same failure rule: once a Write or
// ReadFrom fails (ctx cancelled, storage error, or the source failing under
// io.Copy), the writer is spent and Close aborts. Without it a caller that
// closes after an error would commit whatever had been buffered: a
// truncated object under the real key.
type writer struct {
	w interface {
		io.WriteCloser
		io.ReaderFrom
	}
	ctx    context.Context
	cancel context.CancelFunc // cancelling aborts the underlying write
	s      *Store
	key    string
	err    error // the first failure; Close returns it
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		return 0, w.fail(err)
	}
	n, err := w.w.Write(p)
	if err != nil {
		return n, w.fail(err)
	}
	return n, nil
}

// ReadFrom lets io.Copy skip its own 32 KiB buffer.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.ReadFrom(r)
	if err != nil {
		return n, w.fail(err)
	}
	return n, nil
}

func (w *writer) fail(err error) error {
	w.err = w.s.wrap("write", w.key, err)
	return w.err
}

func (w *writer) Close() error {
	defer w.cancel()
	if w.err != nil {
		w.cancel()
		_ = w.w.Close()
		return w.err
	}
	if err := w.w.Close(); err != nil {
		return w.s.wrap("write", w.key, err)
	}
	return nil
}

// NewRangeReader reads length bytes of key from offset; length -1 reads to
// the end. A missing key is apperr.NotFound.
func (s *Store) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, apperr.New(apperr.Invalid, "negative range offset")
	}
	if length < 0 {
		length = -1
	}
	r, err := s.bucket.NewRangeReader(ctx, key, offset, length, s.readOpts())
	if err != nil {
		return nil, s.wrap("read", key, err)
	}
	return r, nil
}

// readOpts quiets the SDK's warning that it skipped checksum validation
// on a multipart object, which it logs to stderr on every such read: every
// large medium is multipart, and the archiver checks each medium's sha256
// end to end anyway.
func (s *Store) readOpts() *blob.ReaderOptions {
	if s.s3 == nil {
		return nil
	}
	return &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var opts *[]func(*s3.Options)
		if as(&opts) {
			*opts = append(*opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
		}
		return nil
	}}
}

// PutSmall writes a small object. It refuses data over the small limit so
// that GetSmall can always read back what was put.
func (s *Store) PutSmall(ctx context.Context, key string, data []byte, contentType string) error {
	if int64(len(data)) > s.smallLimit {
		return fmt.Errorf("blobstore: put %q: %d bytes is over the %d-byte small-object limit", key, len(data), s.smallLimit)
	}
	w, err := s.NewWriter(ctx, key, contentType)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// GetSmall reads a whole small object. A missing key is apperr.NotFound; an
// object over the small limit is an error rather than an unbounded read.
func (s *Store) GetSmall(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r, err := s.bucket.NewReader(ctx, key, s.readOpts())
	if err != nil {
		return nil, s.wrap("read", key, err)
	}
	defer r.Close()
	if r.Size() > s.smallLimit {
		return nil, fmt.Errorf("blobstore: get %q: %d bytes is over the %d-byte small-object limit", key, r.Size(), s.smallLimit)
	}
	// The size check trusts the server; the limited read does not.
	data, err := io.ReadAll(io.LimitReader(r, s.smallLimit+1))
	if err != nil {
		return nil, s.wrap("read", key, err)
	}
	if int64(len(data)) > s.smallLimit {
		return nil, fmt.Errorf("blobstore: get %q: over the %d-byte small-object limit", key, s.smallLimit)
	}
	return data, nil
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Size        int64
	ContentType string
	ModTime     time.Time
}

// Stat describes key. A missing key is apperr.NotFound.
func (s *Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return ObjectInfo{}, s.wrap("stat", key, err)
	}
	return ObjectInfo{Size: a.Size, ContentType: a.ContentType, ModTime: a.ModTime}, nil
}

// Size returns the size of key in bytes. A missing key is apperr.NotFound.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	info, err := s.Stat(ctx, key)
	return info.Size, err
}

// Delete removes key. A missing key is not an error, so retried deletes
// succeed.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := s.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return s.wrap("delete", key, err)
	}
	return nil
}

// fileTemp matches fileblob's in-flight temporaries ("<key>.<hex ns>.tmp"),
// which no_tmp_dir puts beside real objects and which a crash can leave.
var fileTemp = regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)

// List calls fn for every key under prefix, in lexical order, and stops at
// fn's first error, which it returns unchanged.
func (s *Store) List(ctx context.Context, prefix string, fn func(key string) error) error {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return s.wrap("list", prefix, err)
		}
		if obj.IsDir || (s.isFile && fileTemp.MatchString(obj.Key)) {
			continue
		}
		if err := fn(obj.Key); err != nil {
			return err
		}
	}
}

// wrap classifies a storage error: not found becomes apperr.NotFound (the
// one kind callers branch on); the rest keep their cause for the logs.
func (s *Store) wrap(op, key string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return apperr.Wrap(apperr.NotFound, err, "object not found")
	}
	return fmt.Errorf("blobstore: %s %q: %w", op, key, err)
}

// checkKey admits the keys every backend stores verbatim: '/'-separated
// non-empty segments, none "." or "..", no control characters, and no
// "__0x" (gocloud's escape marker). Anything else would be escaped
// differently by different drivers, and S3 writes, which bypass gocloud,
// must land where gocloud's reads look.
func checkKey(key string) error {
	bad := key == "" || len(key) > 1024 || !utf8.ValidString(key) || strings.Contains(key, "__0x")
	for seg := range strings.SplitSeq(key, "/") {
		if bad {
			break
		}
		bad = seg == "" || seg == "." || seg == ".."
	}
	for _, r := range key {
		if bad {
			break
		}
		bad = r < 0x20 || r == 0x7f
	}
	if bad {
		return apperr.New(apperr.Invalid, "invalid object key")
	}
	return nil
}
