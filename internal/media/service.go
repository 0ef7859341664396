package media

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/gabriel-vasile/mimetype"
	"github.com/oklog/ulid/v2"

	"github.com/chatvault/chatvault/internal/apperr"
)

// SourceRequest names the media to fetch, as the client gave it.
type SourceRequest struct {
	Type    string
	MediaID string
	URL     string
}

// Fetched is an open upstream body with what the provider declared about it.
type Fetched struct {
	Body     io.ReadCloser
	MimeType string // "" if undeclared
	Size     int64  // -1 if undeclared
	SHA256   string // lower-case hex, "" if undeclared
	Filename string
}

// Fetcher opens media at a provider.
type Fetcher interface {
	Fetch(ctx context.Context, tenantID string, src SourceRequest) (*Fetched, error)
	// Identity is the natural identity of a source (provider and media ID,
	// or the normalised URL), the basis of dedupe.
	// An invalid source is an apperr.Invalid error.
	Identity(src SourceRequest) (string, error)
}

// LimitsFunc returns a tenant's per-kind byte limits.
type LimitsFunc func(tenantID string) map[Kind]int64

// Policy is a tenant's processing policy, as far as archiving needs it.
type Policy struct {
	// Process queues probing and renditions for audio, video and images.
	Process bool
	// CompressOversize accepts audio and video over the kind's limit, up to
	// OversizeLimit, on condition that the original is replaced by its
	// compressed rendition as soon as that exists.
	CompressOversize bool
	OversizeLimit    int64
}

// PolicyFunc returns a tenant's processing policy.
type PolicyFunc func(tenantID string) Policy

// Scheduler queues background work on records.
type Scheduler interface {
	// ScheduleProcessing queues probing and renditions of a pending record.
	ScheduleProcessing(ctx context.Context, m Media) error
	// ScheduleReplacement queues replacing m's original at m.Original.ReplaceAfter.
	ScheduleReplacement(ctx context.Context, m Media) error
}

// Processable reports whether records of kind get probed and renditions.
// Stickers are left alone: they are small WebP images already.
func Processable(k Kind) bool { return k == KindAudio || k == KindVideo || k == KindImage }

// Service implements the media use cases.
type Service struct {
	blobs   BlobStore
	index   Index
	fetcher Fetcher
	limits  LimitsFunc
	policy  PolicyFunc
	sched   Scheduler
	events  Events
	now     func() time.Time
	log     *slog.Logger
	// lockWait bounds how long a duplicate waits for the archive it
	// duplicates; long enough for a 100 MiB document on a slow provider.
	lockWait time.Duration
}

// Option configures a Service.
type Option func(*Service)

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithEvents publishes changes to e.
func WithEvents(e Events) Option { return func(s *Service) { s.events = e } }

// WithProcessing queues processing of new records through sched, as each
// tenant's policy says.
func WithProcessing(policy PolicyFunc, sched Scheduler) Option {
	return func(s *Service) { s.policy, s.sched = policy, sched }
}

// WithLockWait sets how long concurrent duplicates wait for each other.
func WithLockWait(d time.Duration) Option { return func(s *Service) { s.lockWait = d } }

