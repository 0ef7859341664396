package ratelimit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/ratelimit"
	"github.com/chatvault/chatvault/internal/testenv"
	"github.com/redis/go-redis/v9"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

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

// tenMinute allows one request every 6 s with room for 3 at once, so a
// refusal waits whole seconds.
var tenMinute = ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 3}

func allow(t *testing.T, l *ratelimit.Limiter, tenant string, buckets ...ratelimit.Bucket) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), tenant, buckets...)
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	return d
}

func TestBurstThenRefused(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	clk := newClock()
	l := ratelimit.New(rdb, prefix, ratelimit.WithClock(clk.Now))
	b := ratelimit.Bucket{Name: "tenant", Limit: tenMinute}

	for i := range tenMinute.Burst {
		d := allow(t, l, "acme", b)
		if !d.Allowed {
			t.Fatalf("request %d of the burst refused: %+v", i+1, d)
		}
		if want := tenMinute.Burst - 1 - i; d.Remaining != want {
			t.Errorf("request %d: Remaining = %d, want %d", i+1, d.Remaining, want)
		}
		if want := time.Duration(i+1) * 6 * time.Second; d.Reset != want {
			t.Errorf("request %d: Reset = %v, want %v", i+1, d.Reset, want)
		}
	}
	d := allow(t, l, "acme", b)
	if d.Allowed {
		t.Fatalf("request past the burst allowed: %+v", d)
	}
	if d.Policy != "tenant" || d.Limit != 3 || d.Remaining != 0 {
		t.Errorf("refusal = %+v, want policy tenant, limit 3, remaining 0", d)
	}
	if d.RetryAfter != 6*time.Second || ratelimit.RetryAfterSeconds(d) != 6 {
		t.Errorf("RetryAfter = %v (%d s), want 6s", d.RetryAfter, ratelimit.RetryAfterSeconds(d))
	}
	if e, ok := apperr.As(d.Err()); !ok || e.Kind != apperr.RateLimited || e.RetryAfter != 6*time.Second {
		t.Errorf("Err() = %v, want rate_limited with RetryAfter 6s", d.Err())
	}

	// The key carries the tenant hash tag and vanishes once the bucket is full again.
	pttl, err := rdb.PTTL(context.Background(), prefix+"{t:acme}:rl:tenant").Result()
	if err != nil || pttl <= 0 || pttl > 18*time.Second {
		t.Errorf("PTTL = %v, %v; want in (0, 18s]", pttl, err)
	}
}

func TestFastRefusalStillSaysRetryAfterOneSecond(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	l := ratelimit.New(rdb, prefix, ratelimit.WithClock(newClock().Now))
	b := ratelimit.Bucket{Name: "key:k1", Limit: ratelimit.Limit{Rate: 600, Period: time.Minute, Burst: 60}}
	for range 60 {
		if d := allow(t, l, "acme", b); !d.Allowed {
			t.Fatalf("burst request refused: %+v", d)
		}
	}
	d := allow(t, l, "acme", b)
	if d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("decision = %+v, want refused with RetryAfter 100ms", d)
	}
	if got := ratelimit.RetryAfterSeconds(d); got != 1 {
		t.Errorf("RetryAfterSeconds = %d, want 1", got)
	}
}

func TestRefillAfterClockAdvances(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	testRefill(t, rdb, prefix)
}

func testRefill(t *testing.T, rdb redis.UniversalClient, prefix string) {
	clk := newClock()
	l := ratelimit.New(rdb, prefix, ratelimit.WithClock(clk.Now))
	b := ratelimit.Bucket{Name: "tenant", Limit: tenMinute}
	for range tenMinute.Burst {
		allow(t, l, "acme", b)
	}
	// The TAT must be stored as exact integer microseconds on both servers,
	// not in a float notation that would lose precision.
	raw, err := rdb.Get(context.Background(), prefix+"{t:acme}:rl:tenant").Result()
	if err != nil {
		t.Fatal(err)
	}
	if tat, err := strconv.ParseInt(raw, 10, 64); err != nil || tat != clk.Now().UnixMilli()*1000+18_000_000 {
		t.Fatalf("stored TAT = %q, want %d", raw, clk.Now().UnixMilli()*1000+18_000_000)
	}
	if d := allow(t, l, "acme", b); d.Allowed {
		t.Fatalf("drained bucket allowed: %+v", d)
	}

	clk.Advance(5 * time.Second)
	if d := allow(t, l, "acme", b); d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("after 5s: %+v, want refused with 1s to wait", d)
	}
	clk.Advance(time.Second)
	if d := allow(t, l, "acme", b); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after one interval: %+v, want exactly one more allowed", d)
	}
	if d := allow(t, l, "acme", b); d.Allowed {
		t.Fatalf("second request after one interval allowed: %+v", d)
	}

	clk.Advance(time.Hour)
	d := allow(t, l, "acme", b)
	if !d.Allowed || d.Remaining != tenMinute.Burst-1 {
		t.Fatalf("after an idle hour: %+v, want a full bucket", d)
	}
}

func TestTenantBucketLimitsWithoutDrainingKeyBucket(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	testTwoBuckets(t, rdb, prefix)
}

