// Package events tells automations what happened to media: REST hook
// subscriptions (stored in object storage, cached in Redis), a per-tenant
// polling feed (a Redis stream), and signed webhook deliveries run as queue
// jobs. docs/EVENTS.md is the contract.
//
// Redis key layout (the tenant's hash tag first, as in package index, so
// one tenant's keys share a Cluster slot and meet in one script):
//
//	<prefix>{t:<tenant>}:hooks         hash, subscription ID → Subscription JSON (a cache)
//	<prefix>{t:<tenant>}:hooks:loaded  marker: the hash holds every subscription; expires (see WithCacheTTL)
//	<prefix>{t:<tenant>}:hooks:ver     counter bumped by every create and delete, fencing rebuilds
//	<prefix>{t:<tenant>}:hooks:lock    short lease serialising creates, so the per-tenant cap holds
//	<prefix>{t:<tenant>}:events        stream, the polling feed, trimmed to about FeedMaxLen entries
//
// Object storage holds the truth, one document per subscription:
//
//	tenants/<tenant>/hooks/<id>.json
//
// Events are best-effort: they are published after the record they describe
// is committed, and a failure to publish never undoes that record. The
// caller logs it; receivers that must not miss anything reconcile through
// the polling feed or the listing routes.
package events

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/chatvault/chatvault/internal/queue"
)

// Event types.
const (
	TypeArchived  = "media.archived"
	TypeTagged    = "media.tagged"
	TypeDeleted   = "media.deleted"
	TypeFailed    = "media.failed"
	TypeProcessed = "media.processed"
)

// Types lists every event type, in a stable order.
var Types = []string{TypeArchived, TypeTagged, TypeDeleted, TypeFailed, TypeProcessed}

// ValidType reports whether t is a known event type.
func ValidType(t string) bool { return slices.Contains(Types, t) }

// kinds mirrors media.Kinds; this package cannot import media, which will
// import it to declare its publisher port.
var kinds = []string{"audio", "video", "image", "document", "sticker"}

// Event is one thing that happened, as receivers see it (schemas/event.json)
// plus what this package needs to route it. The body delivered and kept in
// the feed is the JSON of the first four fields only.
type Event struct {
	ID        string          `json:"id"` // "evt_" + ULID; Publish sets it when empty
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"` // Publish sets it when zero
	Data      json.RawMessage `json:"data"`

	TenantID string `json:"-"`
	// Facets for subscription filters and feed queries, never serialised.
	// An event without a facet (media.failed has no kind) matches no filter
	// on it.
	CustomerID string   `json:"-"`
	Kind       string   `json:"-"`
	Tags       []string `json:"-"`
}

// Subscription is one REST hook. Secret signs deliveries; it is returned
// by Create and Get, and left out by List (see Hooks.List).
type Subscription struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Filters   Filters   `json:"filters"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	TenantID  string    `json:"tenant_id"`
}

// Filters narrow a subscription; an empty field matches anything.
type Filters struct {
	CustomerID string `json:"customer_id,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Tag        string `json:"tag,omitempty"` // normalised: trimmed, lower case
}

// Matches reports whether e should be delivered to s: same tenant, a type
// s subscribes to, and every filter s sets satisfied by e's facets.
func (s Subscription) Matches(e Event) bool {
	if s.TenantID == "" || s.TenantID != e.TenantID || !slices.Contains(s.Events, e.Type) {
		return false
	}
	return s.Filters.match(e)
}

func (f Filters) match(e Event) bool {
	if f.CustomerID != "" && f.CustomerID != e.CustomerID {
		return false
	}
	if f.Kind != "" && f.Kind != e.Kind {
		return false
	}
	if f.Tag != "" && !slices.Contains(e.Tags, f.Tag) {
		return false
	}
	return true
}

// BlobStore is the object storage holding subscription documents; package
// blobstore's Store implements it.
type BlobStore interface {
	PutSmall(ctx context.Context, key string, data []byte, contentType string) error
	// GetSmall returns an apperr.NotFound error for a missing key.
	GetSmall(ctx context.Context, key string) ([]byte, error)
	// Delete succeeds for a missing key.
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, fn func(key string) error) error
}

// Enqueuer puts delivery jobs on the queue; *queue.Queue implements it.
type Enqueuer interface {
	Enqueue(ctx context.Context, job queue.Job) (queue.Job, error)
}

// ClientFunc returns the SSRF-guarded HTTP client for a tenant's
// deliveries, e.g. (*source.Fetcher).Client. Its refusals must satisfy
// errors.As with an interface{ Refused() bool } target, as the source
// package's do, so that the deliverer can tell them from network failures.
type ClientFunc func(tenantID string) (*http.Client, error)

// URLCheck vets a subscription URL for a tenant before it is stored, e.g.
// (*source.Fetcher).CheckURL. Its error text is shown to the tenant.
type URLCheck func(tenantID, rawURL string) error

// JobType is the queue job type of a delivery.
const JobType = "deliver"

// Delivery queue settings. With full jitter, 24 attempts at a 1 min base
// and a 3 h cap retry for about 24 hours on average (at most about 49 h)
// before a delivery is dead-lettered, as docs/EVENTS.md promises.
const (
	DeliveryQueue       = "deliveries"
	DeliveryMaxAttempts = 24
	DeliveryBackoffBase = time.Minute
	DeliveryBackoffMax  = 3 * time.Hour
)

// DeliveryQueueOptions are the queue options for the delivery queue; add
// clocks, hooks and the like after them.
func DeliveryQueueOptions() []queue.Option {
	return []queue.Option{
		queue.WithMaxAttempts(DeliveryMaxAttempts),
		queue.WithBackoff(DeliveryBackoffBase, DeliveryBackoffMax),
	}
}

// newID returns prefix and a ULID: IDs sort by time.
func newID(prefix string, now time.Time) string {
	return prefix + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

var hookIDPattern = regexp.MustCompile(`^hook_[0-9A-HJKMNP-TV-Z]{26}$`)

// ValidHookID reports whether id has the shape of a subscription ID.
func ValidHookID(id string) bool { return hookIDPattern.MatchString(id) }

// validTenant guards key and path construction; configuration restricts
// tenant IDs far more, so this only stops a bug from mixing tenants.
func validTenant(id string) bool {
	return id != "" && !strings.ContainsAny(id, "{}/")
}

// space is one tenant's Redis key prefix, hash tag included.
func space(prefix, tenantID string) string { return prefix + "{t:" + tenantID + "}:" }
