package media_test

// Failure injection on the archive pass, against the real Redis index and
// the real blobstore on a file:// folder, each wrapped in a double that
// fails on demand. The rule under test: a failure halfway leaves no
// half-written record that shows up anywhere (not in storage, not in the
// index, not after a reindex). All identifiers here start with "ft" so they
// never collide with the other media_test files.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/blobstore"
	"github.com/chatvault/chatvault/internal/index"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/mediatest"
	"github.com/chatvault/chatvault/internal/testenv"
)

const (
	ftTenant   = "acme"
	ftCustomer = "cust-1"
	ftAudioMax = 64 << 10 // the rig's audio limit, small so TooLarge is cheap
	ftSniffLen = 3072     // what Archive peeks before it writes
)

var (
	errFTUpstream = errors.New("ft: upstream connection reset")
	errFTStorage  = errors.New("ft: storage refused the write")
	errFTIndex    = errors.New("ft: redis connection refused")
)

// ftSHA returns the lower-case hex sha256 of b.
func ftSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ftSourceKey is media's natural dedupe key of a provider source.
func ftSourceKey(identity string) string { return ftSHA([]byte(identity)) }

// ftClock is an injected clock that moves one second per reading, so
// records created in a row have distinct, ordered times.
type ftClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *ftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// ftOrigin is what the fake provider serves and how it misbehaves.
type ftOrigin struct {
	data     []byte
	mime     string
	size     int64 // declared size; 0 for undeclared
	sha      string
	filename string
	// failAfter > 0: the body fails with errFTUpstream after that many bytes.
	failAfter int64
	// cancelAfter > 0: the request's context is cancelled after that many
	// bytes; the body keeps yielding data, or fails with the context's
	// error when cancelErr is set (as an HTTP body does).
	cancelAfter int64
	cancelErr   bool
}

// ftFetcher implements media.Fetcher on an ftOrigin.
type ftFetcher struct {
	mu     sync.Mutex
	origin ftOrigin
	cancel context.CancelFunc // for cancelAfter
	calls  atomic.Int64
	bodies []*ftBody
}

func (f *ftFetcher) set(o ftOrigin, cancel context.CancelFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.origin, f.cancel = o, cancel
}

func (f *ftFetcher) Fetch(ctx context.Context, tenantID string, src media.SourceRequest) (*media.Fetched, error) {
	f.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.origin
	b := &ftBody{r: bytes.NewReader(o.data), origin: o, ctx: ctx, cancel: f.cancel}
	f.bodies = append(f.bodies, b)
	size := o.size
	if size == 0 {
		size = -1
	}
	return &media.Fetched{Body: b, MimeType: o.mime, Size: size, SHA256: o.sha, Filename: o.filename}, nil
}

func (f *ftFetcher) Identity(src media.SourceRequest) (string, error) {
	switch {
	case src.Type == media.SourceURL && src.URL != "":
		return src.Type + ":" + src.URL, nil
	case src.Type != media.SourceURL && src.Type != "" && src.MediaID != "":
		return src.Type + ":" + src.MediaID, nil
	}
	return "", apperr.WithFields("invalid source", apperr.FieldError{Pointer: "/source", Detail: "needs a type and a media_id or url"})
}

// allClosed reports whether every body handed out was closed.
func (f *ftFetcher) allClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bodies {
		if !b.closed.Load() {
			return false
		}
	}
	return true
}

// lastRead is how many bytes were read from the newest body.
func (f *ftFetcher) lastRead() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return 0
	}
	return f.bodies[len(f.bodies)-1].read.Load()
}

type ftBody struct {
	r      *bytes.Reader
	origin ftOrigin
	ctx    context.Context
	cancel context.CancelFunc
	read   atomic.Int64
	closed atomic.Bool
}

