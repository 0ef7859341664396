package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/testenv"
)

// Not parallel: SCRIPT FLUSH empties the whole server's script cache, and
// the parallel tests of this package would reload the script between the
// flush and the checks. Top-level parallel tests wait for this one.
func TestEvalShaFallsBackAfterScriptFlush(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	l := New(rdb, prefix, WithClock(func() time.Time { return time.Unix(1_700_000_000, 0) }))
	b := Bucket{Name: "tenant", Limit: Limit{Rate: 10, Period: time.Minute, Burst: 3}}
	if _, err := l.Allow(ctx, "acme", b); err != nil {
		t.Fatal(err)
	}

	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if exists, err := gcra.Exists(ctx, rdb).Result(); err != nil || exists[0] {
		t.Fatalf("script still cached after SCRIPT FLUSH: %v, %v", exists, err)
	}
	d, err := l.Allow(ctx, "acme", b)
	if err != nil {
		t.Fatalf("Allow after SCRIPT FLUSH: %v", err)
	}
	if !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v, want allowed with remaining 1", d)
	}
	// The EVAL fallback cached the script again, so later calls use EVALSHA.
	if exists, err := gcra.Exists(ctx, rdb).Result(); err != nil || !exists[0] {
		t.Fatalf("script not cached again after the EVAL fallback: %v, %v", exists, err)
	}
}