// NewService wires the use cases to their ports.
func NewService(blobs BlobStore, index Index, fetcher Fetcher, limits LimitsFunc, opts ...Option) *Service {
	s := &Service{blobs: blobs, index: index, fetcher: fetcher, limits: limits, events: noEvents{}, now: time.Now, log: slog.Default(), lockWait: 2 * time.Minute,
		policy: func(string) Policy { return Policy{} }}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ArchiveInput is one archive request, already shape-validated at the edge.
type ArchiveInput struct {
	CustomerID string
	Kind       Kind // hint; "" to derive
	Source     SourceRequest
	Hints      SourceHints
	Message    Message
	Tags       []string
	Metadata   map[string]string
}

// SourceHints are what the client says it knows about the file.
type SourceHints struct {
	MimeType string
	SHA256   string // hex or base64
	FileSize int64  // 0 if unknown
	Filename string
}

// Message is the WhatsApp message a media came with.
type Message struct {
	ID        string
	From      string
	Timestamp time.Time // zero if unknown
	Caption   string
}

// Key layout in object storage. The tenant comes first so a tenant's data
// can be listed, exported or erased by prefix.
func docKey(tenantID, id string) string {
	return "tenants/" + tenantID + "/media/" + id + "/media.json"
}
func blobKey(tenantID, id string) string     { return mediaPrefix(tenantID, id) + "original" }
func mediaPrefix(tenantID, id string) string { return "tenants/" + tenantID + "/media/" + id + "/" }

// RenditionKey is where a record's rendition is stored, beside the original.
func RenditionKey(tenantID, id, name, ext string) string {
	return mediaPrefix(tenantID, id) + "renditions/" + name + "." + ext
}

// NewID returns a media ID: "med_" and a ULID, so IDs sort by time.
func NewID(now time.Time) string {
	return "med_" + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

var idPattern = regexp.MustCompile(`^med_[0-9A-HJKMNP-TV-Z]{26}$`)

// ValidID reports whether id has the shape of a media ID.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Archive copies the source into storage in one streaming pass and records
// it. created is false when the same source was already archived for the
// tenant (natural dedupe); the existing record is returned then.
func (s *Service) Archive(ctx context.Context, tenantID string, in ArchiveInput) (Media, bool, error) {
	tags, hintSHA, identity, err := s.prepare(in)
	if err != nil {
		return Media{}, false, err
	}

	// Concurrent duplicates serialise on the source before anything is
	// fetched, so exactly one of them stores an object.
	unlock, err := s.index.Lock(ctx, tenantID, "src:"+hashHex(identity), s.lockWait)
	if err != nil {
		return Media{}, false, err
	}
	defer unlock()

	// A provider media ID is the whole identity; a URL's content can change,
	// so its identity includes the sha256, known up front only from a hint.
	if in.Source.Type != SourceURL {
		if m, ok, err := s.existing(ctx, tenantID, sourceKey(identity, "")); err != nil || ok {
			return m, false, err
		}
	} else if hintSHA != "" {
		if m, ok, err := s.existing(ctx, tenantID, sourceKey(identity, hintSHA)); err != nil || ok {
			return m, false, err
		}
	}

	f, err := s.fetcher.Fetch(ctx, tenantID, in.Source)
	if err != nil {
		return Media{}, false, err
	}
	defer f.Body.Close()

	declaredMime := firstNonEmpty(BaseMIME(in.Hints.MimeType), BaseMIME(f.MimeType))
	wantSHA := hintSHA
	if f.SHA256 != "" {
		provSHA, err := NormalizeSHA256(f.SHA256)
		if err != nil {
			return Media{}, false, apperr.Wrap(apperr.BadGateway, err, "the provider declared a malformed checksum")
		}
		if wantSHA != "" && wantSHA != provSHA {
			return Media{}, false, apperr.New(apperr.Unprocessable, "the sha256 in the request does not match the provider's checksum")
		}
		wantSHA = provSHA
	}

	// Sniff the first bytes before writing anything: the kind and the limit
	// depend on them.
	br := bufio.NewReaderSize(f.Body, sniffLen)
	head, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return Media{}, false, apperr.Wrap(apperr.BadGateway, err, "reading the media from the provider failed")
	}
	if len(head) == 0 {
		return Media{}, false, apperr.New(apperr.Unprocessable, "the provider returned an empty file")
	}
	sniffed := mimetype.Detect(head)
	kind, mimeType, err := classify(in.Kind, declaredMime, sniffed)
	if err != nil {
		return Media{}, false, err
	}
	limit := s.limits(tenantID)[kind]
	policy := s.policy(tenantID)
	// hard is what is accepted at all: the kind's limit, or more for audio
	// and video the tenant accepts oversize on condition of compression.
	hard := limit
	if limit > 0 && policy.Process && policy.CompressOversize && (kind == KindAudio || kind == KindVideo) {
		hard = max(limit, policy.OversizeLimit)
	}
	declaredSize := f.Size
	if in.Hints.FileSize > 0 {
		declaredSize = in.Hints.FileSize
	}
	if hard > 0 && declaredSize > hard {
		return Media{}, false, tooLarge(kind, hard)
	}

	now := s.now().UTC()
	id := NewID(now)
	key := blobKey(tenantID, id)
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	w, err := s.blobs.NewWriter(wctx, key, mimeType)
	if err != nil {
		return Media{}, false, apperr.Wrap(apperr.Unavailable, err, "storage is unavailable")
	}
	h := sha256.New()
	n, copyErr := copyLimited(ctx, io.MultiWriter(w, h), br, hard)
	if copyErr == nil && hard > 0 && n > hard {
		copyErr = tooLarge(kind, hard)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if copyErr == nil && wantSHA != "" && sum != wantSHA {
		copyErr = apperr.New(apperr.Unprocessable, "checksum mismatch: the file's sha256 is %s, the declared one is %s", sum, wantSHA)
	}
	if copyErr == nil && f.Size > 0 && n != f.Size {
		copyErr = apperr.New(apperr.Unprocessable, "size mismatch: the provider declared %d bytes and sent %d", f.Size, n)
	}
	if copyErr != nil {
		abort() // before Close: the write is dropped, nothing becomes visible
		_ = w.Close()
		return Media{}, false, copyErr
	}
	if err := w.Close(); err != nil {
		// The commit may have landed although it reported an error.
		s.deleteQuietly(key)
		return Media{}, false, apperr.Wrap(apperr.Unavailable, err, "storage did not accept the file")
	}

	srcKey := sourceKey(identity, "")
	if in.Source.Type == SourceURL {
		srcKey = sourceKey(identity, sum)
		if m, ok, err := s.existing(ctx, tenantID, srcKey); err != nil || ok {
			s.deleteQuietly(key)
			return m, false, err
		}
	}

	receivedAt := in.Message.Timestamp
	if receivedAt.IsZero() {
		receivedAt = now
	}
	m := Media{
		ID:         id,
		TenantID:   tenantID,
		CustomerID: in.CustomerID,
		Kind:       kind,
		MimeType:   mimeType,
		SizeBytes:  n,
		SHA256:     sum,
		Filename:   firstNonEmpty(in.Hints.Filename, f.Filename),
		Caption:    in.Message.Caption,
		Tags:       tags,
		Metadata:   nonNilMap(in.Metadata),
		Source: Source{
			Type:       in.Source.Type,
			MediaID:    in.Source.MediaID,
			URL:        in.Source.URL,
			MessageID:  in.Message.ID,
			From:       in.Message.From,
			ReceivedAt: receivedAt.UTC(),
		},
		SourceKey: srcKey,
		BlobKey:   key,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if policy.Process && Processable(kind) {
		m.Processing = &Processing{State: ProcessingPending, UpdatedAt: now}
		if limit > 0 && n > limit {
			m.Original.ReplaceAfter, m.Original.ReplaceReason = &now, ReplaceOversize
		}
	}
	// The document, then the index: until both exist the record is nowhere
	// to be seen, and a failure removes what was written.
	if err := s.writeDoc(ctx, m); err != nil {
		// The document may have landed although the write reported an error;
		// left behind, a reindex would resurrect it without its original.
		s.deleteQuietly(docKey(tenantID, id), key)
		return Media{}, false, err
	}
	if err := s.index.Put(ctx, nil, m); err != nil {
		s.deleteQuietly(docKey(tenantID, id), key)
		_ = s.index.Remove(context.WithoutCancel(ctx), m)
		return Media{}, false, apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
	}
	s.events.Publish(context.WithoutCancel(ctx), tenantID, Event{Type: EventArchived, Media: m})
	if m.Processing != nil && s.sched != nil {
		if err := s.sched.ScheduleProcessing(context.WithoutCancel(ctx), m); err != nil {
			// The record stays pending; reindex or POST /v1/media/{id}/process
			// queues it again.
			s.log.WarnContext(ctx, "queueing processing failed", "media_id", m.ID, "err", err)
		}
	}
	return m, true, nil
}

// Check validates an archive request without doing it, so an async request
// is refused at once rather than failing in the queue.
func (s *Service) Check(tenantID string, in ArchiveInput) error {
	_, _, _, err := s.prepare(in)
	return err
}

// prepare normalises the tags and the checksum hint and works out the
// source identity.
func (s *Service) prepare(in ArchiveInput) (tags []string, hintSHA, identity string, err error) {
	tags, err = NormalizeTags(in.Tags, "/tags")
	if err != nil {
		return nil, "", "", err
	}
	tags = applyTags(nil, tags, nil)
	if len(tags) > MaxTags {
		return nil, "", "", apperr.WithFields("too many tags", apperr.FieldError{Pointer: "/tags", Detail: fmt.Sprintf("at most %d tags", MaxTags)})
	}
	if in.Hints.SHA256 != "" {
		if hintSHA, err = NormalizeSHA256(in.Hints.SHA256); err != nil {
			return nil, "", "", apperr.WithFields("invalid checksum", apperr.FieldError{Pointer: "/source/sha256", Detail: err.Error()})
		}
	}
	identity, err = s.fetcher.Identity(in.Source)
	return tags, hintSHA, identity, err
}

func (s *Service) existing(ctx context.Context, tenantID, srcKey string) (Media, bool, error) {
	id, ok, err := s.index.LookupSource(ctx, tenantID, srcKey)
	if err != nil {
		return Media{}, false, apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
	}
	if !ok {
		return Media{}, false, nil
	}
	m, err := s.Get(ctx, tenantID, id)
	if apperr.Is(err, apperr.NotFound) {
		return Media{}, false, nil // a stale dedupe key of a deleted record
	}
	return m, err == nil, err
}

// Get returns one record of the tenant.
func (s *Service) Get(ctx context.Context, tenantID, id string) (Media, error) {
	if !ValidID(id) {
		return Media{}, apperr.New(apperr.NotFound, "no media %q", id)
	}
	m, ok, err := s.index.Get(ctx, tenantID, id)
	if err != nil {
		return Media{}, apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
	}
	if ok {
		return m, nil
	}
	m, err = s.readDoc(ctx, tenantID, id)
	if err != nil {
		return Media{}, err
	}
	// Re-warm the cache; the document is the truth either way.
	if err := s.index.Put(ctx, nil, m); err != nil {
		s.log.WarnContext(ctx, "re-indexing a record read from storage failed", "media_id", id, "err", err)
	}
	return m, nil
}

// List returns a page of a customer's media, newest first.
func (s *Service) List(ctx context.Context, tenantID, customerID string, q ListQuery) ([]Media, string, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultPageSize
	}
	if q.Limit > MaxPageSize {
		return nil, "", apperr.WithFields("limit too large", apperr.FieldError{Pointer: "query:limit", Detail: fmt.Sprintf("at most %d", MaxPageSize)})
	}
	if q.Tag != "" {
		tags, err := NormalizeTags([]string{q.Tag}, "query:tag")
		if err != nil {
			return nil, "", err
		}
		q.Tag = tags[0]
	}
	return s.index.ListByCustomer(ctx, tenantID, customerID, q)
}

// Tags lists the tenant's tags, most used first (for tag pickers).
func (s *Service) Tags(ctx context.Context, tenantID string, limit int) ([]TagCount, error) {
	return s.index.Tags(ctx, tenantID, limit)
}

// Tag adds and removes tags. Updates of one record are serialised through a
// cluster-wide lock, so concurrent taggers never lose each other's changes.
func (s *Service) Tag(ctx context.Context, tenantID, id string, add, remove []string) (Media, error) {
	addN, err := NormalizeTags(add, "/add")
	if err != nil {
		return Media{}, err
	}
	removeN, err := NormalizeTags(remove, "/remove")
	if err != nil {
		return Media{}, err
	}
	var prevTags []string
	m, err := s.Update(ctx, tenantID, id, func(m *Media) error {
		prevTags = m.Tags
		m.Tags = applyTags(m.Tags, addN, removeN)
		if len(m.Tags) > MaxTags {
			return apperr.New(apperr.Unprocessable, "a media holds at most %d tags; this change would leave %d", MaxTags, len(m.Tags))
		}
		if equalStrings(m.Tags, prevTags) {
			return ErrUnchanged
		}
		m.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil || equalStrings(m.Tags, prevTags) {
		return m, err
	}
	s.events.Publish(context.WithoutCancel(ctx), tenantID, Event{Type: EventTagged, Media: m,
		Added: difference(m.Tags, prevTags), Removed: difference(prevTags, m.Tags)})
	return m, nil
}

// ErrUnchanged, returned by an Update function, leaves the record as it is.
var ErrUnchanged = errors.New("media: unchanged")

// Update changes one record under its cluster-wide lock: fn gets the stored
// document to change in place, and the result is written and indexed. fn
// may return ErrUnchanged to write nothing; Update then returns the record
// as stored. Any other error from fn is returned as it is.
func (s *Service) Update(ctx context.Context, tenantID, id string, fn func(m *Media) error) (Media, error) {
	if !ValidID(id) {
		return Media{}, apperr.New(apperr.NotFound, "no media %q", id)
	}
	unlock, err := s.index.Lock(ctx, tenantID, "media:"+id, 30*time.Second)
	if err != nil {
		return Media{}, err
	}
	defer unlock()
	prev, err := s.readDoc(ctx, tenantID, id)
	if err != nil {
		return Media{}, err
	}
	m := prev
	m.Renditions = slices.Clone(prev.Renditions)
	if prev.Processing != nil {
		p := *prev.Processing
		p.Failures = slices.Clone(p.Failures)
		m.Processing = &p
	}
	if err := fn(&m); errors.Is(err, ErrUnchanged) {
		return prev, nil
	} else if err != nil {
		return Media{}, err
	}
	if err := s.writeDoc(ctx, m); err != nil {
		return Media{}, err
	}
	if err := s.index.Put(ctx, &prev, m); err != nil {
		return Media{}, apperr.Wrap(apperr.Unavailable, err, "the index is unavailable; run chatvault reindex if this persists")
	}
	return m, nil
}

// Reprocess queues processing of a record again, with the tenant's
// settings as they are now: after a failure, a settings change, or for a
// record archived before processing existed. A replaced original is
// processed from the rendition that replaced it. It is apperr.Conflict for a
// kind that has no processing, or when processing is off for the tenant.
func (s *Service) Reprocess(ctx context.Context, tenantID, id string) (Media, error) {
	if !s.policy(tenantID).Process || s.sched == nil {
		return Media{}, apperr.New(apperr.Conflict, "media processing is off for this tenant")
	}
	m, err := s.Update(ctx, tenantID, id, func(m *Media) error {
		if !Processable(m.Kind) {
			return apperr.New(apperr.Conflict, "%s media have no processing", m.Kind)
		}
		now := s.now().UTC()
		m.Processing = &Processing{State: ProcessingPending, UpdatedAt: now}
		m.UpdatedAt = now
		return nil
	})
	if err != nil {
		return Media{}, err
	}
	if err := s.sched.ScheduleProcessing(ctx, m); err != nil {
		return Media{}, apperr.Wrap(apperr.Unavailable, err, "the queue is unavailable")
	}
	return m, nil
}

// Lock takes a cluster-wide mutex named name for one record (see
// Index.Lock); processing holds one so a record is processed once at a time.
func (s *Service) Lock(ctx context.Context, tenantID, name string, wait time.Duration) (func(), error) {
	return s.index.Lock(ctx, tenantID, name, wait)
}

// Publish publishes e, for use cases built on Update.
func (s *Service) Publish(ctx context.Context, tenantID string, e Event) {
	s.events.Publish(context.WithoutCancel(ctx), tenantID, e)
}

// Blobs is the object storage the records live in, for use cases that
// store files beside a record.
func (s *Service) Blobs() BlobStore { return s.blobs }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now().UTC() }

// difference lists what a has and b lacks.
func difference(a, b []string) []string {
	in := map[string]bool{}
	for _, t := range b {
		in[t] = true
	}
	out := []string{}
	for _, t := range a {
		if !in[t] {
			out = append(out, t)
		}
	}
	return out
}

type noEvents struct{}

func (noEvents) Publish(context.Context, string, Event) {}

// Delete removes the index entries first (the record vanishes at once), then
// the document and the blob.
func (s *Service) Delete(ctx context.Context, tenantID, id string) error {
	if !ValidID(id) {
		return apperr.New(apperr.NotFound, "no media %q", id)
	}
	unlock, err := s.index.Lock(ctx, tenantID, "media:"+id, 30*time.Second)
	if err != nil {
		return err
	}
	defer unlock()
	m, err := s.readDoc(ctx, tenantID, id)
	if err != nil {
		return err
	}
	if err := s.index.Remove(ctx, m); err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
	}
	if err := s.blobs.Delete(ctx, docKey(tenantID, id)); err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "storage is unavailable")
	}
	// The original and every rendition, including any a processing run
	// wrote after the record was read.
	if err := s.deletePrefix(ctx, mediaPrefix(tenantID, id)); err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "storage is unavailable")
	}
	s.events.Publish(context.WithoutCancel(ctx), tenantID, Event{Type: EventDeleted, Media: m})
	return nil
}

