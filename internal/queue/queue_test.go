package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/testenv"
)

func TestEnqueueRunSucceeds(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var seen outcomes
	q, rdb, prefix := newTestQueue(t, WithClock(clk.Now), WithHooks(seen.hooks()))
	ctx := context.Background()

	job := enqueue(t, q, "archive", `{"media_id":"m1"}`)
	if !strings.HasPrefix(job.ID, "job_") || job.Attempt != 1 || !job.EnqueuedAt.Equal(clk.Now()) {
		t.Fatalf("enqueued job = %+v", job)
	}
	st, err := q.Status(ctx, tenant, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateQueued || st.Attempts != 0 || !st.CreatedAt.Equal(clk.Now()) || st.Type != "archive" {
		t.Fatalf("queued status = %+v", st)
	}
	// Every key the queue writes is under the caller's prefix, in its hash tags.
	keys, _ := rdb.Keys(ctx, prefix+"*").Result()
	slices.Sort(keys)
	want := []string{prefix + "{q:test}:stream", prefix + "{t:" + tenant + "}:job:" + job.ID}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %q, want %q", keys, want)
	}
	if ttl := rdb.PTTL(ctx, want[1]).Val(); ttl <= 6*24*time.Hour {
		t.Fatalf("status TTL = %v, want about 7 days", ttl)
	}

	got := make(chan Job, 1)
	startRun(t, q, "c1", 2, func(ctx context.Context, j Job) (json.RawMessage, error) {
		got <- j
		return json.RawMessage(`{"media":"med_1"}`), nil
	})
	st = waitState(t, q, job.ID, StateSucceeded)
	if string(st.Result) != `{"media":"med_1"}` || st.Attempts != 1 || st.Error != nil || st.NextAttemptAt != nil {
		t.Fatalf("succeeded status = %+v", st)
	}
	j := <-got
	if j.ID != job.ID || j.Type != "archive" || j.TenantID != tenant || string(j.Payload) != `{"media_id":"m1"}` ||
		j.Attempt != 1 || !j.EnqueuedAt.Equal(job.EnqueuedAt) {
		t.Fatalf("handler got %+v, want %+v", j, job)
	}
	waitDrained(t, q)
	waitFor(t, "the result hook", func() bool { return slices.Equal(seen.list(), []string{"archive:succeeded"}) })
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	clk := newClock()
	// The jitter returns its ceiling, so each delay is exactly base·2^(n-1).
	q, _, _ := newTestQueue(t, WithClock(clk.Now), WithBackoff(2*time.Second, 10*time.Minute),
		WithJitter(func(c time.Duration) time.Duration { return c }),
		WithErrorStatus(func(k apperr.Kind) int { return map[apperr.Kind]int{apperr.BadGateway: http.StatusBadGateway}[k] }))
	calls := newCounter()
	failed := make(chan int, 10)
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		if n := calls.add(j); n < 3 {
			defer func() { failed <- n }()
			return nil, apperr.New(apperr.BadGateway, "provider returned 503")
		}
		return json.RawMessage(`"ok"`), nil
	})
	job := enqueue(t, q, "archive", `{}`)

	<-failed
	st := waitState(t, q, job.ID, StateRetrying)
	want := clk.Now().Add(2 * time.Second)
	if st.Attempts != 1 || st.NextAttemptAt == nil || !st.NextAttemptAt.Equal(want) ||
		st.Error == nil || *st.Error != (JobError{Kind: "bad_gateway", Detail: "provider returned 503", Status: 502}) {
		t.Fatalf("after attempt 1: %+v (error %+v), want next attempt at %v", st, st.Error, want)
	}
	waitFor(t, "the retry to be delayed", func() bool { return stats(t, q).Delayed == 1 })

	// Not due a millisecond early, however often the mover looks.
	clk.Advance(2*time.Second - time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	if n, _ := calls.get(job.ID); n != 1 || stats(t, q).Delayed != 1 {
		t.Fatalf("retry ran early: %d calls, stats %+v", n, stats(t, q))
	}
	clk.Advance(time.Millisecond)
	<-failed
	waitFor(t, "attempt 2's retry", func() bool {
		st, _ = q.Status(context.Background(), tenant, job.ID)
		return st.State == StateRetrying && st.Attempts == 2
	})
	if want := clk.Now().Add(4 * time.Second); !st.NextAttemptAt.Equal(want) {
		t.Fatalf("attempt 2 next at %v, want %v", st.NextAttemptAt, want)
	}
	clk.Advance(4 * time.Second)
	st = waitState(t, q, job.ID, StateSucceeded)
	if st.Attempts != 3 || string(st.Result) != `"ok"` || st.Error != nil || st.NextAttemptAt != nil {
		t.Fatalf("final status = %+v", st)
	}
	if _, attempts := calls.get(job.ID); !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Fatalf("handler saw attempts %v, want [1 2 3]", attempts)
	}
	waitDrained(t, q)
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	exact := New(nil, "p:", "q", WithJitter(func(c time.Duration) time.Duration { return c }))
	for attempt, want := range map[int]time.Duration{
		1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 9: 512 * time.Second,
		10: 10 * time.Minute, 1000: 10 * time.Minute, // capped, and no overflow
	} {
		if got := exact.Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
	jittered := New(nil, "p:", "q", WithBackoff(time.Second, time.Minute))
	for attempt := 1; attempt <= 12; attempt++ {
		ceiling := min(time.Second<<(attempt-1), time.Minute)
		for range 50 {
			if d := jittered.Backoff(attempt); d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, outside [0, %v]", attempt, d, ceiling)
			}
		}
	}
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var seen outcomes
	q, _, _ := newTestQueue(t, WithClock(clk.Now), WithHooks(seen.hooks()))
	calls := newCounter()
	startRun(t, q, "c1", 2, func(ctx context.Context, j Job) (json.RawMessage, error) {
		calls.add(j)
		return nil, Permanent(fmt.Errorf("probe: %w", apperr.New(apperr.UnsupportedMedia, "not a video")))
	})
	job := enqueue(t, q, "transcode", `{"m":1}`)
	st := waitState(t, q, job.ID, StateFailed)
	if st.Attempts != 1 || st.Error == nil || st.Error.Kind != "unsupported_media" || st.Error.Detail != "not a video" {
		t.Fatalf("status = %+v (error %+v)", st, st.Error)
	}
	dead, next, err := q.DeadLetters(context.Background(), 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || next != "" {
		t.Fatalf("dead letters = %+v, next %q", dead, next)
	}
	d := dead[0]
	if d.Job.ID != job.ID || d.Job.Attempt != 1 || string(d.Job.Payload) != `{"m":1}` || d.Error.Kind != "unsupported_media" ||
		!strings.Contains(d.Cause, "probe: unsupported_media: not a video") || !d.FailedAt.Equal(clk.Now()) || d.EntryID == "" {
		t.Fatalf("dead letter = %+v", d)
	}
	if n, _ := calls.get(job.ID); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	waitDrained(t, q)
	if s := stats(t, q); s.Dead != 1 {
		t.Fatalf("stats = %+v", s)
	}
	waitFor(t, "the result hook", func() bool { return slices.Equal(seen.list(), []string{"transcode:failed"}) })
}

