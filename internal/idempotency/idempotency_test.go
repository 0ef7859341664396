package idempotency_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/idempotency"
	"github.com/chatvault/chatvault/internal/testenv"
	"github.com/redis/go-redis/v9"
)

var (
	fpA = idempotency.Fingerprint("POST", "/v1/media", []byte(`{"customer_id":"c1"}`))
	fpB = idempotency.Fingerprint("POST", "/v1/media", []byte(`{"customer_id":"c2"}`))
)

var fixedNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

func newStore(t *testing.T, opts ...idempotency.Option) (*idempotency.Store, *redis.Client, string) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	return idempotency.New(rdb, prefix, append([]idempotency.Option{idempotency.WithClock(clock)}, opts...)...), rdb, prefix
}

func mustLease(t *testing.T, s *idempotency.Store, tenant, key, fp string) *idempotency.Lease {
	t.Helper()
	lease, resp, err := s.Begin(context.Background(), tenant, key, fp)
	if err != nil || lease == nil || resp != nil {
		t.Fatalf("Begin(%s) = %v, %v, %v; want a lease", key, lease, resp, err)
	}
	return lease
}

func wantKind(t *testing.T, err error, kind apperr.Kind) {
	t.Helper()
	if !apperr.Is(err, kind) {
		t.Fatalf("error = %v, want kind %s", err, kind)
	}
}

var created = idempotency.Response{
	Status: 201,
	Header: map[string]string{"Content-Type": "application/json", "Location": "/v1/media/m1"},
	Body:   []byte(`{"id":"m1"}`),
}

func TestReplayAfterComplete(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	testReplay(t, s)
}

func testReplay(t *testing.T, s *idempotency.Store) {
	ctx := context.Background()
	lease := mustLease(t, s, "acme", "k1", fpA)
	if err := lease.Complete(ctx, created); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	for range 2 {
		lease, resp, err := s.Begin(ctx, "acme", "k1", fpA)
		if err != nil || lease != nil || resp == nil {
			t.Fatalf("repeat: %v, %v, %v; want the stored response", lease, resp, err)
		}
		if resp.Status != 201 || !bytes.Equal(resp.Body, created.Body) ||
			resp.Header["Location"] != "/v1/media/m1" || resp.Header["Content-Type"] != "application/json" {
			t.Errorf("replayed %+v, want %+v", resp, created)
		}
		if !resp.CompletedAt.Equal(fixedNow) {
			t.Errorf("CompletedAt = %v, want the injected clock's %v", resp.CompletedAt, fixedNow)
		}
	}
	if err := lease.Complete(ctx, created); !errors.Is(err, idempotency.ErrLeaseFinished) {
		t.Errorf("second Complete = %v, want ErrLeaseFinished", err)
	}
	// The same key in another tenant is another record.
	mustLease(t, s, "globex", "k1", fpA)
}

func TestConflictWhileInFlight(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	mustLease(t, s, "acme", "k1", fpA)
	_, _, err := s.Begin(context.Background(), "acme", "k1", fpA)
	wantKind(t, err, apperr.Conflict)
	if e, _ := apperr.As(err); !strings.Contains(e.Detail, "still in progress") {
		t.Errorf("detail = %q", e.Detail)
	}
}

func TestDifferentRequestIsUnprocessable(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()

	lease := mustLease(t, s, "acme", "k1", fpA)
	_, _, err := s.Begin(ctx, "acme", "k1", fpB)
	wantKind(t, err, apperr.Unprocessable)
	if e, _ := apperr.As(err); !strings.Contains(e.Detail, "different request") {
		t.Errorf("detail = %q", e.Detail)
	}

	if err := lease.Complete(ctx, created); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Begin(ctx, "acme", "k1", fpB)
	wantKind(t, err, apperr.Unprocessable)
}

// waitForLease retries Begin until the in-flight record has expired; until
// then every attempt must see the record in flight.
func waitForLease(t *testing.T, s *idempotency.Store, key, fp string) *idempotency.Lease {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lease, resp, err := s.Begin(context.Background(), "acme", key, fp)
		if lease != nil {
			return lease
		}
		if resp != nil || !apperr.Is(err, apperr.Conflict) {
			t.Fatalf("while the old lease runs out: %v, %v; want conflict", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the abandoned lease never expired")
	return nil
}

func TestCrashedRequestFreesKey(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t, idempotency.WithLease(300*time.Millisecond))

	t.Run("never renewed", func(t *testing.T) {
		mustLease(t, s, "acme", "crash1", fpA) // the process dies before Start
		waitForLease(t, s, "crash1", fpA)
	})
	t.Run("renewal stops with its context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		mustLease(t, s, "acme", "crash2", fpA).Start(ctx)
		cancel()
		waitForLease(t, s, "crash2", fpA)
	})
}