func (s *Service) deletePrefix(ctx context.Context, prefix string) error {
	var keys []string
	if err := s.blobs.List(ctx, prefix, func(key string) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.blobs.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// Content is one servable file of a record: its original, or a rendition.
type Content struct {
	Rendition string // "" for the original
	BlobKey   string
	MimeType  string
	SizeBytes int64
	SHA256    string
}

// Content returns the file served for rendition ("" for the original). A
// replaced original is served as the rendition that replaced it.
func (m Media) Content(rendition string) (Content, error) {
	if rendition == "" && m.Original.ReplacedAt == nil {
		return Content{BlobKey: m.BlobKey, MimeType: m.MimeType, SizeBytes: m.SizeBytes, SHA256: m.SHA256}, nil
	}
	name := rendition
	if name == "" {
		name = m.Original.ReplacedBy
	}
	r, ok := m.Rendition(name)
	if !ok {
		names := make([]string, 0, len(m.Renditions))
		for _, r := range m.Renditions {
			names = append(names, r.Name)
		}
		detail := "this media has no renditions"
		if len(names) > 0 {
			detail = "this media has: " + strings.Join(names, ", ")
		}
		return Content{}, &apperr.Error{Kind: apperr.NotFound, Detail: fmt.Sprintf("no rendition %q", rendition),
			Fields: []apperr.FieldError{{Pointer: "query:rendition", Detail: detail}}}
	}
	return Content{Rendition: r.Name, BlobKey: r.BlobKey, MimeType: r.MimeType, SizeBytes: r.SizeBytes, SHA256: r.SHA256}, nil
}

// OpenContent streams what GET content serves without a rendition, from
// offset for length bytes (-1: to the end).
func (s *Service) OpenContent(ctx context.Context, m Media, offset, length int64) (io.ReadCloser, error) {
	c, err := m.Content("")
	if err != nil {
		return nil, err
	}
	return s.Open(ctx, c, offset, length)
}

// Open streams one file of a record, from offset for length bytes (-1: to
// the end).
func (s *Service) Open(ctx context.Context, c Content, offset, length int64) (io.ReadCloser, error) {
	r, err := s.blobs.NewRangeReader(ctx, c.BlobKey, offset, length)
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return nil, apperr.Wrap(apperr.Unavailable, err, "storage is unavailable")
	}
	return r, err
}

// Reindex rebuilds the whole Redis index from storage alone.
func (s *Service) Reindex(ctx context.Context) (int, error) {
	if err := s.index.Reset(ctx); err != nil {
		return 0, fmt.Errorf("clearing the index: %w", err)
	}
	count := 0
	err := s.blobs.List(ctx, "tenants/", func(key string) error {
		if !strings.HasSuffix(key, "/media.json") {
			return nil
		}
		raw, err := s.blobs.GetSmall(ctx, key)
		if apperr.Is(err, apperr.NotFound) {
			return nil // deleted while we walked
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		var m Media
		if err := json.Unmarshal(raw, &m); err != nil {
			s.log.WarnContext(ctx, "skipping an unreadable media document", "key", key, "err", err)
			return nil
		}
		if err := s.index.Put(ctx, nil, m); err != nil {
			return fmt.Errorf("indexing %s: %w", key, err)
		}
		s.reschedule(ctx, m)
		count++
		return nil
	})
	return count, err
}

// reschedule queues again the background work a record waits for: the
// queue lives in Redis, and a reindex follows a Redis loss. A job that
// still exists runs twice, which the jobs tolerate.
func (s *Service) reschedule(ctx context.Context, m Media) {
	if s.sched == nil {
		return
	}
	var err error
	switch {
	case m.Processing != nil && m.Processing.State == ProcessingPending:
		err = s.sched.ScheduleProcessing(ctx, m)
	case m.Original.ReplaceAfter != nil && m.Original.ReplacedAt == nil:
		err = s.sched.ScheduleReplacement(ctx, m)
	}
	if err != nil {
		s.log.WarnContext(ctx, "queueing a record's background work failed", "media_id", m.ID, "err", err)
	}
}

func (s *Service) writeDoc(ctx context.Context, m Media) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := s.blobs.PutSmall(ctx, docKey(m.TenantID, m.ID), raw, "application/json"); err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "storage is unavailable")
	}
	return nil
}