func TestMaxAttemptsDeadLetters(t *testing.T) {
	t.Parallel()
	q, _, _ := newTestQueue(t, WithMaxAttempts(3), WithJitter(func(time.Duration) time.Duration { return 0 }))
	calls := newCounter()
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		calls.add(j)
		return nil, errors.New("dial tcp 10.0.0.7:443: connection refused")
	})
	job := enqueue(t, q, "archive", `{}`)
	st := waitState(t, q, job.ID, StateFailed)
	// An unclassified error is shown to the tenant as internal, never verbatim.
	if st.Attempts != 3 || *st.Error != (JobError{Kind: "internal", Detail: "internal error"}) {
		t.Fatalf("status = %+v (error %+v)", st, st.Error)
	}
	if _, attempts := calls.get(job.ID); !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Fatalf("attempts = %v, want [1 2 3]", attempts)
	}
	dead, _, err := q.DeadLetters(context.Background(), 0, "")
	if err != nil || len(dead) != 1 || dead[0].Job.Attempt != 3 || !strings.Contains(dead[0].Cause, "connection refused") {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	waitDrained(t, q)
}

func TestRetryDead(t *testing.T) {
	t.Parallel()
	q, _, _ := newTestQueue(t)
	ctx := context.Background()
	var fixed atomic.Bool
	calls := newCounter()
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		calls.add(j)
		if !fixed.Load() {
			return nil, Permanent(apperr.New(apperr.Gone, "media expired"))
		}
		return json.RawMessage(`{"ok":true}`), nil
	})
	job := enqueue(t, q, "archive", `{"a":"b"}`)
	waitState(t, q, job.ID, StateFailed)
	dead, _, err := q.DeadLetters(ctx, 10, "")
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}

	fixed.Store(true)
	if d, err := q.DeadLetter(ctx, dead[0].EntryID); err != nil || d.Job.ID != job.ID || d.Error.Kind != "gone" {
		t.Fatalf("DeadLetter = %+v, %v", d, err)
	}
	again, err := q.RetryDead(ctx, dead[0].EntryID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != job.ID || again.Attempt != 1 || string(again.Payload) != `{"a":"b"}` {
		t.Fatalf("RetryDead = %+v", again)
	}
	st := waitState(t, q, job.ID, StateSucceeded)
	if st.Attempts != 1 || st.Error != nil || string(st.Result) != `{"ok":true}` {
		t.Fatalf("status = %+v", st)
	}
	if _, attempts := calls.get(job.ID); !slices.Equal(attempts, []int{1, 1}) {
		t.Fatalf("attempts = %v, want [1 1]", attempts)
	}
	if dead, _, _ := q.DeadLetters(ctx, 10, ""); len(dead) != 0 {
		t.Fatalf("dead letters after retry = %+v", dead)
	}
	for _, id := range []string{dead[0].EntryID, "1-1", "bogus"} {
		if _, err := q.RetryDead(ctx, id); !apperr.Is(err, apperr.NotFound) {
			t.Errorf("RetryDead(%q) = %v, want not found", id, err)
		}
		if _, err := q.DeadLetter(ctx, id); !apperr.Is(err, apperr.NotFound) {
			t.Errorf("DeadLetter(%q) = %v, want not found", id, err)
		}
	}
	waitDrained(t, q)
}