func (b *ftBody) Read(p []byte) (int, error) {
	read := b.read.Load()
	if fa := b.origin.failAfter; fa > 0 {
		left := fa - read
		if left <= 0 {
			return 0, errFTUpstream
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	if ca := b.origin.cancelAfter; ca > 0 {
		if read >= ca {
			b.cancel()
			if b.origin.cancelErr {
				return 0, b.ctx.Err()
			}
		} else if int64(len(p)) > ca-read {
			p = p[:ca-read]
		}
	}
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *ftBody) Close() error {
	b.closed.Store(true)
	return nil
}

// ftBlobs wraps the real store with failures on demand.
type ftBlobs struct {
	media.BlobStore
	mu sync.Mutex
	// putSmallErr fails PutSmall; with putSmallCommits the object is
	// written first (the write landed, its acknowledgement was lost).
	putSmallErr     error
	putSmallCommits bool
	// writeFailAfter > 0: streamed writes fail after that many bytes.
	writeFailAfter int64
	// closeErr fails the commit of streamed writes; with closeCommits the
	// object is committed first.
	closeErr     error
	closeCommits bool
	writers      atomic.Int64
}

// heal stops every injected failure.
func (s *ftBlobs) heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putSmallErr, s.putSmallCommits, s.writeFailAfter, s.closeErr, s.closeCommits = nil, false, 0, nil, false
}

func (s *ftBlobs) PutSmall(ctx context.Context, key string, data []byte, contentType string) error {
	s.mu.Lock()
	err, commits := s.putSmallErr, s.putSmallCommits
	s.mu.Unlock()
	if err == nil {
		return s.BlobStore.PutSmall(ctx, key, data, contentType)
	}
	if commits {
		if perr := s.BlobStore.PutSmall(ctx, key, data, contentType); perr != nil {
			return perr
		}
	}
	return err
}

func (s *ftBlobs) NewWriter(ctx context.Context, key, contentType string) (io.WriteCloser, error) {
	s.writers.Add(1)
	s.mu.Lock()
	failAfter, closeErr, closeCommits := s.writeFailAfter, s.closeErr, s.closeCommits
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.BlobStore.NewWriter(ctx, key, contentType)
	if err != nil {
		cancel()
		return nil, err
	}
	return &ftWriter{w: w, cancel: cancel, failAfter: failAfter, closeErr: closeErr, closeCommits: closeCommits}, nil
}

type ftWriter struct {
	w            io.WriteCloser
	cancel       context.CancelFunc
	n, failAfter int64
	closeErr     error
	closeCommits bool
}

func (w *ftWriter) Write(p []byte) (int, error) {
	if w.failAfter > 0 && w.n+int64(len(p)) > w.failAfter {
		k, err := w.w.Write(p[:w.failAfter-w.n])
		w.n += int64(k)
		if err != nil {
			return k, err
		}
		return k, errFTStorage
	}
	k, err := w.w.Write(p)
	w.n += int64(k)
	return k, err
}

func (w *ftWriter) Close() error {
	defer w.cancel()
	if w.closeErr == nil {
		return w.w.Close()
	}
	if w.closeCommits {
		if err := w.w.Close(); err != nil {
			return err
		}
		return w.closeErr
	}
	w.cancel() // the commit is refused: the store drops the upload
	_ = w.w.Close()
	return w.closeErr
}

// ftIndex wraps the real index with a failing Put on demand.
type ftIndex struct {
	media.Index
	mu sync.Mutex
	// putErr fails Put; with putApplies the entries are written first.
	putErr     error
	putApplies bool
}

// heal stops every injected failure.
func (x *ftIndex) heal() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.putErr, x.putApplies = nil, false
}

func (x *ftIndex) Put(ctx context.Context, prev *media.Media, m media.Media) error {
	x.mu.Lock()
	err, applies := x.putErr, x.putApplies
	x.mu.Unlock()
	if err == nil {
		return x.Index.Put(ctx, prev, m)
	}
	if applies {
		if perr := x.Index.Put(ctx, prev, m); perr != nil {
			return perr
		}
	}
	return err
}

// ftRig is a Service on the real adapters behind the failing doubles.
type ftRig struct {
	svc     *media.Service
	ix      *index.Index
	rdb     *redis.Client
	prefix  string
	store   *blobstore.Store
	dir     string // the file store's folder
	blobs   *ftBlobs
	idx     *ftIndex
	fetcher *ftFetcher
	clock   *ftClock
}