func TestRenewalKeepsLongRequestInFlight(t *testing.T) {
	t.Parallel()
	const lease = 600 * time.Millisecond
	s, rdb, prefix := newStore(t, idempotency.WithLease(lease))
	ctx := context.Background()

	l := mustLease(t, s, "acme", "long", fpA)
	l.Start(ctx)
	l.Start(ctx) // a second Start must not add a second renewer
	time.Sleep(3 * lease)

	_, _, err := s.Begin(ctx, "acme", "long", fpA)
	wantKind(t, err, apperr.Conflict)
	if err := l.Complete(ctx, created); err != nil {
		t.Fatalf("Complete after %v of renewed lease: %v", 3*lease, err)
	}
	if _, resp, err := s.Begin(ctx, "acme", "long", fpA); err != nil || resp == nil {
		t.Fatalf("replay: %v, %v", resp, err)
	}
	// Renewal stopped with Complete: it must not cut the 24 h TTL back to a lease.
	time.Sleep(lease)
	if pttl := rdb.PTTL(ctx, prefix+"{t:acme}:idem:long").Val(); pttl < time.Hour {
		t.Fatalf("PTTL after Complete = %v, want the 24h TTL", pttl)
	}
}

func TestCompleteAfterLosingLeaseFails(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t, idempotency.WithLease(300*time.Millisecond))
	ctx := context.Background()

	stale := mustLease(t, s, "acme", "k1", fpA)
	fresh := waitForLease(t, s, "k1", fpA)

	if err := stale.Complete(ctx, idempotency.Response{Status: 200, Body: []byte(`{"stale":true}`)}); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("stale Complete = %v, want ErrLeaseLost", err)
	}
	if err := stale.Release(ctx); !errors.Is(err, idempotency.ErrLeaseFinished) {
		t.Fatalf("stale Release after Complete = %v, want ErrLeaseFinished", err)
	}
	_, _, err := s.Begin(ctx, "acme", "k1", fpA)
	wantKind(t, err, apperr.Conflict) // the fresh lease is untouched

	if err := fresh.Complete(ctx, created); err != nil {
		t.Fatal(err)
	}
	_, resp, err := s.Begin(ctx, "acme", "k1", fpA)
	if err != nil || resp == nil || !bytes.Equal(resp.Body, created.Body) {
		t.Fatalf("replay = %+v, %v; want the fresh request's answer", resp, err)
	}

	// A lease that expired with nobody taking over is lost as well.
	orphan := mustLease(t, s, "acme", "k2", fpA)
	waitForLease(t, s, "k2", fpA)
	if err := orphan.Release(ctx); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("stale Release = %v, want ErrLeaseLost", err)
	}
	_, _, err = s.Begin(ctx, "acme", "k2", fpA)
	wantKind(t, err, apperr.Conflict) // the stale Release deleted nothing
}

func TestTTLs(t *testing.T) {
	t.Parallel()
	s, rdb, prefix := newStore(t, idempotency.WithLease(5*time.Second))
	ctx := context.Background()
	key := prefix + "{t:acme}:idem:k1"

	l := mustLease(t, s, "acme", "k1", fpA)
	if pttl := rdb.PTTL(ctx, key).Val(); pttl <= 0 || pttl > 5*time.Second {
		t.Errorf("in-flight PTTL = %v, want the 5s lease", pttl)
	}
	if err := l.Complete(ctx, created); err != nil {
		t.Fatal(err)
	}
	if pttl := rdb.PTTL(ctx, key).Val(); pttl < 24*time.Hour-time.Minute || pttl > 24*time.Hour {
		t.Errorf("completed PTTL = %v, want 24h", pttl)
	}
}

func TestReleaseLetsClientRetry(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	l := mustLease(t, s, "acme", "k1", fpA)
	l.Start(ctx)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Released means forgotten: even a different body may now use the key.
	mustLease(t, s, "acme", "k1", fpB)
}