func TestDeadLettersPageNewestFirst(t *testing.T) {
	t.Parallel()
	q, _, _ := newTestQueue(t)
	ctx := context.Background()
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		return nil, Permanent(apperr.New(apperr.Invalid, "bad"))
	})
	var ids []string
	for i := range 5 {
		job := enqueue(t, q, "archive", fmt.Sprintf(`{"n":%d}`, i))
		waitState(t, q, job.ID, StateFailed) // one at a time, so dead-letter order is enqueue order
		ids = append(ids, job.ID)
	}
	slices.Reverse(ids)
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		dead, next, err := q.DeadLetters(ctx, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dead {
			got = append(got, d.Job.ID)
		}
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("paged IDs = %v, want newest first %v", got, ids)
	}
	if _, _, err := q.DeadLetters(ctx, 2, "not-a-cursor"); !apperr.Is(err, apperr.Invalid) {
		t.Fatalf("bad cursor: %v, want invalid", err)
	}
}

// TestCrashRecovery: a consumer takes every job and dies without
// acknowledging any; another reclaims them after the visibility timeout and
// completes each one once.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	q, rdb, _ := newTestQueue(t, WithVisibilityTimeout(300*time.Millisecond))
	ctx := context.Background()
	if err := q.ensureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	var jobs []Job
	for i := range 10 {
		jobs = append(jobs, enqueue(t, q, "archive", fmt.Sprintf(`{"n":%d}`, i)))
	}
	// The dead consumer: it read the entries, so they are pending for it,
	// and it will never acknowledge or extend them.
	taken := time.Now() // before the read, so no entry is idle longer than time.Since(taken)
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: group, Consumer: "ghost", Streams: []string{q.stream, ">"}, Count: 100, Block: -1,
	}).Result()
	if err != nil || len(res[0].Messages) != 10 {
		t.Fatalf("ghost read %v, %v", res, err)
	}

	calls := newCounter()
	startRun(t, q, "survivor", 4, func(ctx context.Context, j Job) (json.RawMessage, error) {
		if since := time.Since(taken); since < 300*time.Millisecond {
			t.Errorf("job %s reclaimed after %v, before the visibility timeout", j.ID, since)
		}
		calls.add(j)
		return nil, nil
	})
	for _, j := range jobs {
		st := waitState(t, q, j.ID, StateSucceeded)
		// The ghost's delivery counts as attempt 1.
		if n, attempts := calls.get(j.ID); n != 1 || !slices.Equal(attempts, []int{2}) || st.Attempts != 2 {
			t.Fatalf("job %s: %d completions, attempts %v, status %+v", j.ID, n, attempts, st)
		}
	}
	waitDrained(t, q)
	if n, total := calls.total(); n != 10 || total != 10 {
		t.Fatalf("%d jobs ran %d times, want 10 once each", n, total)
	}
}

