package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/testenv"
)

// TestCluster runs the main paths on a Redis Cluster, where a script or
// transaction touching two slots fails: it proves the key layout. It needs
// a cluster, so it runs only when REDIS_TEST_CLUSTER lists seed addresses
// (e.g. "127.0.0.1:7000,127.0.0.1:7001").
func TestCluster(t *testing.T) {
	addrs := os.Getenv("REDIS_TEST_CLUSTER")
	if addrs == "" {
		t.Skip("REDIS_TEST_CLUSTER not set: no Redis Cluster to test against")
	}
	t.Parallel()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	prefix := "cvtest:" + testenv.RandomHex(6) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		_ = rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			keys, _ := node.Keys(ctx, prefix+"*").Result()
			for _, k := range keys {
				node.Del(ctx, k)
			}
			return nil
		})
		_ = rdb.Close()
	})
	q := New(rdb, prefix, "cluster", append(fast(),
		WithVisibilityTimeout(200*time.Millisecond),
		WithJitter(func(time.Duration) time.Duration { return 0 }))...)
	ctx := context.Background()

	// Tenants whose status keys land in slots other than the queue's.
	var tenants []string
	qslot := rdb.ClusterKeySlot(ctx, q.stream).Val()
	for i := 0; len(tenants) < 3; i++ {
		tn := fmt.Sprintf("tenant-%d", i)
		if rdb.ClusterKeySlot(ctx, q.statusKey(tn, "x")).Val() != qslot {
			tenants = append(tenants, tn)
		}
	}

	if err := q.ensureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	orphan, err := q.Enqueue(ctx, Job{Type: "archive", TenantID: tenants[0], Payload: json.RawMessage(`{"kind":"ok"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "ghost", Streams: []string{q.stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	calls := newCounter()
	startRun(t, q, "c1", 4, func(ctx context.Context, j Job) (json.RawMessage, error) {
		n := calls.add(j)
		var p struct{ Kind string }
		_ = json.Unmarshal(j.Payload, &p)
		switch {
		case p.Kind == "flaky" && n == 1:
			return nil, apperr.New(apperr.BadGateway, "try again")
		case p.Kind == "bad" && n == 1:
			return nil, Permanent(apperr.New(apperr.Invalid, "bad"))
		}
		return json.RawMessage(`true`), nil
	})
	var jobs []Job
	for i, kind := range []string{"ok", "flaky", "bad", "ok", "flaky"} {
		j, err := q.Enqueue(ctx, Job{Type: "archive", TenantID: tenants[i%len(tenants)], Payload: json.RawMessage(`{"kind":"` + kind + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	wait := func(j Job, state string) Status {
		var st Status
		waitFor(t, j.ID+" "+state, func() bool {
			st, _ = q.Status(ctx, j.TenantID, j.ID)
			return st.State == state
		})
		return st
	}
	wait(jobs[2], StateFailed)
	dead, _, err := q.DeadLetters(ctx, 10, "")
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	if _, err := q.RetryDead(ctx, dead[0].EntryID); err != nil {
		t.Fatal(err)
	}
	for _, j := range append(jobs, orphan) {
		wait(j, StateSucceeded)
	}
	waitDrained(t, q)
	if _, err := q.Status(ctx, tenants[1], orphan.ID); !apperr.Is(err, apperr.NotFound) {
		t.Fatalf("other tenant: %v", err)
	}
}