func newFTRig(t *testing.T) *ftRig {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	storageURL := testenv.FileStore(t)
	u, err := url.Parse(storageURL)
	if err != nil {
		t.Fatal(err)
	}
	store, err := blobstore.Open(context.Background(), storageURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	r := &ftRig{
		ix:      index.New(rdb, prefix),
		rdb:     rdb,
		prefix:  prefix,
		store:   store,
		dir:     filepath.FromSlash(u.Path),
		fetcher: &ftFetcher{},
		clock:   &ftClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	r.blobs = &ftBlobs{BlobStore: store}
	r.idx = &ftIndex{Index: r.ix}
	limits := map[media.Kind]int64{
		media.KindAudio:    ftAudioMax,
		media.KindVideo:    1 << 20,
		media.KindImage:    1 << 20,
		media.KindDocument: 4 << 20,
		media.KindSticker:  100 << 10,
	}
	r.svc = media.NewService(r.blobs, r.idx, r.fetcher,
		func(string) map[media.Kind]int64 { return limits },
		media.WithClock(r.clock.Now),
		media.WithLogger(slog.New(slog.DiscardHandler)),
		media.WithLockWait(5*time.Second))
	return r
}

// storedKeys lists every object the service can see.
func (r *ftRig) storedKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	if err := r.store.List(context.Background(), "tenants/", func(k string) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatalf("List: %v", err)
	}
	return keys
}

// files lists every regular file under the store's folder, in-flight
// temporaries included, which List hides.
func (r *ftRig) files(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(r.dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("walking the store: %v", err)
	}
	return out
}

// strays lists the files in the store's folder that are neither a listed
// object nor its metadata sidecar (fileblob's "<key>.attrs"): leftover
// temporaries, or sidecars of objects that are gone.
func (r *ftRig) strays(t *testing.T) []string {
	t.Helper()
	known := map[string]bool{}
	for _, k := range r.storedKeys(t) {
		known[k], known[k+".attrs"] = true, true
	}
	var out []string
	for _, f := range r.files(t) {
		if !known[f] {
			out = append(out, f)
		}
	}
	return out
}

// redisKeys lists every key of this test's index, locks included.
func (r *ftRig) redisKeys(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := r.rdb.Scan(ctx, 0, r.prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	return keys
}

func (r *ftRig) list(t *testing.T, q media.ListQuery) []string {
	t.Helper()
	page, _, err := r.ix.ListByCustomer(context.Background(), ftTenant, ftCustomer, q)
	if err != nil {
		t.Fatalf("ListByCustomer: %v", err)
	}
	var ids []string
	for _, m := range page {
		ids = append(ids, m.ID)
	}
	return ids
}

// assertNothingLeft checks that no trace of an archive is anywhere: no
// object (visible or temporary), no index entry, no dedupe key, no lock.
func (r *ftRig) assertNothingLeft(t *testing.T, identity string) {
	t.Helper()
	if keys := r.storedKeys(t); len(keys) > 0 {
		t.Errorf("storage still lists %q", keys)
	}
	if files := r.files(t); len(files) > 0 {
		t.Errorf("the store's folder still holds %q", files)
	}
	if ids := r.list(t, media.ListQuery{}); len(ids) > 0 {
		t.Errorf("the customer's listing shows %q", ids)
	}
	if id, ok, err := r.ix.LookupSource(context.Background(), ftTenant, ftSourceKey(identity)); err != nil || ok {
		t.Errorf("LookupSource = %q, %v, %v; want no dedupe key", id, ok, err)
	}
	if keys := r.redisKeys(t); len(keys) > 0 {
		t.Errorf("Redis still holds %q", keys)
	}
}

func ftWhatsApp(mediaID string) media.ArchiveInput {
	return media.ArchiveInput{
		CustomerID: ftCustomer,
		Source:     media.SourceRequest{Type: media.SourceWhatsAppCloud, MediaID: mediaID},
		Message:    media.Message{ID: "wamid.1", From: "+4915100000000", Caption: "hi"},
		Tags:       []string{" VIP ", "lead"},
		Metadata:   map[string]string{"deal": "42"},
	}
}

func TestArchiveFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	voice := mediatest.OggOpus(200<<10, 1) // over the rig's audio limit
	small := mediatest.OggOpus(40<<10, 2)  // under it
	other := mediatest.OggOpus(40<<10, 3)
	tests := []struct {
		name   string
		origin ftOrigin
		in     func(in *media.ArchiveInput)
		setup  func(r *ftRig)
		// want is the error kind; wantCtx asks for the context's own error.
		want    apperr.Kind
		wantCtx bool
		// noWrite: the pass must stop before it opens a blob writer.
		noWrite bool
		// bug names a known bug; bugLeaves says it leaves something behind
		// (otherwise only the error kind is wrong).
		bug       string
		bugLeaves bool
	}{
		{
			name:   "fetch body fails mid-stream",
			origin: ftOrigin{data: small, mime: "audio/ogg", failAfter: 20 << 10},
			want:   apperr.BadGateway,
		},
		{
			name:    "fetch body fails before the sniff completes",
			origin:  ftOrigin{data: small, mime: "audio/ogg", failAfter: 1000},
			want:    apperr.BadGateway,
			noWrite: true,
		},
		{
			name:    "empty body",
			origin:  ftOrigin{data: nil, mime: "audio/ogg"},
			want:    apperr.Unprocessable,
			noWrite: true,
		},
		{
			name:   "checksum mismatch against the request's hint",
			origin: ftOrigin{data: small, mime: "audio/ogg"},
			in:     func(in *media.ArchiveInput) { in.Hints.SHA256 = ftSHA(other) },
			want:   apperr.Unprocessable,
		},
		{
			name:   "checksum mismatch against the provider's checksum",
			origin: ftOrigin{data: small, mime: "audio/ogg", sha: ftSHA(other)},
			want:   apperr.Unprocessable,
		},
		{
			name:    "request's checksum contradicts the provider's",
			origin:  ftOrigin{data: small, mime: "audio/ogg", sha: ftSHA(small)},
			in:      func(in *media.ArchiveInput) { in.Hints.SHA256 = ftSHA(other) },
			want:    apperr.Unprocessable,
			noWrite: true,
		},
		{
			name:    "provider declares a malformed checksum",
			origin:  ftOrigin{data: small, mime: "audio/ogg", sha: "nope"},
			want:    apperr.BadGateway,
			noWrite: true,
		},
		{
			name:   "provider's declared size differs from what it sent",
			origin: ftOrigin{data: small, mime: "audio/ogg", size: int64(len(small)) + 1},
			want:   apperr.Unprocessable,
		},
		{
			name:   "over the kind limit without a declared size",
			origin: ftOrigin{data: voice, mime: "audio/ogg"},
			want:   apperr.TooLarge,
		},
		{
			name:    "provider's declared size over the limit",
			origin:  ftOrigin{data: voice, mime: "audio/ogg", size: int64(len(voice))},
			want:    apperr.TooLarge,
			noWrite: true,
		},
		{
			name:    "request's declared size over the limit",
			origin:  ftOrigin{data: small, mime: "audio/ogg"},
			in:      func(in *media.ArchiveInput) { in.Hints.FileSize = ftAudioMax + 1 },
			want:    apperr.TooLarge,
			noWrite: true,
		},
		{
			name:    "executable declared as audio",
			origin:  ftOrigin{data: mediatest.ELF(40<<10, 1), mime: "audio/ogg"},
			want:    apperr.UnsupportedMedia,
			noWrite: true,
		},
		{
			name:    "content contradicts the declared kind",
			origin:  ftOrigin{data: mediatest.PDF(40<<10, 1), mime: "video/mp4"},
			want:    apperr.UnsupportedMedia,
			noWrite: true,
		},
		{
			name:   "blob writer fails mid-stream",
			origin: ftOrigin{data: small, mime: "audio/ogg"},
			setup:  func(r *ftRig) { r.blobs.writeFailAfter = 10 << 10 },
			want:   apperr.Unavailable,
		},
		{
			name:   "blob commit is refused",
			origin: ftOrigin{data: small, mime: "audio/ogg"},
			setup:  func(r *ftRig) { r.blobs.closeErr = errFTStorage },
			want:   apperr.Unavailable,
		},
		{
			name:      "blob commit lands but reports an error",
			origin:    ftOrigin{data: small, mime: "audio/ogg"},
			setup:     func(r *ftRig) { r.blobs.closeErr, r.blobs.closeCommits = errFTStorage, true },
			want:      apperr.Unavailable,
			bugLeaves: true,
		},
		{
			name:   "PutSmall of media.json fails",
			origin: ftOrigin{data: small, mime: "audio/ogg"},
			setup:  func(r *ftRig) { r.blobs.putSmallErr = errFTStorage },
			want:   apperr.Unavailable,
		},
		{
			name:      "PutSmall of media.json lands but reports an error",
			origin:    ftOrigin{data: small, mime: "audio/ogg"},
			setup:     func(r *ftRig) { r.blobs.putSmallErr, r.blobs.putSmallCommits = errFTStorage, true },
			want:      apperr.Unavailable,
			bugLeaves: true,
		},
		{
			name:   "index Put fails",
			origin: ftOrigin{data: small, mime: "audio/ogg"},
			setup:  func(r *ftRig) { r.idx.putErr = errFTIndex },
			want:   apperr.Unavailable,
		},
		{
			name:   "index Put lands but reports an error",
			origin: ftOrigin{data: small, mime: "audio/ogg"},
			setup:  func(r *ftRig) { r.idx.putErr, r.idx.putApplies = errFTIndex, true },
			want:   apperr.Unavailable,
		},
		{
			name:    "context cancelled mid-copy, body keeps flowing",
			origin:  ftOrigin{data: small, mime: "audio/ogg", cancelAfter: 20 << 10},
			wantCtx: true,
		},
		{
			name:    "context cancelled mid-copy, body fails with it",
			origin:  ftOrigin{data: small, mime: "audio/ogg", cancelAfter: 20 << 10, cancelErr: true},
			wantCtx: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newFTRig(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r.fetcher.set(tc.origin, cancel)
			if tc.setup != nil {
				tc.setup(r)
			}
			in := ftWhatsApp("wa-" + testenv.RandomHex(4))
			if tc.in != nil {
				tc.in(&in)
			}
			identity := in.Source.Type + ":" + in.Source.MediaID

			m, created, err := r.svc.Archive(ctx, ftTenant, in)

			if err == nil {
				t.Fatalf("Archive succeeded (%s, created=%v); want a failure", m.ID, created)
			}
			if created || m.ID != "" {
				t.Errorf("a failed Archive returned a record: %+v, created=%v", m, created)
			}
			if !r.fetcher.allClosed() {
				t.Error("the provider's body was not closed")
			}
			if tc.noWrite {
				if n := r.blobs.writers.Load(); n != 0 {
					t.Errorf("%d blob writers were opened; the pass should stop before writing", n)
				}
				if n := r.fetcher.lastRead(); n > ftSniffLen {
					t.Errorf("%d bytes were read from the provider; at most the %d-byte sniff was needed", n, ftSniffLen)
				}
			}
			leftovers := func() bool {
				t.Helper()
				clean := len(r.storedKeys(t)) == 0 && len(r.files(t)) == 0 && len(r.redisKeys(t)) == 0
				// A reindex must not bring anything back either.
				if _, err := r.svc.Reindex(context.Background()); err != nil {
					t.Fatalf("Reindex: %v", err)
				}
				return !clean || len(r.list(t, media.ListQuery{})) > 0
			}

			if tc.bug != "" && tc.bugLeaves {
				if apperr.KindOf(err) == tc.want && !leftovers() {
					t.Fatal("the bug seems fixed; drop the bug note")
				}
				t.Skipf("BUG: %s (got %v; storage %q; index after reindex %q)", tc.bug, err, r.storedKeys(t), r.list(t, media.ListQuery{}))
			}
			if tc.bug != "" {
				r.assertNothingLeft(t, identity)
				if apperr.KindOf(err) == tc.want {
					t.Fatal("the bug seems fixed; drop the bug note")
				}
				t.Skipf("BUG: %s (got %v)", tc.bug, err)
			}

			if tc.wantCtx {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			} else if k := apperr.KindOf(err); k != tc.want {
				t.Errorf("err = %v (kind %s), want kind %s", err, k, tc.want)
			}
			r.assertNothingLeft(t, identity)
			if n, err := r.svc.Reindex(context.Background()); err != nil || n != 0 {
				t.Errorf("Reindex after the failure = %d, %v; want 0 records", n, err)
			}
			r.assertNothingLeft(t, identity)

			// The failure poisoned nothing: the same source archives once
			// the fault is gone.
			r.blobs.heal()
			r.idx.heal()
			r.fetcher.set(ftOrigin{data: small, mime: "audio/ogg"}, func() {})
			retry := in
			retry.Hints = media.SourceHints{}
			m, created, err = r.svc.Archive(context.Background(), ftTenant, retry)
			if err != nil || !created {
				t.Fatalf("Archive after the fault = %v, created=%v", err, created)
			}
			if got := r.list(t, media.ListQuery{}); !slices.Equal(got, []string{m.ID}) {
				t.Fatalf("listing after the retry = %q, want [%s]", got, m.ID)
			}
		})
	}
}

func TestArchiveSuccess(t *testing.T) {
	t.Parallel()
	r := newFTRig(t)
	ctx := context.Background()
	data := mediatest.OggOpus(40<<10, 9)
	r.fetcher.set(ftOrigin{data: data, mime: "audio/ogg; codecs=opus", size: int64(len(data)), sha: ftSHA(data), filename: "voice.ogg"}, func() {})
	in := ftWhatsApp("wa-ok")
	sent := time.Date(2025, 2, 28, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	in.Message.Timestamp = sent

	m, created, err := r.svc.Archive(ctx, ftTenant, in)
	if err != nil || !created {
		t.Fatalf("Archive = %v, created=%v", err, created)
	}
	if !media.ValidID(m.ID) {
		t.Errorf("ID %q is not a media ID", m.ID)
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"tenant", m.TenantID, ftTenant},
		{"customer", m.CustomerID, ftCustomer},
		{"kind", m.Kind, media.KindAudio},
		{"mime type", m.MimeType, "audio/ogg"},
		{"size", m.SizeBytes, int64(len(data))},
		{"sha256", m.SHA256, ftSHA(data)},
		{"filename", m.Filename, "voice.ogg"},
		{"caption", m.Caption, "hi"},
		{"tags", m.Tags, []string{"lead", "vip"}},
		{"metadata", m.Metadata, map[string]string{"deal": "42"}},
		{"source type", m.Source.Type, media.SourceWhatsAppCloud},
		{"source media id", m.Source.MediaID, "wa-ok"},
		{"source message id", m.Source.MessageID, "wamid.1"},
		{"source from", m.Source.From, "+4915100000000"},
		{"received at", m.Source.ReceivedAt, sent.UTC()},
		{"source key", m.SourceKey, ftSourceKey("whatsapp_cloud:wa-ok")},
		{"blob key", m.BlobKey, "tenants/" + ftTenant + "/media/" + m.ID + "/original"},
		{"created at", m.CreatedAt, time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)},
		{"updated at", m.UpdatedAt, m.CreatedAt},
	}
	for _, c := range checks {
		if !ftEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.field, c.got, c.want)
		}
	}

	got, err := r.svc.Get(ctx, ftTenant, m.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !ftSameRecord(got, m) {
		t.Errorf("Get = %+v\nwant  %+v", got, m)
	}
	if _, err := r.svc.Get(ctx, "other-tenant", m.ID); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("another tenant's Get = %v, want NotFound", err)
	}
	page, next, err := r.svc.List(ctx, ftTenant, ftCustomer, media.ListQuery{})
	if err != nil || next != "" || len(page) != 1 || page[0].ID != m.ID {
		t.Fatalf("List = %d records, next %q, %v; want [%s]", len(page), next, err, m.ID)
	}
	if page, _, err := r.svc.List(ctx, ftTenant, ftCustomer, media.ListQuery{Tag: " VIP "}); err != nil || len(page) != 1 {
		t.Errorf("List by tag \" VIP \" = %d records, %v; want 1", len(page), err)
	}
	if page, _, err := r.svc.List(ctx, ftTenant, ftCustomer, media.ListQuery{Kind: media.KindVideo}); err != nil || len(page) != 0 {
		t.Errorf("List of videos = %d records, %v; want 0", len(page), err)
	}
	rc, err := r.svc.OpenContent(ctx, m, 0, -1)
	if err != nil {
		t.Fatalf("OpenContent: %v", err)
	}
	stored, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || !bytes.Equal(stored, data) {
		t.Errorf("stored content differs from the original (%d bytes, %v)", len(stored), err)
	}
	wantKeys := []string{m.BlobKey, "tenants/" + ftTenant + "/media/" + m.ID + "/media.json"}
	slices.Sort(wantKeys)
	if keys := r.storedKeys(t); !slices.Equal(keys, wantKeys) {
		t.Errorf("stored keys = %q, want %q", keys, wantKeys)
	}
	if files := r.strays(t); len(files) > 0 {
		t.Errorf("the store's folder holds strays %q", files)
	}
	if !r.fetcher.allClosed() {
		t.Error("the provider's body was not closed")
	}
}