// TestCrashRecoveryOfRunningConsumer: a real Run takes jobs and then loses
// Redis for good (its process "dies" mid-job); a second Run reclaims them.
func TestCrashRecoveryOfRunningConsumer(t *testing.T) {
	t.Parallel()
	q, rdb, prefix := newTestQueue(t, WithVisibilityTimeout(300*time.Millisecond))
	doomedClient := redis.NewClient(rdb.Options())
	doomed := New(doomedClient, prefix, "test", append(fast(), WithVisibilityTimeout(300*time.Millisecond))...)

	hang := make(chan struct{})
	var started atomic.Int32
	stopDoomed := startRun(t, doomed, "doomed", 4, func(ctx context.Context, j Job) (json.RawMessage, error) {
		started.Add(1)
		<-hang
		return nil, nil
	})
	var jobs []Job
	for range 4 {
		jobs = append(jobs, enqueue(t, q, "archive", `{}`))
	}
	waitFor(t, "the doomed consumer to take all jobs", func() bool { return started.Load() == 4 })
	_ = doomedClient.Close() // from here it can neither extend nor acknowledge

	calls := newCounter()
	startRun(t, q, "survivor", 4, func(ctx context.Context, j Job) (json.RawMessage, error) {
		calls.add(j)
		return nil, nil
	})
	for _, j := range jobs {
		waitState(t, q, j.ID, StateSucceeded)
	}
	waitDrained(t, q)
	for _, j := range jobs {
		if n, _ := calls.get(j.ID); n != 1 {
			t.Fatalf("job %s completed %d times by the survivor", j.ID, n)
		}
	}
	close(hang)
	if err := stopDoomed(); err != nil {
		t.Fatalf("doomed Run: %v", err)
	}
}

func TestLongJobKeepsItsClaim(t *testing.T) {
	t.Parallel()
	const visibility = 300 * time.Millisecond
	q, rdb, prefix := newTestQueue(t, WithVisibilityTimeout(visibility))
	other := New(rdb, prefix, "test", append(fast(), WithVisibilityTimeout(visibility))...)

	calls := newCounter()
	var lost atomic.Bool
	h := func(ctx context.Context, j Job) (json.RawMessage, error) {
		calls.add(j)
		select {
		case <-time.After(4 * visibility):
			return nil, nil
		case <-ctx.Done():
			lost.Store(true)
			return nil, context.Cause(ctx)
		}
	}
	startRun(t, q, "first", 1, h)
	job := enqueue(t, q, "transcode", `{}`)
	waitFor(t, "the job to start", func() bool { n, _ := calls.get(job.ID); return n == 1 })
	// A second consumer, hungry and reclaiming every visibility/4.
	startRun(t, other, "second", 2, h)

	waitState(t, q, job.ID, StateSucceeded)
	if n, _ := calls.get(job.ID); n != 1 || lost.Load() {
		t.Fatalf("long job ran %d times (lost claim: %v), want once", n, lost.Load())
	}
	waitDrained(t, q)
}

