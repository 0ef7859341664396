package events

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/blobstore"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/source"
	"github.com/chatvault/chatvault/internal/testenv"
)

const tenant = "acme"

// clock is a test clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one test's real components: Redis under its own prefix, a file
// store in its temporary directory, and a Fetcher whose allowlist the test
// sets.
type env struct {
	rdb     *redis.Client
	prefix  string
	blobs   *blobstore.Store
	clock   *clock
	fetcher *source.Fetcher
	hooks   *Hooks
	feed    *Feed

	mu    sync.Mutex
	allow []string
}

func newEnv(t *testing.T, hookOpts ...HooksOption) *env {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	blobs, err := blobstore.Open(context.Background(), testenv.FileStore(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = blobs.Close() })
	e := &env{rdb: rdb, prefix: prefix, blobs: blobs, clock: newClock()}
	e.fetcher = source.New(func(string) (source.Settings, bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return source.Settings{Allowlist: append([]string(nil), e.allow...)}, true
	})
	t.Cleanup(e.fetcher.CloseIdleConnections)
	e.hooks = NewHooks(blobs, rdb, prefix, append([]HooksOption{WithHooksClock(e.clock.Now)}, hookOpts...)...)
	e.feed = NewFeed(rdb, prefix)
	return e
}

// allowlist replaces the tenant's SSRF allowlist.
func (e *env) allowlist(entries ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.allow = entries
}

// wipeRedis deletes every key of the test, as a Redis restart without
// persistence would.
func (e *env) wipeRedis(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, e.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := e.rdb.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) mustCreate(t *testing.T, url string, evs []string, f Filters) Subscription {
	t.Helper()
	s, err := e.hooks.Create(context.Background(), tenant, url, evs, f)
	if err != nil {
		t.Fatalf("Create(%s): %v", url, err)
	}
	// IDs made in one millisecond sort at random; listings are in ID order.
	e.clock.Advance(time.Second)
	return s
}

// request is what a receiver saw.
type request struct {
	Header http.Header
	Body   []byte
}

// receiver is a webhook endpoint on 127.0.0.1 that answers with the
// statuses it is given in turn (the last one from then on).
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	statuses []int
	got      []request
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{Header: req.Header.Clone(), Body: body})
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status = r.statuses[0]
			if len(r.statuses) > 1 {
				r.statuses = r.statuses[1:]
			}
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string  { return r.srv.URL + "/hook" }
func (r *receiver) host() string { return r.srv.Listener.Addr().String() }

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// recorder is an Enqueuer that keeps what it put on the real queue.
type recorder struct {
	q    Enqueuer
	fail error

	mu   sync.Mutex
	jobs []queue.Job
}

func (r *recorder) Enqueue(ctx context.Context, job queue.Job) (queue.Job, error) {
	if r.fail != nil {
		return queue.Job{}, r.fail
	}
	j, err := r.q.Enqueue(ctx, job)
	if err == nil {
		r.mu.Lock()
		r.jobs = append(r.jobs, j)
		r.mu.Unlock()
	}
	return j, err
}

func (r *recorder) all() []queue.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]queue.Job(nil), r.jobs...)
}

// deliveryJob builds the job Publish would enqueue for e and s.
func deliveryJob(t *testing.T, s Subscription, e Event) queue.Job {
	t.Helper()
	body, err := encodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(DeliveryPayload{SubscriptionID: s.ID, Event: body})
	return queue.Job{ID: "job_test", Type: JobType, TenantID: tenant, Payload: p, Attempt: 1}
}

func wantKind(t *testing.T, err error, k apperr.Kind) *apperr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", k)
	}
	e, ok := apperr.As(err)
	if !ok || e.Kind != k {
		t.Fatalf("got %v, want kind %s", err, k)
	}
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func archived(id, customer, kind string, tags ...string) Event {
	return Event{
		ID: id, Type: TypeArchived, CreatedAt: time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC),
		Data:     json.RawMessage(`{"media":{"id":"med_1"}}`),
		TenantID: tenant, CustomerID: customer, Kind: kind, Tags: tags,
	}
}
