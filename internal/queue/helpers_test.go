package queue

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/testenv"
)

const tenant = "tenant-a"

// clock is a test clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)} }

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

// fast are options that keep tests quick without changing semantics: short
// blocking reads and a busy retry mover.
func fast() []Option {
	return []Option{WithBlock(20 * time.Millisecond), WithPollInterval(10 * time.Millisecond)}
}

func newTestQueue(t *testing.T, opts ...Option) (*Queue, *redis.Client, string) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	return New(rdb, prefix, "test", append(fast(), opts...)...), rdb, prefix
}

// startRun runs q in the background and returns a stop function that
// cancels it and returns Run's error. Tests stop every Run they start
// before testenv deletes their keys.
func startRun(t *testing.T, q *Queue, consumer string, concurrency int, h Handler) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, consumer, concurrency, h) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("Run(%s) did not return after its context ended", consumer)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
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

func waitState(t *testing.T, q *Queue, jobID, state string) Status {
	t.Helper()
	var st Status
	waitFor(t, jobID+" to be "+state, func() bool {
		var err error
		st, err = q.Status(context.Background(), tenant, jobID)
		if err != nil && !apperr.Is(err, apperr.NotFound) {
			t.Fatalf("Status: %v", err)
		}
		return st.State == state
	})
	return st
}

func enqueue(t *testing.T, q *Queue, typ string, payload string) Job {
	t.Helper()
	job, err := q.Enqueue(context.Background(), Job{Type: typ, TenantID: tenant, Payload: json.RawMessage(payload)})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return job
}

// counter counts handler calls per job ID and remembers the attempts seen.
type counter struct {
	mu       sync.Mutex
	calls    map[string]int
	attempts map[string][]int
}

func newCounter() *counter {
	return &counter{calls: map[string]int{}, attempts: map[string][]int{}}
}

func (c *counter) add(job Job) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[job.ID]++
	c.attempts[job.ID] = append(c.attempts[job.ID], job.Attempt)
	return c.calls[job.ID]
}

func (c *counter) get(id string) (int, []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id], append([]int(nil), c.attempts[id]...)
}

func (c *counter) total() (jobs, calls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.calls {
		calls += n
	}
	return len(c.calls), calls
}

// outcomes records OnResult calls.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) hooks() Hooks {
	return Hooks{OnResult: func(typ, outcome string, d time.Duration) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.got = append(o.got, typ+":"+outcome)
	}}
}

func (o *outcomes) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

func stats(t *testing.T, q *Queue) Stats {
	t.Helper()
	s, err := q.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

// waitDrained waits until nothing is left anywhere in the queue but the
// dead letters.
func waitDrained(t *testing.T, q *Queue) {
	t.Helper()
	waitFor(t, "the queue to drain", func() bool {
		s := stats(t, q)
		return s.Length == 0 && s.Pending == 0 && s.Delayed == 0
	})
}