// TestLostClaimIsFenced: when another consumer takes over an entry, the old
// consumer's handler is cancelled and its failure schedules nothing.
func TestLostClaimIsFenced(t *testing.T) {
	t.Parallel()
	var seen outcomes
	q, rdb, _ := newTestQueue(t, WithVisibilityTimeout(600*time.Millisecond),
		WithJitter(func(time.Duration) time.Duration { return 0 }), WithHooks(seen.hooks()))
	cause := make(chan error, 1)
	var runs atomic.Int32
	startRun(t, q, "slow", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		if runs.Add(1) > 1 {
			return nil, nil // a later reclaim from the dead thief
		}
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return nil, apperr.New(apperr.BadGateway, "interrupted")
	})
	job := enqueue(t, q, "archive", `{}`)
	waitState(t, q, job.ID, StateRunning)
	ctx := context.Background()
	// A thief takes the entry, as XAUTOCLAIM would after a long stall.
	pend, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q.stream, Group: group, Start: "-", End: "+", Count: 10}).Result()
	if err != nil || len(pend) != 1 {
		t.Fatalf("pending = %+v, %v", pend, err)
	}
	if err := rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: q.stream, Group: group, Consumer: "thief", Messages: []string{pend[0].ID}}).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-cause:
		if !errors.Is(c, ErrClaimLost) {
			t.Fatalf("handler context cause = %v, want ErrClaimLost", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler not cancelled after losing its claim")
	}
	waitFor(t, "the lost outcome", func() bool { return slices.Contains(seen.list(), "archive:lost") })
	// Still the thief's, and not scheduled a second time.
	s := stats(t, q)
	pend, _ = rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q.stream, Group: group, Start: "-", End: "+", Count: 10}).Result()
	if s.Delayed != 0 || s.Length != 1 || len(pend) != 1 || pend[0].Consumer != "thief" {
		t.Fatalf("stats %+v, pending %+v", s, pend)
	}
}

// TestAbandonedTooOftenDeadLetters: a job whose consumers keep dying on it
// is dead-lettered once its deliveries exceed the attempts, unrun.
func TestAbandonedTooOftenDeadLetters(t *testing.T) {
	t.Parallel()
	q, rdb, _ := newTestQueue(t, WithVisibilityTimeout(100*time.Millisecond), WithMaxAttempts(2))
	ctx := context.Background()
	if err := q.ensureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	job := enqueue(t, q, "archive", `{}`)
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "ghost1", Streams: []string{q.stream, ">"}, Block: -1}).Result()
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].Messages[0].ID
	if err := rdb.XClaim(ctx, &redis.XClaimArgs{Stream: q.stream, Group: group, Consumer: "ghost2", Messages: []string{id}}).Err(); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		ran.Store(true)
		return nil, nil
	})
	st := waitState(t, q, job.ID, StateFailed)
	if ran.Load() || st.Attempts != 3 || st.Error.Kind != "internal" {
		t.Fatalf("ran %v, status %+v (error %+v)", ran.Load(), st, st.Error)
	}
}

