package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/queue"
)

// DeliveryPayload is the payload of a delivery job. Event is the exact body
// to send, fixed at publish time, so every attempt sends the same bytes
// (and the same event ID) however often it is retried.
type DeliveryPayload struct {
	SubscriptionID string          `json:"subscription_id"`
	Event          json.RawMessage `json:"event"`
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithPublisherClock injects the clock used for event IDs and created_at.
func WithPublisherClock(now func() time.Time) PublisherOption {
	return func(p *Publisher) { p.now = now }
}

// Publisher records events in the feed and queues one delivery per
// matching subscription. It is safe for concurrent use.
type Publisher struct {
	feed  *Feed
	hooks *Hooks
	queue Enqueuer
	now   func() time.Time
}

// NewPublisher returns a Publisher over feed, hooks and the delivery queue.
func NewPublisher(feed *Feed, hooks *Hooks, q Enqueuer, opts ...PublisherOption) *Publisher {
	p := &Publisher{feed: feed, hooks: hooks, queue: q, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Publish sets e's ID ("evt_" + ULID) and CreatedAt when they are empty,
// appends e to the feed and enqueues a delivery job for every subscription
// it matches. It returns every failure, joined, after trying every step: a
// feed outage does not stop deliveries, nor one failed enqueue the others.
//
// Events are best-effort. Callers publish after the record is committed
// and log a failure rather than undo or fail the request: the record is the
// truth, and a missed event can be found through the listing routes.
func (p *Publisher) Publish(ctx context.Context, e Event) error {
	if !validTenant(e.TenantID) || !ValidType(e.Type) {
		return apperr.New(apperr.Invalid, "event needs a tenant and a known type, got %q", e.Type)
	}
	now := p.now().UTC()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now.Truncate(time.Millisecond)
	}
	if e.ID == "" {
		e.ID = newID("evt_", e.CreatedAt)
	}
	body, err := encodeEvent(e)
	if err != nil {
		return err
	}
	var errs []error
	if err := p.feed.Append(ctx, e); err != nil {
		errs = append(errs, fmt.Errorf("event %s: feed: %w", e.ID, err))
	}
	subs, err := p.hooks.ForEvent(ctx, e.TenantID, e)
	if err != nil {
		errs = append(errs, fmt.Errorf("event %s: subscriptions: %w", e.ID, err))
	}
	for _, s := range subs {
		payload, err := json.Marshal(DeliveryPayload{SubscriptionID: s.ID, Event: body})
		if err != nil {
			errs = append(errs, fmt.Errorf("event %s: %w", e.ID, err))
			continue
		}
		_, err = p.queue.Enqueue(ctx, queue.Job{Type: JobType, TenantID: e.TenantID, Payload: payload})
		if err != nil {
			errs = append(errs, fmt.Errorf("event %s: enqueue delivery to %s: %w", e.ID, s.ID, err))
		}
	}
	return errors.Join(errs...)
}