func TestListValidation(t *testing.T) {
	t.Parallel()
	r := newFTRig(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		q       media.ListQuery
		pointer string
	}{
		{name: "limit over the maximum", q: media.ListQuery{Limit: media.MaxPageSize + 1}, pointer: "query:limit"},
		{name: "tag with a comma", q: media.ListQuery{Tag: "a,b"}, pointer: "query:tag"},
		{name: "blank tag", q: media.ListQuery{Tag: " \t"}, pointer: "query:tag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.svc.List(ctx, ftTenant, ftCustomer, tc.q)
			e, ok := apperr.As(err)
			if !ok || e.Kind != apperr.Invalid || len(e.Fields) != 1 || e.Fields[0].Pointer != tc.pointer {
				t.Fatalf("List(%+v) = %v (%+v), want Invalid at %s", tc.q, err, e, tc.pointer)
			}
		})
	}
	if page, _, err := r.svc.List(ctx, ftTenant, ftCustomer, media.ListQuery{Limit: media.MaxPageSize}); err != nil || len(page) != 0 {
		t.Fatalf("List at the maximum limit = %d, %v", len(page), err)
	}
}

func TestArchiveInputValidation(t *testing.T) {
	t.Parallel()
	r := newFTRig(t)
	r.fetcher.set(ftOrigin{data: mediatest.OggOpus(1024, 1), mime: "audio/ogg"}, func() {})
	tooMany := make([]string, media.MaxTags+1)
	for i := range tooMany {
		tooMany[i] = "t" + testenv.RandomHex(3)
	}
	tests := []struct {
		name    string
		edit    func(in *media.ArchiveInput)
		want    apperr.Kind
		pointer string
	}{
		{name: "bad tag", edit: func(in *media.ArchiveInput) { in.Tags = []string{"ok", "a,b"} }, want: apperr.Invalid, pointer: "/tags/1"},
		{name: "too many tags", edit: func(in *media.ArchiveInput) { in.Tags = tooMany }, want: apperr.Invalid, pointer: "/tags"},
		{name: "malformed checksum", edit: func(in *media.ArchiveInput) { in.Hints.SHA256 = "xyz" }, want: apperr.Invalid, pointer: "/source/sha256"},
		{name: "unknown kind", edit: func(in *media.ArchiveInput) { in.Kind = "gif" }, want: apperr.Invalid, pointer: "/kind"},
		{name: "no source", edit: func(in *media.ArchiveInput) { in.Source = media.SourceRequest{} }, want: apperr.Invalid, pointer: "/source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ftWhatsApp("wa-" + testenv.RandomHex(4))
			tc.edit(&in)
			_, _, err := r.svc.Archive(context.Background(), ftTenant, in)
			e, ok := apperr.As(err)
			if !ok || e.Kind != tc.want || len(e.Fields) == 0 || e.Fields[0].Pointer != tc.pointer {
				t.Fatalf("Archive = %v (%+v), want %s at %s", err, e, tc.want, tc.pointer)
			}
		})
	}
	// Duplicated tags count once against the maximum.
	in := ftWhatsApp("wa-dups")
	in.Tags = nil
	for i := 0; i < media.MaxTags; i++ {
		in.Tags = append(in.Tags, "dup", "DUP ")
	}
	if _, _, err := r.svc.Archive(context.Background(), ftTenant, in); err != nil {
		t.Fatalf("Archive with repeated tags: %v", err)
	}
	if keys := r.storedKeys(t); len(keys) != 2 {
		t.Fatalf("stored %q; only the one valid archive should have written", keys)
	}
}