func TestCompleteRefusesLargeBody(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	l := mustLease(t, s, "acme", "k1", fpA)

	big := idempotency.Response{Status: 200, Body: make([]byte, idempotency.MaxResponseBody+1)}
	if err := l.Complete(ctx, big); !errors.Is(err, idempotency.ErrResponseTooLarge) {
		t.Fatalf("Complete(64 KiB + 1) = %v, want ErrResponseTooLarge", err)
	}
	_, _, err := s.Begin(ctx, "acme", "k1", fpA)
	wantKind(t, err, apperr.Conflict) // nothing stored, lease still held

	fits := idempotency.Response{Status: 200, Body: bytes.Repeat([]byte("x"), idempotency.MaxResponseBody)}
	if err := l.Complete(ctx, fits); err != nil {
		t.Fatalf("Complete(64 KiB) = %v", err)
	}
	if _, resp, err := s.Begin(ctx, "acme", "k1", fpA); err != nil || len(resp.Body) != idempotency.MaxResponseBody {
		t.Fatalf("replay of a 64 KiB body: %v", err)
	}
}

func TestConcurrentBeginGrantsOneLease(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		leases    int
		conflicts int
		others    []error
	)
	for range 20 {
		wg.Go(func() {
			lease, _, err := s.Begin(context.Background(), "acme", "race", fpA)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case lease != nil:
				leases++
			case apperr.Is(err, apperr.Conflict):
				conflicts++
			default:
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if leases != 1 || conflicts != 19 || len(others) != 0 {
		t.Fatalf("leases %d, conflicts %d, other results %v; want 1 and 19", leases, conflicts, others)
	}
}

func TestKeyValidation(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	for _, key := range []string{"", strings.Repeat("k", 256), "tab\there", "caf\u00e9", "nul\x00"} {
		_, _, err := s.Begin(context.Background(), "acme", key, fpA)
		e, ok := apperr.As(err)
		if !ok || e.Kind != apperr.Invalid || len(e.Fields) != 1 || e.Fields[0].Pointer != "header:Idempotency-Key" {
			t.Errorf("Begin(%q) = %v, want invalid header:Idempotency-Key", key, err)
		}
	}
	for _, key := range []string{strings.Repeat("k", 255), "a", "8e03978e-40d5-43e8-bc93-6894a57f9324", "with space {and} braces"} {
		mustLease(t, s, "acme", key, fpA)
	}
	if _, _, err := s.Begin(context.Background(), "a}b", "k", fpA); err == nil {
		t.Error("tenant ID with a brace accepted")
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := idempotency.Fingerprint("POST", "/v1/media", []byte("{}"))
	if len(base) != 64 {
		t.Fatalf("fingerprint %q is not hex sha256", base)
	}
	if idempotency.Fingerprint("post", "/v1/media", []byte("{}")) != base {
		t.Error("method case changes the fingerprint")
	}
	for _, other := range []string{
		idempotency.Fingerprint("PUT", "/v1/media", []byte("{}")),
		idempotency.Fingerprint("POST", "/v1/media/x", []byte("{}")),
		idempotency.Fingerprint("POST", "/v1/media", []byte("{ }")),
		idempotency.Fingerprint("POST", "/v1/media\n{", []byte("}")),
	} {
		if other == base {
			t.Error("different requests share a fingerprint")
		}
	}
}

// TestMiniredis runs the package on the embedded dev Redis, where
// FastForward lets a lease expire without sleeping.
func TestMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s := idempotency.New(rdb, "mr:", idempotency.WithClock(clock))
	ctx := context.Background()

	testReplay(t, s)
	if ttl := mr.TTL("mr:{t:acme}:idem:k1"); ttl != 24*time.Hour {
		t.Errorf("completed TTL = %v, want 24h", ttl)
	}

	mustLease(t, s, "acme", "crash", fpA)
	_, _, err := s.Begin(ctx, "acme", "crash", fpB)
	wantKind(t, err, apperr.Unprocessable)
	_, _, err = s.Begin(ctx, "acme", "crash", fpA)
	wantKind(t, err, apperr.Conflict)
	mr.FastForward(idempotency.DefaultLease + time.Millisecond)
	mustLease(t, s, "acme", "crash", fpA)
}