func testTwoBuckets(t *testing.T, rdb redis.UniversalClient, prefix string) {
	l := ratelimit.New(rdb, prefix, ratelimit.WithClock(newClock().Now))
	key := ratelimit.Bucket{Name: "key:k1", Limit: ratelimit.Limit{Rate: 600, Period: time.Minute, Burst: 10}}
	tenant := ratelimit.Bucket{Name: "tenant", Limit: tenMinute}

	for i := range tenMinute.Burst {
		d := allow(t, l, "acme", key, tenant)
		if !d.Allowed || d.Policy != "tenant" {
			t.Fatalf("request %d: %+v, want allowed with the tenant bucket as the tighter one", i+1, d)
		}
	}
	for range 5 {
		d := allow(t, l, "acme", key, tenant)
		if d.Allowed || d.Policy != "tenant" || d.Limit != 3 {
			t.Fatalf("over the tenant limit: %+v, want refused by tenant", d)
		}
	}
	// 3 consumed, the 5 refusals none: the key bucket has 10-3 left before this call.
	d := allow(t, l, "acme", key)
	if !d.Allowed || d.Remaining != 10-3-1 {
		t.Fatalf("key bucket alone: %+v, want allowed with remaining 6", d)
	}
	// Another tenant's buckets are separate.
	if d := allow(t, l, "globex", key, tenant); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("other tenant: %+v, want a fresh bucket", d)
	}
}

func TestKeyBucketRefusalLeavesTenantBucket(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	l := ratelimit.New(rdb, prefix, ratelimit.WithClock(newClock().Now))
	key := ratelimit.Bucket{Name: "key:k1", Limit: ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 1}}
	tenant := ratelimit.Bucket{Name: "tenant", Limit: tenMinute}

	if d := allow(t, l, "acme", tenant, key); !d.Allowed || d.Policy != "key:k1" {
		t.Fatalf("first: %+v", d)
	}
	d := allow(t, l, "acme", tenant, key)
	if d.Allowed || d.Policy != "key:k1" || d.RetryAfter != time.Minute {
		t.Fatalf("second: %+v, want refused by key:k1 for 1m", d)
	}
	if d := allow(t, l, "acme", tenant); d.Remaining != tenMinute.Burst-2 {
		t.Fatalf("tenant bucket: %+v, want only the first request counted", d)
	}
}

func TestMostConstrainedRefusalWins(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	l := ratelimit.New(rdb, prefix, ratelimit.WithClock(newClock().Now))
	short := ratelimit.Bucket{Name: "short", Limit: ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1}}
	long := ratelimit.Bucket{Name: "long", Limit: ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 1}}
	allow(t, l, "acme", short, long)
	d := allow(t, l, "acme", short, long)
	if d.Allowed || d.Policy != "long" || d.RetryAfter != time.Hour {
		t.Fatalf("decision = %+v, want refused by long for 1h", d)
	}
}

func TestConcurrentCallsNeverExceedBurst(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	l := ratelimit.New(rdb, prefix, ratelimit.WithClock(newClock().Now))
	b := ratelimit.Bucket{Name: "tenant", Limit: ratelimit.Limit{Rate: 60, Period: time.Minute, Burst: 20}}

	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 50*4)
	for range 50 {
		wg.Go(func() {
			for range 4 {
				d, err := l.Allow(context.Background(), "acme", b)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := allowed.Load(); got != 20 {
		t.Fatalf("%d of 200 concurrent requests allowed, want exactly the burst of 20", got)
	}
}

func TestMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Run("refill", func(t *testing.T) { testRefill(t, rdb, "mr:") })
	t.Run("two buckets", func(t *testing.T) { testTwoBuckets(t, rdb, "mr2:") })
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	l := ratelimit.New(rdb, prefix)
	ok := ratelimit.Bucket{Name: "tenant", Limit: tenMinute}
	cases := map[string]struct {
		tenant  string
		buckets []ratelimit.Bucket
	}{
		"no tenant":          {"", []ratelimit.Bucket{ok}},
		"brace in tenant":    {"a}b", []ratelimit.Bucket{ok}},
		"no bucket":          {"acme", nil},
		"duplicate bucket":   {"acme", []ratelimit.Bucket{ok, ok}},
		"zero burst":         {"acme", []ratelimit.Bucket{{Name: "x", Limit: ratelimit.Limit{Rate: 1, Period: time.Second}}}},
		"unprintable name":   {"acme", []ratelimit.Bucket{{Name: "a\nb", Limit: tenMinute}}},
		"zero period":        {"acme", []ratelimit.Bucket{{Name: "x", Limit: ratelimit.Limit{Rate: 1, Burst: 1}}}},
		"empty bucket name":  {"acme", []ratelimit.Bucket{{Limit: tenMinute}}},
		"negative rate":      {"acme", []ratelimit.Bucket{{Name: "x", Limit: ratelimit.Limit{Rate: -1, Period: time.Second, Burst: 1}}}},
		"second bucket zero": {"acme", []ratelimit.Bucket{ok, {Name: "y"}}},
	}
	for name, c := range cases {
		if _, err := l.Allow(context.Background(), c.tenant, c.buckets...); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	if got, want := ratelimit.PolicyHeader("tenant", ratelimit.Limit{Rate: 600, Period: time.Minute, Burst: 60}), `"tenant";q=600;w=60`; got != want {
		t.Errorf("PolicyHeader = %s, want %s", got, want)
	}
	if got, want := ratelimit.PolicyHeader(`a"b\c`, ratelimit.Limit{Rate: 5, Period: 1500 * time.Millisecond, Burst: 1}), `"a\"b\\c";q=5;w=2`; got != want {
		t.Errorf("PolicyHeader escaping = %s, want %s", got, want)
	}
	d := ratelimit.Decision{Allowed: true, Policy: "tenant", Limit: 60, Remaining: 12, Reset: 4100 * time.Millisecond}
	if got, want := ratelimit.Header(d), `"tenant";r=12;t=5`; got != want {
		t.Errorf("Header = %s, want %s", got, want)
	}
	for _, c := range []struct {
		retry time.Duration
		want  int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {time.Minute, 60}} {
		if got := ratelimit.RetryAfterSeconds(ratelimit.Decision{RetryAfter: c.retry}); got != c.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", c.retry, got, c.want)
		}
	}
}