func TestArchiveDedupe(t *testing.T) {
	t.Parallel()
	data := mediatest.PDF(30<<10, 4)
	tests := []struct {
		name   string
		src    media.SourceRequest
		hints  media.SourceHints
		fetchN int64 // fetches the second Archive may make
	}{
		{name: "whatsapp_cloud source", src: media.SourceRequest{Type: media.SourceWhatsAppCloud, MediaID: "wa-dup"}, fetchN: 0},
		{name: "url with the checksum up front", src: media.SourceRequest{Type: media.SourceURL, URL: "https://files.example/a.pdf"}, hints: media.SourceHints{SHA256: ftSHA(data)}, fetchN: 0},
		{name: "url without a checksum", src: media.SourceRequest{Type: media.SourceURL, URL: "https://files.example/b.pdf"}, fetchN: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newFTRig(t)
			ctx := context.Background()
			r.fetcher.set(ftOrigin{data: data, mime: "application/pdf"}, func() {})
			in := media.ArchiveInput{CustomerID: ftCustomer, Source: tc.src, Hints: tc.hints}
			first, created, err := r.svc.Archive(ctx, ftTenant, in)
			if err != nil || !created {
				t.Fatalf("first Archive = %v, created=%v", err, created)
			}
			before := r.fetcher.calls.Load()
			second, created, err := r.svc.Archive(ctx, ftTenant, in)
			if err != nil {
				t.Fatalf("second Archive: %v", err)
			}
			if created {
				t.Error("the second Archive of the same source created a record")
			}
			if !ftSameRecord(second, first) {
				t.Errorf("second Archive = %+v\nwant the first %+v", second, first)
			}
			if n := r.fetcher.calls.Load() - before; n != tc.fetchN {
				t.Errorf("the second Archive fetched %d times, want %d", n, tc.fetchN)
			}
			if keys := r.storedKeys(t); len(keys) != 2 {
				t.Errorf("stored %q, want one original and one media.json", keys)
			}
			if files := r.strays(t); len(files) > 0 {
				t.Errorf("the store's folder holds strays %q", files)
			}
			if ids := r.list(t, media.ListQuery{}); !slices.Equal(ids, []string{first.ID}) {
				t.Errorf("listing = %q, want [%s]", ids, first.ID)
			}
			// Another tenant's identical source is its own record.
			third, created, err := r.svc.Archive(ctx, "other-tenant", in)
			if err != nil || !created || third.ID == first.ID {
				t.Errorf("another tenant's Archive = %s, created=%v, %v; want a new record", third.ID, created, err)
			}
		})
	}
}