func (s *Service) readDoc(ctx context.Context, tenantID, id string) (Media, error) {
	raw, err := s.blobs.GetSmall(ctx, docKey(tenantID, id))
	if apperr.Is(err, apperr.NotFound) {
		return Media{}, apperr.New(apperr.NotFound, "no media %q", id)
	}
	if err != nil {
		return Media{}, apperr.Wrap(apperr.Unavailable, err, "storage is unavailable")
	}
	var m Media
	if err := json.Unmarshal(raw, &m); err != nil {
		return Media{}, fmt.Errorf("media document %s: %w", id, err)
	}
	return m, nil
}

// deleteQuietly cleans up after a failure; it must run even when the
// request's context is already cancelled.
func (s *Service) deleteQuietly(keys ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := s.blobs.Delete(ctx, k); err != nil {
			s.log.Error("cleanup of a partial archive failed", "key", k, "err", err)
		}
	}
}

// Paging and tag limits.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
	MaxTags         = 50
	MaxTagLen       = 64
	sniffLen        = 3072 // what mimetype reads by default
)

// NormalizeTags lower-cases and trims tags and drops duplicates, keeping
// the first-seen order.
func NormalizeTags(in []string, pointer string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	var fields []apperr.FieldError
	for i, t := range in {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == "":
			fields = append(fields, apperr.FieldError{Pointer: fmt.Sprintf("%s/%d", pointer, i), Detail: "a tag must not be empty"})
		case len([]rune(t)) > MaxTagLen:
			fields = append(fields, apperr.FieldError{Pointer: fmt.Sprintf("%s/%d", pointer, i), Detail: fmt.Sprintf("a tag has at most %d characters", MaxTagLen)})
		case strings.ContainsFunc(t, func(r rune) bool { return r == ',' || unicode.IsControl(r) }):
			fields = append(fields, apperr.FieldError{Pointer: fmt.Sprintf("%s/%d", pointer, i), Detail: "a tag must not contain commas or control characters"})
		case !seen[t]:
			seen[t] = true
			out = append(out, t)
		}
	}
	if pointer == "query:tag" && len(fields) > 0 {
		fields[0].Pointer = pointer
	}
	if len(fields) > 0 {
		return nil, apperr.WithFields("invalid tags", fields...)
	}
	return out, nil
}