func TestGracefulStopWaitsForRunningJobs(t *testing.T) {
	t.Parallel()
	q, rdb, _ := newTestQueue(t)
	started := make(chan struct{})
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- q.Run(ctx, "c1", 2, func(ctx context.Context, j Job) (json.RawMessage, error) {
			close(started)
			select {
			case <-release:
			case <-ctx.Done(): // Run's context ending must not reach here
				return nil, ctx.Err()
			}
			return json.RawMessage(`1`), nil
		})
	}()
	job := enqueue(t, q, "archive", `{}`)
	<-started
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a job was running", err)
	case <-time.After(150 * time.Millisecond):
	}
	if st, _ := q.Status(context.Background(), tenant, job.ID); st.State != StateRunning {
		t.Fatalf("state = %s, want running", st.State)
	}
	// Stopped taking jobs: a new one stays queued.
	late := enqueue(t, q, "archive", `{}`)
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its job finished")
	}
	if st, _ := q.Status(context.Background(), tenant, job.ID); st.State != StateSucceeded {
		t.Fatalf("state = %s, want succeeded", st.State)
	}
	if st, _ := q.Status(context.Background(), tenant, late.ID); st.State != StateQueued {
		t.Fatalf("late job state = %s, want queued", st.State)
	}
	if s := stats(t, q); s.Pending != 0 || s.Length != 1 {
		t.Fatalf("stats = %+v", s)
	}
	// A stopped consumer with nothing pending leaves the group.
	cs, err := rdb.XInfoConsumers(context.Background(), q.stream, group).Result()
	if err != nil || len(cs) != 0 {
		t.Fatalf("consumers after stop = %+v, %v", cs, err)
	}
}

func TestDrainTimeoutRequeuesWithoutCountingAnAttempt(t *testing.T) {
	t.Parallel()
	var seen outcomes
	q, _, _ := newTestQueue(t, WithDrainTimeout(50*time.Millisecond), WithHooks(seen.hooks()))
	started := make(chan struct{})
	stop := startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	job := enqueue(t, q, "archive", `{}`)
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st, err := q.Status(context.Background(), tenant, job.ID)
	if err != nil || st.State != StateQueued || st.Attempts != 0 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if !slices.Equal(seen.list(), []string{"archive:requeued"}) {
		t.Fatalf("outcomes = %v", seen.list())
	}
	calls := newCounter()
	startRun(t, q, "c2", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		calls.add(j)
		return nil, nil
	})
	waitState(t, q, job.ID, StateSucceeded)
	if _, attempts := calls.get(job.ID); !slices.Equal(attempts, []int{1}) {
		t.Fatalf("attempts after requeue = %v, want [1]", attempts)
	}
}

func TestManyJobsAcrossConsumers(t *testing.T) {
	t.Parallel()
	q, rdb, prefix := newTestQueue(t)
	// Two Queue values on one stream stand for two processes.
	other := New(rdb, prefix, "test", fast()...)
	calls := newCounter()
	var mu sync.Mutex
	byConsumer := map[string]int{}
	handler := func(name string) Handler {
		return func(ctx context.Context, j Job) (json.RawMessage, error) {
			calls.add(j)
			mu.Lock()
			byConsumer[name]++
			mu.Unlock()
			time.Sleep(time.Millisecond) // let work overlap
			return nil, nil
		}
	}
	startRun(t, q, "p1", 4, handler("p1"))
	startRun(t, other, "p2", 4, handler("p2"))
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = enqueue(t, q, "inbound", fmt.Sprintf(`{"n":%d}`, i)).ID
	}
	waitFor(t, "200 jobs", func() bool { n, _ := calls.total(); return n == 200 })
	waitDrained(t, q)
	for _, id := range ids {
		if n, _ := calls.get(id); n != 1 {
			t.Fatalf("job %s ran %d times", id, n)
		}
		waitState(t, q, id, StateSucceeded)
	}
	mu.Lock()
	defer mu.Unlock()
	if byConsumer["p1"] == 0 || byConsumer["p2"] == 0 {
		t.Fatalf("work split = %v, want both consumers busy", byConsumer)
	}
}

func TestStatusIsTenantScoped(t *testing.T) {
	t.Parallel()
	q, _, _ := newTestQueue(t)
	ctx := context.Background()
	job := enqueue(t, q, "archive", `{}`)
	if _, err := q.Status(ctx, tenant, job.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ tenant, id string }{
		{"tenant-b", job.ID}, {tenant, "job_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, {"", job.ID}, {"x}", job.ID}, {tenant, ""},
	} {
		if _, err := q.Status(ctx, c.tenant, c.id); !apperr.Is(err, apperr.NotFound) {
			t.Errorf("Status(%q, %q) = %v, want not found", c.tenant, c.id, err)
		}
	}
}

