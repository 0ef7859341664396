package events

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/queue"
)

func (e *env) deliverer(opts ...DelivererOption) *Deliverer {
	return NewDeliverer(e.hooks, e.fetcher.Client, append([]DelivererOption{WithDelivererClock(e.clock.Now)}, opts...)...)
}

func TestDeliverPostsASignedEvent(t *testing.T) {
	e := newEnv(t)
	rcv := newReceiver(t, http.StatusNoContent)
	e.allowlist(rcv.host())
	sub := e.mustCreate(t, rcv.url(), []string{TypeArchived}, Filters{})
	ev := archived("evt_01JD8X3QK2V7M9TW4R6YB5N0CE", "wa:1", "audio")
	job := deliveryJob(t, sub, ev)

	res, err := e.deliverer().Handle(context.Background(), job)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	var r DeliveryResult
	_ = json.Unmarshal(res, &r)
	if r != (DeliveryResult{SubscriptionID: sub.ID, EventID: ev.ID, Status: 204, Outcome: "delivered"}) {
		t.Errorf("result %s", res)
	}

	got := rcv.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	h, body := got[0].Header, got[0].Body
	want, _ := encodeEvent(ev)
	if string(body) != string(want) {
		t.Errorf("body %s, want %s", body, want)
	}
	for k, v := range map[string]string{
		"Content-Type":         "application/json",
		"Chatvault-Event-Id":   ev.ID,
		"Chatvault-Event-Type": TypeArchived,
		"User-Agent":           "chatvault-webhooks/1",
	} {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
	sig := h.Get("Chatvault-Signature")
	if !strings.HasPrefix(sig, "t="+strconv.FormatInt(e.clock.Now().Unix(), 10)+",v1=") {
		t.Errorf("signature %q does not carry the clock's time", sig)
	}
	if !VerifySignature(sub.Secret, sig, body, e.clock.Now().Add(time.Minute), 5*time.Minute) {
		t.Errorf("signature %q does not verify", sig)
	}
	if VerifySignature(sub.Secret, sig, append(body, ' '), e.clock.Now(), 5*time.Minute) {
		t.Error("signature verifies a changed body")
	}
}

func TestDeliverGoneUnsubscribes(t *testing.T) {
	e := newEnv(t)
	rcv := newReceiver(t, http.StatusGone)
	e.allowlist(rcv.host())
	sub := e.mustCreate(t, rcv.url(), []string{TypeArchived}, Filters{})
	keep := e.mustCreate(t, rcv.url()+"/other", []string{TypeArchived}, Filters{})
	d := e.deliverer()

	res, err := d.Handle(context.Background(), deliveryJob(t, sub, archived("evt_1", "wa:1", "audio")))
	if err != nil {
		t.Fatalf("410 is a success: %v", err)
	}
	if !strings.Contains(string(res), `"unsubscribed"`) {
		t.Errorf("result %s", res)
	}
	if _, err := e.hooks.Get(context.Background(), tenant, sub.ID); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("subscription after 410: %v", err)
	}
	if _, err := e.blobs.GetSmall(context.Background(), docKey(tenant, sub.ID)); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("document after 410: %v", err)
	}
	if _, err := e.hooks.Get(context.Background(), tenant, keep.ID); err != nil {
		t.Errorf("the other subscription went too: %v", err)
	}

	// A later delivery to the deleted subscription has nobody to tell.
	res, err = d.Handle(context.Background(), deliveryJob(t, sub, archived("evt_2", "wa:1", "audio")))
	if err != nil || !strings.Contains(string(res), `"skipped"`) {
		t.Errorf("delivery to a deleted subscription: %s, %v", res, err)
	}
	if n := len(rcv.requests()); n != 1 {
		t.Errorf("receiver saw %d requests, want 1", n)
	}
}