// applyTags removes, then adds (a tag named in both ends up present), and
// returns the set sorted, so records and CRM fields read the same every time.
func applyTags(cur, add, remove []string) []string {
	set := map[string]bool{}
	for _, t := range cur {
		set[t] = true
	}
	for _, t := range remove {
		delete(set, t)
	}
	for _, t := range add {
		set[t] = true
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// NormalizeSHA256 accepts a sha256 in hex or base64 (standard or URL
// alphabet, padded or not), as providers send either, and returns hex.
func NormalizeSHA256(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return hex.EncodeToString(b), nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			return hex.EncodeToString(b), nil
		}
	}
	return "", errors.New("a sha256 must be 64 hex digits or 32 bytes in base64")
}

// classify decides the kind and stored MIME type from the client's hint,
// the provider's declaration and the sniffed content. Content that
// contradicts its declared kind is refused: an executable never becomes
// "audio" because a header said so.
func classify(hint Kind, declared string, sniffed *mimetype.MIME) (Kind, string, error) {
	if declared == "application/octet-stream" || declared == "binary/octet-stream" {
		declared = "" // says nothing about the content
	}
	kind := hint
	if kind == "" && declared != "" {
		kind = kindOfMime(declared)
	}
	if kind == "" {
		kind = kindOfMime(sniffed.String())
	}
	if !kind.Valid() {
		return "", "", apperr.WithFields("unknown kind", apperr.FieldError{Pointer: "/kind", Detail: "must be one of audio, video, image, document, sticker"})
	}
	if isExecutable(sniffed) {
		return "", "", apperr.New(apperr.UnsupportedMedia, "the file is an executable (%s), which is never archived", sniffed.String())
	}
	if !compatible(kind, sniffed) {
		return "", "", apperr.New(apperr.UnsupportedMedia, "the file's content is %s, which is not %s media", BaseMIME(sniffed.String()), kind)
	}
	if declared != "" && kind != KindDocument && kindOfMime(declared) != kind && !(kind == KindSticker && kindOfMime(declared) == KindImage) &&
		!(kind == KindAudio && kindOfMime(declared) == KindVideo) {
		return "", "", apperr.New(apperr.UnsupportedMedia, "the declared type %s is not %s media", declared, kind)
	}
	mimeType := declared
	if mimeType == "" || mimeType == "application/octet-stream" {
		mimeType = BaseMIME(sniffed.String())
	}
	return kind, mimeType, nil
}