func TestEnqueueValidates(t *testing.T) {
	t.Parallel()
	q, _, _ := newTestQueue(t)
	ctx := context.Background()
	atCap := json.RawMessage(`"` + strings.Repeat("a", MaxPayload-2) + `"`)
	if _, err := q.Enqueue(ctx, Job{Type: "archive", TenantID: tenant, Payload: atCap}); err != nil {
		t.Fatalf("payload at the cap: %v", err)
	}
	overCap := json.RawMessage(`"` + strings.Repeat("a", MaxPayload-1) + `"`)
	for name, c := range map[string]struct {
		job  Job
		kind apperr.Kind
	}{
		"payload over cap": {Job{Type: "archive", TenantID: tenant, Payload: overCap}, apperr.TooLarge},
		"payload not JSON": {Job{Type: "archive", TenantID: tenant, Payload: json.RawMessage(`{`)}, apperr.Invalid},
		"no type":          {Job{TenantID: tenant}, apperr.Invalid},
		"no tenant":        {Job{Type: "archive"}, apperr.Invalid},
		"brace in tenant":  {Job{Type: "archive", TenantID: "a}b"}, apperr.Invalid},
	} {
		if _, err := q.Enqueue(ctx, c.job); !apperr.Is(err, c.kind) {
			t.Errorf("%s: %v, want %s", name, err, c.kind)
		}
	}
	if s := stats(t, q); s.Length != 1 {
		t.Fatalf("stats = %+v, want only the valid job", s)
	}
}

func TestHandlerPanicIsAFailure(t *testing.T) {
	t.Parallel()
	var panics atomic.Int32
	q, _, _ := newTestQueue(t, WithJitter(func(time.Duration) time.Duration { return 0 }),
		WithHooks(Hooks{OnError: func(op string, err error) {
			if op == "handler" {
				panics.Add(1)
			}
		}}))
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		if j.Attempt == 1 {
			panic("boom")
		}
		return nil, nil
	})
	job := enqueue(t, q, "archive", `{}`)
	st := waitState(t, q, job.ID, StateSucceeded)
	if st.Attempts != 2 || panics.Load() != 1 {
		t.Fatalf("status %+v, panics reported %d", st, panics.Load())
	}
}

func TestOversizeResultIsNotStored(t *testing.T) {
	t.Parallel()
	q, _, _ := newTestQueue(t)
	big := json.RawMessage(`"` + strings.Repeat("x", MaxResult) + `"`)
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) { return big, nil })
	job := enqueue(t, q, "archive", `{}`)
	st := waitState(t, q, job.ID, StateSucceeded)
	if st.Result != nil || st.Error == nil || !strings.Contains(st.Error.Detail, "result not stored") {
		t.Fatalf("status = %+v (error %+v)", st, st.Error)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	q, rdb, _ := newTestQueue(t)
	ctx := context.Background()
	if s := stats(t, q); s != (Stats{}) {
		t.Fatalf("empty queue stats = %+v", s)
	}
	for range 3 {
		enqueue(t, q, "archive", `{}`)
	}
	if s := stats(t, q); s != (Stats{Length: 3}) {
		t.Fatalf("before any consumer: %+v", s)
	}
	if err := q.ensureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "x", Streams: []string{q.stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, q.delayed, redis.Z{Score: 1, Member: "j"}).Err(); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, q); s != (Stats{Length: 3, Pending: 1, Delayed: 1}) {
		t.Fatalf("stats = %+v", s)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	t.Parallel()
	q, _, _ := newTestQueue(t)
	h := func(context.Context, Job) (json.RawMessage, error) { return nil, nil }
	for _, c := range []struct {
		consumer string
		n        int
		h        Handler
	}{{"", 1, h}, {"c", 0, h}, {"c", 1, nil}} {
		if err := q.Run(context.Background(), c.consumer, c.n, c.h); err == nil {
			t.Errorf("Run(%q, %d) accepted", c.consumer, c.n)
		}
	}
}

