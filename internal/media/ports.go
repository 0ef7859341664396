package media

import (
	"context"
	"io"
	"time"
)

// ListQuery selects a page of one customer's media, newest first.
type ListQuery struct {
	Kind   Kind      // "" for any
	Tag    string    // "" for any; already normalised
	Since  time.Time // zero for no bound; inclusive
	Until  time.Time // zero for no bound; exclusive
	Limit  int       // 1..200
	Cursor string    // opaque, from a previous page's next cursor
}

// Index is the rebuildable Redis view of the records: per-customer listing,
// tag and kind filters, a record cache and the natural-dedupe keys.
type Index interface {
	// Put writes m's cache entry and index entries. prev is the record as it
	// was indexed before (nil for a new record) so stale tag entries go.
	Put(ctx context.Context, prev *Media, m Media) error
	// Remove drops every index entry and the cache entry of m.
	Remove(ctx context.Context, m Media) error
	// Get returns the cached record; ok is false on a cache miss.
	Get(ctx context.Context, tenantID, id string) (m Media, ok bool, err error)
	// ListByCustomer returns one page and the cursor of the next ("" at the end).
	ListByCustomer(ctx context.Context, tenantID, customerID string, q ListQuery) ([]Media, string, error)
	// LookupSource returns the media ID archived for a natural source key.
	LookupSource(ctx context.Context, tenantID, sourceKey string) (id string, ok bool, err error)
	// Lock takes a cluster-wide mutex, renewed until unlock is called.
	// It waits up to wait for a holder to finish; apperr.Conflict after that.
	Lock(ctx context.Context, tenantID, name string, wait time.Duration) (unlock func(), err error)
	// Reset drops every index entry of every tenant (before a reindex).
	Reset(ctx context.Context) error
	// Tags lists the tenant's tags, most used first.
	Tags(ctx context.Context, tenantID string, limit int) ([]TagCount, error)
}

// TagCount is a tag and how many of the tenant's media carry it.
type TagCount struct {
	Tag   string `json:"tag"`
	Count int64  `json:"count"`
}

// BlobStore is the object storage holding originals and media.json documents.
type BlobStore interface {
	// NewWriter streams an object; it becomes visible only on a successful
	// Close. Cancelling ctx before Close aborts the write and leaves nothing.
	NewWriter(ctx context.Context, key, contentType string) (io.WriteCloser, error)
	NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	PutSmall(ctx context.Context, key string, data []byte, contentType string) error
	GetSmall(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, fn func(key string) error) error
}

// Event is a change to a record that automations hear about.
type Event struct {
	Type     string // one of the Event constants
	Media    Media
	Added    []string           // EventTagged only
	Removed  []string           // EventTagged only
	JobID    string             // EventFailed only: the processing job
	Failures []RenditionFailure // EventFailed only
}

// Event types.
const (
	EventArchived  = "media.archived"
	EventTagged    = "media.tagged"
	EventDeleted   = "media.deleted"
	EventProcessed = "media.processed" // probing and renditions finished, done or failed
	EventFailed    = "media.failed"    // processing failed (archive failures come from the queue)
)

// Events publishes changes. Publishing is best effort and never fails the
// use case: the record is committed before its event is published.
type Events interface {
	Publish(ctx context.Context, tenantID string, e Event)
}