func kindOfMime(m string) Kind {
	switch {
	case strings.HasPrefix(m, "audio/"), m == "application/ogg":
		return KindAudio
	case strings.HasPrefix(m, "video/"):
		return KindVideo
	case strings.HasPrefix(m, "image/"):
		return KindImage
	default:
		return KindDocument
	}
}

func compatible(kind Kind, sniffed *mimetype.MIME) bool {
	top := func(prefixes ...string) bool {
		for m := sniffed; m != nil; m = m.Parent() {
			for _, p := range prefixes {
				if strings.HasPrefix(m.String(), p) {
					return true
				}
			}
		}
		return false
	}
	switch kind {
	case KindAudio:
		// m4a and 3gp voice notes sniff as video containers.
		return top("audio/", "application/ogg", "video/mp4", "video/3gpp", "video/webm", "video/quicktime")
	case KindVideo:
		return top("video/", "application/ogg")
	case KindImage, KindSticker:
		return top("image/")
	default:
		return true
	}
}

func isExecutable(m *mimetype.MIME) bool {
	for _, t := range []string{"application/x-executable", "application/x-elf", "application/x-sharedlib", "application/x-mach-binary",
		"application/vnd.microsoft.portable-executable", "application/x-msdownload", "application/x-dosexec"} {
		if m.Is(t) {
			return true
		}
	}
	return false
}