func TestTagMissing(t *testing.T) {
	t.Parallel()
	r := newFTRig(t)
	ctx := context.Background()
	r.fetcher.set(ftOrigin{data: mediatest.OggOpus(1024, 1), mime: "audio/ogg"}, func() {})
	m, _, err := r.svc.Archive(ctx, ftTenant, ftWhatsApp("wa-tag"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tenant, id string
	}{
		{name: "well-formed unknown ID", tenant: ftTenant, id: media.NewID(time.Now())},
		{name: "malformed ID", tenant: ftTenant, id: "med_nope"},
		{name: "empty ID", tenant: ftTenant, id: ""},
		{name: "another tenant's ID", tenant: "other-tenant", id: m.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.svc.Tag(ctx, tc.tenant, tc.id, []string{"x"}, nil)
			if !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("Tag = %v, want NotFound", err)
			}
		})
	}
	if keys := r.storedKeys(t); len(keys) != 2 {
		t.Errorf("Tag on missing IDs wrote: %q", keys)
	}
}

func TestTagUpdatesDocAndIndex(t *testing.T) {
	t.Parallel()
	r := newFTRig(t)
	ctx := context.Background()
	r.fetcher.set(ftOrigin{data: mediatest.OggOpus(1024, 1), mime: "audio/ogg"}, func() {})
	m, _, err := r.svc.Archive(ctx, ftTenant, ftWhatsApp("wa-tag"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Tag(ctx, ftTenant, m.ID, []string{"a,b"}, nil); !apperr.Is(err, apperr.Invalid) {
		t.Fatalf("Tag with a bad tag = %v, want Invalid", err)
	}
	got, err := r.svc.Tag(ctx, ftTenant, m.ID, []string{"Hot", "vip"}, []string{"VIP", "lead"})
	if err != nil {
		t.Fatalf("Tag: %v", err)
	}
	if want := []string{"hot", "vip"}; !slices.Equal(got.Tags, want) {
		t.Errorf("tags = %q, want %q", got.Tags, want)
	}
	if !got.UpdatedAt.After(m.UpdatedAt) || !got.CreatedAt.Equal(m.CreatedAt) {
		t.Errorf("times after Tag: created %v updated %v; before %v", got.CreatedAt, got.UpdatedAt, m.UpdatedAt)
	}
	if ids := r.list(t, media.ListQuery{Tag: "lead"}); len(ids) != 0 {
		t.Errorf("the removed tag still lists %q", ids)
	}
	if ids := r.list(t, media.ListQuery{Tag: "hot"}); !slices.Equal(ids, []string{m.ID}) {
		t.Errorf("the added tag lists %q", ids)
	}
	// A no-op change returns the record untouched.
	same, err := r.svc.Tag(ctx, ftTenant, m.ID, []string{"hot"}, nil)
	if err != nil || !same.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("no-op Tag = %v, updated %v; want %v", err, same.UpdatedAt, got.UpdatedAt)
	}
	// The document is the truth: it survives losing the index.
	if err := r.ix.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	fromDoc, err := r.svc.Get(ctx, ftTenant, m.ID)
	if err != nil || !slices.Equal(fromDoc.Tags, []string{"hot", "vip"}) {
		t.Fatalf("Get after losing the index = %q, %v", fromDoc.Tags, err)
	}
}

func TestDeleteRemovesEverything(t *testing.T) {
	t.Parallel()
	r := newFTRig(t)
	ctx := context.Background()
	r.fetcher.set(ftOrigin{data: mediatest.OggOpus(1024, 1), mime: "audio/ogg"}, func() {})
	in := ftWhatsApp("wa-del")
	m, _, err := r.svc.Archive(ctx, ftTenant, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Delete(ctx, "other-tenant", m.ID); !apperr.Is(err, apperr.NotFound) {
		t.Fatalf("another tenant's Delete = %v, want NotFound", err)
	}
	if err := r.svc.Delete(ctx, ftTenant, m.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	r.assertNothingLeft(t, "whatsapp_cloud:wa-del")
	if _, err := r.svc.Get(ctx, ftTenant, m.ID); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("Get after Delete = %v, want NotFound", err)
	}
	if err := r.svc.Delete(ctx, ftTenant, m.ID); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("second Delete = %v, want NotFound", err)
	}
	if _, err := r.svc.Tag(ctx, ftTenant, m.ID, []string{"x"}, nil); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("Tag after Delete = %v, want NotFound", err)
	}
	if rc, err := r.svc.OpenContent(ctx, m, 0, -1); !apperr.Is(err, apperr.NotFound) {
		if rc != nil {
			_ = rc.Close()
		}
		t.Errorf("OpenContent after Delete = %v, want NotFound", err)
	}
	if n, err := r.svc.Reindex(ctx); err != nil || n != 0 {
		t.Errorf("Reindex after Delete = %d, %v; want 0", n, err)
	}
	// The source is free again: archiving it fetches and creates anew.
	before := r.fetcher.calls.Load()
	again, created, err := r.svc.Archive(ctx, ftTenant, in)
	if err != nil || !created || again.ID == m.ID {
		t.Fatalf("Archive after Delete = %s, created=%v, %v", again.ID, created, err)
	}
	if r.fetcher.calls.Load() != before+1 {
		t.Error("Archive after Delete did not fetch")
	}
}

