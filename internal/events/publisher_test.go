package events

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/queue"
)

func newTestQueue(e *env, opts ...queue.Option) *queue.Queue {
	base := []queue.Option{queue.WithBlock(20 * time.Millisecond), queue.WithPollInterval(10 * time.Millisecond)}
	return queue.New(e.rdb, e.prefix, DeliveryQueue, append(base, opts...)...)
}

var eventIDPattern = regexp.MustCompile(`^evt_[0-9A-HJKMNP-TV-Z]{26}$`)

func TestPublishQueuesOneDeliveryPerMatchingSubscription(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := newTestQueue(e)
	rec := &recorder{q: q}
	pub := NewPublisher(e.feed, e.hooks, rec, WithPublisherClock(e.clock.Now))

	all := e.mustCreate(t, "https://a.example/all", []string{TypeArchived}, Filters{})
	vip := e.mustCreate(t, "https://b.example/vip", []string{TypeArchived, TypeDeleted}, Filters{CustomerID: "wa:1", Tag: "vip"})
	e.mustCreate(t, "https://c.example/video", []string{TypeArchived}, Filters{Kind: "video"})
	e.mustCreate(t, "https://d.example/deleted", []string{TypeDeleted}, Filters{})
	e.mustCreate(t, "https://e.example/other-customer", []string{TypeArchived}, Filters{CustomerID: "wa:2"})

	ev := Event{Type: TypeArchived, Data: json.RawMessage(`{"media":{"id":"med_1"}}`), TenantID: tenant, CustomerID: "wa:1", Kind: "audio", Tags: []string{"vip"}}
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}

	jobs := rec.all()
	if len(jobs) != 2 {
		t.Fatalf("%d jobs, want 2: %+v", len(jobs), jobs)
	}
	var subs []string
	var bodies []string
	for _, j := range jobs {
		if j.Type != JobType || j.TenantID != tenant {
			t.Errorf("job %+v", j)
		}
		var p DeliveryPayload
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, p.SubscriptionID)
		bodies = append(bodies, string(p.Event))
	}
	slices.Sort(subs)
	if want := []string{all.ID, vip.ID}; !slices.Equal(subs, want) {
		t.Errorf("deliveries to %v, want %v", subs, want)
	}
	if bodies[0] != bodies[1] {
		t.Errorf("deliveries carry different bodies:\n%s\n%s", bodies[0], bodies[1])
	}
	var body Event
	if err := json.Unmarshal([]byte(bodies[0]), &body); err != nil {
		t.Fatal(err)
	}
	if !eventIDPattern.MatchString(body.ID) || body.Type != TypeArchived || !body.CreatedAt.Equal(e.clock.Now()) || string(body.Data) != string(ev.Data) {
		t.Errorf("delivered body %s", bodies[0])
	}
	if st, err := q.Stats(ctx); err != nil || st.Length != 2 {
		t.Errorf("queue stats %+v, %v", st, err)
	}

	// The feed has the same event under the same ID.
	feed, _, err := e.feed.List(ctx, tenant, FeedQuery{Type: TypeArchived})
	if err != nil || len(feed) != 1 || feed[0].ID != body.ID {
		t.Errorf("feed %+v, %v; want %s", feed, err, body.ID)
	}

	// A given ID and time are kept.
	ev.ID, ev.CreatedAt = "evt_01JD8X3QK2V7M9TW4R6YB5N0CE", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	feed, _, _ = e.feed.List(ctx, tenant, FeedQuery{Type: TypeArchived, Limit: 1})
	if feed[0].ID != ev.ID || !feed[0].CreatedAt.Equal(ev.CreatedAt) {
		t.Errorf("feed head %+v", feed[0])
	}
}

func TestPublishReportsFailuresAfterTryingEverything(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	down := apperr.New(apperr.Unavailable, "job queue unavailable")
	pub := NewPublisher(e.feed, e.hooks, &recorder{fail: down})
	e.mustCreate(t, "https://a.example/1", []string{TypeDeleted}, Filters{})
	e.mustCreate(t, "https://a.example/2", []string{TypeDeleted}, Filters{})

	err := pub.Publish(ctx, Event{Type: TypeDeleted, Data: json.RawMessage(`{"media_id":"med_1"}`), TenantID: tenant})
	if !errors.Is(err, down) {
		t.Fatalf("Publish = %v, want the enqueue failure", err)
	}
	// The feed still got the event: failures do not stop other steps.
	if feed, _, _ := e.feed.List(ctx, tenant, FeedQuery{Type: TypeDeleted}); len(feed) != 1 {
		t.Errorf("feed %+v", feed)
	}

	wantKind(t, pub.Publish(ctx, Event{Type: "media.exploded", TenantID: tenant}), apperr.Invalid)
	wantKind(t, pub.Publish(ctx, Event{Type: TypeDeleted}), apperr.Invalid)
	wantKind(t, pub.Publish(ctx, Event{Type: TypeDeleted, TenantID: tenant, Data: json.RawMessage(`{bad`)}), apperr.Invalid)
}