func tooLarge(kind Kind, limit int64) error {
	return apperr.New(apperr.TooLarge, "%s media is limited to %d bytes for this tenant", kind, limit)
}

// copyLimited copies at most limit+1 bytes, so an oversize body is caught
// without reading it all; limit <= 0 means unlimited.
func copyLimited(ctx context.Context, dst io.Writer, src io.Reader, limit int64) (int64, error) {
	if limit > 0 {
		src = io.LimitReader(src, limit+1)
	}
	buf := make([]byte, 256<<10)
	w := &errWriter{w: dst}
	n, err := io.CopyBuffer(w, src, buf)
	switch {
	case err == nil:
		return n, nil
	case ctx.Err() != nil:
		return n, ctx.Err()
	case w.err != nil:
		// The storage side failed, not the provider: a 503, retryable.
		return n, apperr.Wrap(apperr.Unavailable, err, "storage failed after %d bytes", n)
	default:
		return n, apperr.Wrap(apperr.BadGateway, err, "reading the media from the provider failed after %d bytes", n)
	}
}

// errWriter remembers whether the write side of a copy failed.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

func sourceKey(identity, sha string) string {
	if sha != "" {
		identity += "#sha256:" + sha
	}
	return hashHex(identity)
}

func hashHex(s string) string {
	var h hash.Hash = sha256.New()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// BaseMIME is a media type without its parameters, lower-cased
// ("audio/ogg; codecs=opus" → "audio/ogg"); "" stays "".
func BaseMIME(m string) string {
	if m == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(m)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.SplitN(m, ";", 2)[0]))
	}
	return mt
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