func TestDeliverFailuresAreRetried(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	for _, status := range []int{500, 503, 429, 404, 400} {
		rcv := newReceiver(t, status)
		e.allowlist(rcv.host())
		sub := e.mustCreate(t, rcv.url(), []string{TypeArchived}, Filters{})
		_, err := e.deliverer().Handle(ctx, deliveryJob(t, sub, archived("evt_1", "wa:1", "audio")))
		if err == nil || queue.IsPermanent(err) {
			t.Errorf("HTTP %d: %v, want a retryable error", status, err)
			continue
		}
		ae := wantKind(t, err, apperr.BadGateway)
		if !strings.Contains(ae.Detail, strconv.Itoa(status)) {
			t.Errorf("HTTP %d: detail %q", status, ae.Detail)
		}
	}

	// Redirects are not followed.
	target := newReceiver(t, 200)
	redirect := httptest.NewServer(http.RedirectHandler(target.url(), http.StatusFound))
	t.Cleanup(redirect.Close)
	e.allowlist(redirect.Listener.Addr().String(), target.host())
	sub := e.mustCreate(t, redirect.URL+"/hook", []string{TypeArchived}, Filters{})
	_, err := e.deliverer().Handle(ctx, deliveryJob(t, sub, archived("evt_1", "wa:1", "audio")))
	if err == nil || queue.IsPermanent(err) {
		t.Errorf("302: %v, want a retryable error", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect was followed (%d requests)", n)
	}

	// A receiver slower than the timeout is retried.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	e.allowlist(slow.Listener.Addr().String())
	sub = e.mustCreate(t, slow.URL, []string{TypeArchived}, Filters{})
	start := time.Now()
	_, err = e.deliverer(WithDeliveryTimeout(200*time.Millisecond)).Handle(ctx, deliveryJob(t, sub, archived("evt_1", "wa:1", "audio")))
	if err == nil || queue.IsPermanent(err) || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("timeout: %v, want a retryable error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout took %v", d)
	}

	// A closed port is a network error, retried.
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL, closedHost := closed.URL, closed.Listener.Addr().String()
	closed.Close()
	e.allowlist(closedHost)
	sub = e.mustCreate(t, closedURL, []string{TypeArchived}, Filters{})
	_, err = e.deliverer().Handle(ctx, deliveryJob(t, sub, archived("evt_1", "wa:1", "audio")))
	if err == nil || queue.IsPermanent(err) {
		t.Errorf("connection refused: %v, want a retryable error", err)
	}
}

func TestDeliverSSRFRefusalIsPermanent(t *testing.T) {
	e := newEnv(t)
	allowed := newReceiver(t, 200)
	other := newReceiver(t, 200)
	e.allowlist(allowed.host())
	for _, u := range []string{
		other.url(), // loopback, on a port the allowlist does not name
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:9/hook",
		"http://10.0.0.1/hook",
	} {
		sub := e.mustCreate(t, u, []string{TypeArchived}, Filters{})
		_, err := e.deliverer().Handle(context.Background(), deliveryJob(t, sub, archived("evt_1", "wa:1", "audio")))
		if !queue.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", u, err)
			continue
		}
		if !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("%s: %v", u, err)
		}
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the unallowlisted receiver got %d requests", n)
	}
}