func TestUndecodableEntryIsDeadLettered(t *testing.T) {
	t.Parallel()
	q, rdb, _ := newTestQueue(t)
	ctx := context.Background()
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.stream, Values: []any{"job", "not json"}}).Err(); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		ran.Store(true)
		return nil, nil
	})
	waitFor(t, "the entry to be dead-lettered", func() bool { return stats(t, q).Dead == 1 })
	dead, _, err := q.DeadLetters(ctx, 1, "")
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Cause, "holds no valid job") || ran.Load() {
		t.Fatalf("dead letters = %+v, %v; handler ran: %v", dead, err, ran.Load())
	}
	if _, err := q.RetryDead(ctx, dead[0].EntryID); !apperr.Is(err, apperr.Unprocessable) {
		t.Fatalf("RetryDead of a jobless entry = %v, want unprocessable", err)
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	closed := redis.NewClient(rdb.Options())
	_ = closed.Close()
	q := New(closed, prefix, "test")
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, Job{Type: "archive", TenantID: tenant}); !apperr.Is(err, apperr.Unavailable) {
		t.Errorf("Enqueue = %v", err)
	}
	if _, err := q.Status(ctx, tenant, "job_x"); !apperr.Is(err, apperr.Unavailable) {
		t.Errorf("Status = %v", err)
	}
	if _, err := q.Stats(ctx); !apperr.Is(err, apperr.Unavailable) {
		t.Errorf("Stats = %v", err)
	}
	if _, _, err := q.DeadLetters(ctx, 1, ""); !apperr.Is(err, apperr.Unavailable) {
		t.Errorf("DeadLetters = %v", err)
	}
	h := func(context.Context, Job) (json.RawMessage, error) { return nil, nil }
	if err := q.Run(ctx, "c1", 1, h); !apperr.Is(err, apperr.Unavailable) {
		t.Errorf("Run = %v", err)
	}
}

func TestStatusTTL(t *testing.T) {
	t.Parallel()
	q, rdb, _ := newTestQueue(t, WithStatusTTL(time.Hour))
	job := enqueue(t, q, "archive", `{}`)
	if ttl := rdb.PTTL(context.Background(), q.statusKey(tenant, job.ID)).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("status TTL = %v, want 1h", ttl)
	}
}

func TestEnqueueAtWaitsUntilDue(t *testing.T) {
	t.Parallel()
	clk := newClock()
	q, _, _ := newTestQueue(t, WithClock(clk.Now))
	ctx := context.Background()
	due := clk.Now().Add(30 * 24 * time.Hour)
	job, err := q.EnqueueAt(ctx, Job{Type: "replace", TenantID: tenant, Payload: json.RawMessage(`{"media_id":"m1"}`)}, due)
	if err != nil {
		t.Fatal(err)
	}
	st, err := q.Status(ctx, tenant, job.ID)
	if err != nil || st.State != StateQueued || st.NextAttemptAt == nil || !st.NextAttemptAt.Equal(due) {
		t.Fatalf("status = %+v, %v; want queued until %v", st, err, due)
	}
	ran := make(chan Job, 1)
	startRun(t, q, "c1", 1, func(ctx context.Context, j Job) (json.RawMessage, error) {
		ran <- j
		return nil, nil
	})
	if s := stats(t, q); s.Delayed != 1 || s.Length != 0 {
		t.Fatalf("stats = %+v, want one delayed job", s)
	}
	clk.Advance(30*24*time.Hour - time.Second)
	time.Sleep(60 * time.Millisecond)
	select {
	case j := <-ran:
		t.Fatalf("job ran a second early: %+v", j)
	default:
	}
	clk.Advance(time.Second)
	if j := <-ran; j.ID != job.ID || j.Attempt != 1 {
		t.Fatalf("ran %+v, want %+v", j, job)
	}
	waitState(t, q, job.ID, StateSucceeded)

	// A due time in the past runs at once.
	past, err := q.EnqueueAt(ctx, Job{Type: "replace", TenantID: tenant}, clk.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if j := <-ran; j.ID != past.ID {
		t.Fatalf("ran %+v, want %+v", j, past)
	}
}