func TestReindexRestoresListAndDedupe(t *testing.T) {
	t.Parallel()
	r := newFTRig(t)
	ctx := context.Background()
	voice := mediatest.OggOpus(2048, 5)
	doc := mediatest.PDF(2048, 6)
	r.fetcher.set(ftOrigin{data: voice, mime: "audio/ogg"}, func() {})
	waIn := ftWhatsApp("wa-re")
	a, _, err := r.svc.Archive(ctx, ftTenant, waIn)
	if err != nil {
		t.Fatal(err)
	}
	r.fetcher.set(ftOrigin{data: doc, mime: "application/pdf"}, func() {})
	urlIn := media.ArchiveInput{CustomerID: ftCustomer, Source: media.SourceRequest{Type: media.SourceURL, URL: "https://files.example/c.pdf"}, Hints: media.SourceHints{SHA256: ftSHA(doc)}, Tags: []string{"contract"}}
	b, _, err := r.svc.Archive(ctx, ftTenant, urlIn)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{b.ID, a.ID} // newest first

	if err := r.ix.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if ids := r.list(t, media.ListQuery{}); len(ids) != 0 {
		t.Fatalf("listing after Reset = %q, want none", ids)
	}
	if keys := r.redisKeys(t); len(keys) != 0 {
		t.Fatalf("Redis after Reset holds %q", keys)
	}

	n, err := r.svc.Reindex(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Reindex = %d, %v; want 2", n, err)
	}
	if ids := r.list(t, media.ListQuery{}); !slices.Equal(ids, want) {
		t.Errorf("listing after Reindex = %q, want %q", ids, want)
	}
	if ids := r.list(t, media.ListQuery{Tag: "contract"}); !slices.Equal(ids, []string{b.ID}) {
		t.Errorf("tag listing after Reindex = %q", ids)
	}
	if ids := r.list(t, media.ListQuery{Kind: media.KindAudio}); !slices.Equal(ids, []string{a.ID}) {
		t.Errorf("kind listing after Reindex = %q", ids)
	}
	if id, ok, err := r.ix.LookupSource(ctx, ftTenant, a.SourceKey); err != nil || !ok || id != a.ID {
		t.Errorf("LookupSource(whatsapp) after Reindex = %q, %v, %v", id, ok, err)
	}
	before := r.fetcher.calls.Load()
	for _, in := range []media.ArchiveInput{waIn, urlIn} {
		m, created, err := r.svc.Archive(ctx, ftTenant, in)
		if err != nil || created {
			t.Errorf("Archive of %s after Reindex = %s, created=%v, %v; want the existing record", in.Source.Type, m.ID, created, err)
		}
	}
	if r.fetcher.calls.Load() != before {
		t.Error("Archive after Reindex fetched again; dedupe was not restored")
	}
	if keys := r.storedKeys(t); len(keys) != 4 {
		t.Errorf("stored %q, want two records", keys)
	}
	// Reindex is repeatable.
	if n, err := r.svc.Reindex(ctx); err != nil || n != 2 {
		t.Errorf("second Reindex = %d, %v", n, err)
	}
}

// ftSameRecord compares records as JSON would carry them (times by instant).
func ftSameRecord(a, b media.Media) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || !a.UpdatedAt.Equal(b.UpdatedAt) || !a.Source.ReceivedAt.Equal(b.Source.ReceivedAt) {
		return false
	}
	a.CreatedAt, a.UpdatedAt, a.Source.ReceivedAt = b.CreatedAt, b.UpdatedAt, b.Source.ReceivedAt
	return ftEqual(a, b)
}

func ftEqual(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []string:
		y, ok := b.([]string)
		return ok && slices.Equal(x, y)
	case map[string]string:
		y, ok := b.(map[string]string)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	case media.Media:
		y, ok := b.(media.Media)
		if !ok {
			return false
		}
		if !ftEqual(x.Tags, y.Tags) || !ftEqual(x.Metadata, y.Metadata) {
			return false
		}
		x.Tags, y.Tags, x.Metadata, y.Metadata = nil, nil, nil, nil
		return reflect.DeepEqual(x, y)
	}
	return a == b
}