func TestDeliverBadJobsArePermanent(t *testing.T) {
	e := newEnv(t)
	d := e.deliverer()
	for _, job := range []queue.Job{
		{Type: "archive", TenantID: tenant, Payload: json.RawMessage(`{}`)},
		{Type: JobType, TenantID: tenant, Payload: json.RawMessage(`{"subscription_id":"hook_x"}`)},
		{Type: JobType, TenantID: tenant, Payload: json.RawMessage(`{"subscription_id":"hook_x","event":{"type":"media.archived"}}`)},
		{Type: JobType, TenantID: tenant, Payload: json.RawMessage(`[1]`)},
	} {
		if _, err := d.Handle(context.Background(), job); !queue.IsPermanent(err) {
			t.Errorf("%s: %v, want permanent", job.Payload, err)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1732529700, 0)
	body := []byte(`{"id":"evt_1"}`)
	good := Sign("whsec_k", now, body)
	if good != "t=1732529700,v1="+hexMAC("whsec_k", "1732529700", body) {
		t.Fatalf("Sign = %s", good)
	}
	other := Sign("whsec_old", now, body)
	cases := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   bool
	}{
		{"valid", "whsec_k", good, body, now, true},
		{"valid, within tolerance", "whsec_k", good, body, now.Add(4 * time.Minute), true},
		{"too old", "whsec_k", good, body, now.Add(6 * time.Minute), false},
		{"from the future", "whsec_k", good, body, now.Add(-6 * time.Minute), false},
		{"wrong secret", "whsec_x", good, body, now, false},
		{"changed body", "whsec_k", good, []byte(`{"id":"evt_2"}`), now, false},
		{"no timestamp", "whsec_k", good[strings.Index(good, ",")+1:], body, now, false},
		{"no signature", "whsec_k", "t=1732529700", body, now, false},
		{"empty", "whsec_k", "", body, now, false},
		{"garbage", "whsec_k", "t=abc,v1=zz", body, now, false},
		{"two timestamps", "whsec_k", "t=1,t=1732529700," + good[strings.Index(good, ",")+1:], body, now, false},
		{"rotation: either secret", "whsec_k", other + "," + good[strings.Index(good, ",")+1:], body, now, true},
		{"timestamp changed", "whsec_k", "t=1732529701" + good[strings.Index(good, ","):], body, now, false},
	}
	for _, c := range cases {
		if got := VerifySignature(c.secret, c.header, c.body, c.now, 5*time.Minute); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if !VerifySignature("whsec_k", good, body, now.Add(4*time.Minute), 0) {
		t.Error("tolerance 0 should mean the default")
	}
}

func hexMAC(secret, ts string, body []byte) string {
	return strings.TrimPrefix(Sign(secret, time.Unix(mustInt(ts), 0), body), "t="+ts+",v1=")
}

func mustInt(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

// TestDeliveryEndToEnd runs the real queue: the receiver fails twice, then
// accepts, and sees one event ID throughout.
func TestDeliveryEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rcv := newReceiver(t, 500, 502, 200)
	e.allowlist(rcv.host())
	sub := e.mustCreate(t, rcv.url(), []string{TypeArchived}, Filters{Kind: "audio"})
	e.mustCreate(t, rcv.url()+"/video", []string{TypeArchived}, Filters{Kind: "video"})

	q := newTestQueue(e, append(DeliveryQueueOptions(), queue.WithBackoff(time.Millisecond, 10*time.Millisecond))...)
	rec := &recorder{q: q}
	pub := NewPublisher(e.feed, e.hooks, rec)
	d := NewDeliverer(e.hooks, e.fetcher.Client) // real clock: the receiver checks freshness

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.Run(runCtx, "w1", 2, d.Handle) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not stop")
		}
	})

	if err := pub.Publish(ctx, Event{Type: TypeArchived, Data: json.RawMessage(`{"media":{"id":"med_1","kind":"audio"}}`), TenantID: tenant, CustomerID: "wa:1", Kind: "audio"}); err != nil {
		t.Fatal(err)
	}
	jobs := rec.all()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	waitFor(t, "the job to succeed", func() bool {
		st, err := q.Status(ctx, tenant, jobs[0].ID)
		return err == nil && st.State == queue.StateSucceeded
	})
	st, _ := q.Status(ctx, tenant, jobs[0].ID)
	if st.Attempts != 3 {
		t.Errorf("attempts %d, want 3", st.Attempts)
	}

	got := rcv.requests()
	if len(got) != 3 {
		t.Fatalf("receiver saw %d requests, want 3", len(got))
	}
	id := got[0].Header.Get(HeaderEventID)
	if !eventIDPattern.MatchString(id) {
		t.Fatalf("event ID %q", id)
	}
	for i, r := range got {
		if r.Header.Get(HeaderEventID) != id || string(r.Body) != string(got[0].Body) {
			t.Errorf("attempt %d: event %s, body %s; want %s and the first body", i+1, r.Header.Get(HeaderEventID), r.Body, id)
		}
		if !VerifySignature(sub.Secret, r.Header.Get(HeaderSignature), r.Body, time.Now(), DefaultTolerance) {
			t.Errorf("attempt %d: signature does not verify", i+1)
		}
	}
	if feed, _, _ := e.feed.List(ctx, tenant, FeedQuery{Type: TypeArchived}); len(feed) != 1 || feed[0].ID != id {
		t.Errorf("feed %+v, want the delivered event %s", feed, id)
	}
}
