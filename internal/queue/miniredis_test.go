package queue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
)

// TestMiniredisSmoke runs the main paths against miniredis, which the
// binary embeds for a first run without Redis: success, a retry, a dead
// letter, RetryDead and a reclaim.
func TestMiniredisSmoke(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	q := New(rdb, "mini:", "smoke", append(fast(),
		WithVisibilityTimeout(150*time.Millisecond),
		WithJitter(func(time.Duration) time.Duration { return 0 }))...)
	ctx := context.Background()

	// A consumer that dies holding the first job.
	if err := q.ensureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	orphan := enqueue(t, q, "archive", `{"kind":"orphan"}`)
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "ghost", Streams: []string{q.stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}

	calls := newCounter()
	startRun(t, q, "c1", 2, func(ctx context.Context, j Job) (json.RawMessage, error) {
		n := calls.add(j)
		var p struct{ Kind string }
		_ = json.Unmarshal(j.Payload, &p)
		switch {
		case p.Kind == "flaky" && n == 1:
			return nil, apperr.New(apperr.BadGateway, "try again")
		case p.Kind == "bad" && n == 1:
			return nil, Permanent(apperr.New(apperr.Invalid, "bad"))
		}
		return json.RawMessage(`{"n":` + string(rune('0'+n)) + `}`), nil
	})
	ok := enqueue(t, q, "archive", `{"kind":"ok"}`)
	flaky := enqueue(t, q, "archive", `{"kind":"flaky"}`)
	bad := enqueue(t, q, "archive", `{"kind":"bad"}`)

	if st := waitState(t, q, ok.ID, StateSucceeded); string(st.Result) != `{"n":1}` {
		t.Fatalf("ok: %+v", st)
	}
	if st := waitState(t, q, flaky.ID, StateSucceeded); st.Attempts != 2 {
		t.Fatalf("flaky: %+v", st)
	}
	if st := waitState(t, q, orphan.ID, StateSucceeded); st.Attempts != 2 {
		t.Fatalf("orphan: %+v", st)
	}
	waitState(t, q, bad.ID, StateFailed)
	dead, _, err := q.DeadLetters(ctx, 10, "")
	if err != nil || len(dead) != 1 || dead[0].Job.ID != bad.ID {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	if _, err := q.RetryDead(ctx, dead[0].EntryID); err != nil {
		t.Fatal(err)
	}
	waitState(t, q, bad.ID, StateSucceeded)
	waitDrained(t, q)
	if _, err := q.Status(ctx, "other", ok.ID); !apperr.Is(err, apperr.NotFound) {
		t.Fatalf("other tenant: %v", err)
	}
}
