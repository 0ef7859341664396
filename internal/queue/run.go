package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
)

// ErrClaimLost is the cause of a handler's context when its entry was
// reclaimed by another consumer (this one went longer than the visibility
// timeout without extending its claim): the other consumer runs the job
// now, so this run's outcome will not be recorded.
var ErrClaimLost = errors.New("queue: claim lost to another consumer")

const (
	errWaitMin = 50 * time.Millisecond
	errWaitMax = 5 * time.Second
	// finishTimeout bounds each Redis call that records a job's outcome;
	// those run on a context that shutdown does not cancel.
	finishTimeout = 10 * time.Second
	extendChunk   = 200
	moveChunk     = 100
)

// Run consumes the queue as consumer with concurrency workers until ctx
// ends. Then it takes no new entries, waits for running handlers to finish
// (see WithDrainTimeout) and returns nil. It returns an error only for bad
// arguments or when Redis is unreachable at the start.
//
// consumer names this Run in the consumer group and must be unique among
// the queue's live Runs; several Runs, in one process or many, share the
// work. Besides reading new entries, every Run reclaims entries other
// consumers left idle longer than the visibility timeout, extends the claims
// of its own running entries, and moves due retries back to the stream.
//
// Handlers get a context that ctx ending does not cancel, so a graceful
// stop lets them finish; it is cancelled with cause ErrClaimLost when the
// entry went to another consumer.
func (q *Queue) Run(ctx context.Context, consumer string, concurrency int, h Handler) error {
	if consumer == "" || concurrency < 1 || h == nil {
		return fmt.Errorf("queue: Run needs a consumer name, concurrency ≥ 1 and a handler")
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := q.ensureGroup(ctx); err != nil {
		return unavailable(err)
	}
	bg := context.WithoutCancel(ctx)
	jobsCtx, cancelJobs := context.WithCancel(bg)
	defer cancelJobs()
	r := &runner{
		q: q, consumer: consumer, h: h, bg: bg, jobsCtx: jobsCtx,
		slots:    make(chan struct{}, concurrency),
		inflight: make(map[string]context.CancelCauseFunc),
		cursor:   "0-0",
	}
	r.release(concurrency)

	stopExtend := make(chan struct{})
	var loops sync.WaitGroup
	loops.Go(func() { r.extendLoop(stopExtend) })
	loops.Go(func() { r.moveLoop(ctx) })

	r.fetchLoop(ctx)
	r.drain(cancelJobs)
	// Extending runs until the last handler returns: a long job must keep
	// its claim through a graceful stop too.
	close(stopExtend)
	loops.Wait()
	r.retire()
	return nil
}

func (q *Queue) ensureGroup(ctx context.Context) error {
	// "0", not "$": jobs enqueued before the first Run ever are consumed too.
	err := q.rdb.XGroupCreateMkStream(ctx, q.stream, group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return err
	}
	return nil
}

type runner struct {
	q        *Queue
	consumer string
	h        Handler
	bg       context.Context // Run's context without cancellation, for Redis calls that must complete
	jobsCtx  context.Context // parent of handler contexts; cancelled only when the drain times out

	// slots holds one token per idle worker. The fetcher reads only as many
	// entries as it holds tokens for, so no entry waits, claimed but
	// unextended, in a local buffer where another consumer could steal it.
	slots chan struct{}
	wg    sync.WaitGroup // running jobs

	mu       sync.Mutex
	inflight map[string]context.CancelCauseFunc // entry ID → cancels its handler

	cursor      string    // XAUTOCLAIM position; fetcher goroutine only
	nextReclaim time.Time // fetcher goroutine only
}

type delivery struct {
	id  string
	job Job    // Attempt already counts this delivery
	raw string // the entry's job field, kept for undecodable entries
	bad error  // set when the entry holds no valid job
}

func (r *runner) release(n int) {
	for range n {
		r.slots <- struct{}{}
	}
}

// acquire waits for one idle worker and then takes every other idle one, up
// to the batch size, without waiting.
func (r *runner) acquire(ctx context.Context) (int, bool) {
	select {
	case <-ctx.Done():
		return 0, false
	case <-r.slots:
	}
	n := 1
	for n < r.q.batch {
		select {
		case <-r.slots:
			n++
		default:
			return n, true
		}
	}
	return n, true
}

func (r *runner) fetchLoop(ctx context.Context) {
	wait := errWaitMin
	for {
		n, ok := r.acquire(ctx)
		if !ok {
			return
		}
		ds, err := r.fetch(n)
		if ctx.Err() != nil {
			// The read may have been under way when ctx ended. The entries
			// are ours now; rather than start them during a stop, put them
			// back for the next consumer.
			for _, d := range ds {
				r.requeue(d, 0)
			}
			r.release(n)
			return
		}
		for _, d := range ds {
			r.start(d)
		}
		r.release(n - len(ds))
		if err == nil {
			wait = errWaitMin
			continue
		}
		r.q.reportError("fetch", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, errWaitMax)
	}
}

// fetch returns up to n entries: reclaimed ones first (they are the oldest),
// then new ones, blocking only when it has nothing yet.
func (r *runner) fetch(n int) ([]delivery, error) {
	var ds []delivery
	if !time.Now().Before(r.nextReclaim) {
		var err error
		if ds, err = r.reclaim(n); err != nil {
			return nil, err
		}
	}
	if len(ds) >= n {
		return ds, nil
	}
	block := r.q.block
	if len(ds) > 0 {
		block = -1 // no BLOCK: there is work already
	}
	more, err := r.read(n-len(ds), block)
	return append(ds, more...), err
}

func (r *runner) read(n int, block time.Duration) ([]delivery, error) {
	// r.bg, not ctx: cancelling a blocked read could drop entries Redis
	// already assigned to us, stranding them until the visibility timeout.
	res, err := r.q.rdb.XReadGroup(r.bg, &redis.XReadGroupArgs{
		Group: group, Consumer: r.consumer, Streams: []string{r.q.stream, ">"},
		Count: int64(n), Block: block,
	}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case noGroup(err):
		// The stream was deleted under us (say, by a key cleanup).
		return nil, r.q.ensureGroup(r.bg)
	case err != nil:
		return nil, err
	}
	var ds []delivery
	for _, s := range res {
		for _, m := range s.Messages {
			ds = append(ds, decode(m, 1))
		}
	}
	return ds, nil
}

// reclaim takes over up to n entries that other consumers left idle longer
// than the visibility timeout: their consumer died or hung.
func (r *runner) reclaim(n int) ([]delivery, error) {
	q := r.q
	msgs, cursor, err := q.rdb.XAutoClaim(r.bg, &redis.XAutoClaimArgs{
		Stream: q.stream, Group: group, Consumer: r.consumer,
		MinIdle: q.visibility, Start: r.cursor, Count: int64(n),
	}).Result()
	if noGroup(err) {
		return nil, q.ensureGroup(r.bg)
	}
	if err != nil {
		return nil, err
	}
	r.cursor = cursor
	if cursor == "0-0" {
		r.nextReclaim = time.Now().Add(max(q.visibility/4, time.Millisecond))
	} // else: more of the pending list to scan, so keep going next round

	// An entry this Run is running can come back when its extension fell
	// behind; it is still ours and still running, so not again.
	r.mu.Lock()
	kept := msgs[:0]
	for _, m := range msgs {
		if _, running := r.inflight[m.ID]; !running {
			kept = append(kept, m)
		}
	}
	r.mu.Unlock()
	if len(kept) == 0 {
		return nil, nil
	}

	// XAUTOCLAIM does not report delivery counts, and they count the
	// attempts that died with their consumer. One round trip for the batch.
	pipe := q.rdb.Pipeline()
	counts := make([]*redis.XPendingExtCmd, len(kept))
	for i, m := range kept {
		counts[i] = pipe.XPendingExt(r.bg, &redis.XPendingExtArgs{
			Stream: q.stream, Group: group, Start: m.ID, End: m.ID, Count: 1, Consumer: r.consumer,
		})
	}
	_, _ = pipe.Exec(r.bg)
	ds := make([]delivery, 0, len(kept))
	for i, m := range kept {
		deliveries := int64(2) // at least: someone had it before us
		if p, err := counts[i].Result(); err == nil && len(p) == 1 {
			deliveries = p[0].RetryCount
		}
		ds = append(ds, decode(m, deliveries))
	}
	return ds, nil
}

func decode(m redis.XMessage, deliveries int64) delivery {
	d := delivery{id: m.ID, raw: str(m.Values["job"])}
	if err := json.Unmarshal([]byte(d.raw), &d.job); err != nil || d.job.ID == "" || d.job.TenantID == "" {
		d.bad = fmt.Errorf("queue: entry %s holds no valid job (%v)", m.ID, err)
		return d
	}
	d.job.Attempt = max(d.job.Attempt, 1) + int(max(deliveries, 1)-1)
	return d
}

func (r *runner) start(d delivery) {
	ctx, cancel := context.WithCancelCause(r.jobsCtx)
	r.mu.Lock()
	r.inflight[d.id] = cancel
	r.mu.Unlock()
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			delete(r.inflight, d.id)
			r.mu.Unlock()
			cancel(nil)
			r.release(1)
		}()
		r.process(ctx, d)
	})
}

func (r *runner) process(ctx context.Context, d delivery) {
	q, job := r.q, d.job
	if d.bad != nil {
		r.fail(d, d.bad, 0)
		return
	}
	if job.Attempt > q.maxAttempts {
		// Only reclaimed entries get here: consumer after consumer died or
		// hung on this job (it may be what crashes them), so running it
		// again would likely cost another one.
		r.fail(d, apperr.New(apperr.Internal, "job abandoned: its consumer stopped responding on each of %d attempts", q.maxAttempts), 0)
		return
	}
	q.setStatus(r.bg, job, StateRunning, []any{"attempts", job.Attempt}, []string{"next_ms"})

	began := time.Now()
	result, err := r.call(ctx, job)
	took := time.Since(began)
	switch {
	case err == nil:
		r.succeed(d, result, took)
	case r.jobsCtx.Err() != nil:
		// The drain timeout cut the handler short: not the job's fault,
		// so not an attempt.
		r.requeue(d, took)
	case IsPermanent(err) || job.Attempt >= q.maxAttempts:
		r.fail(d, err, took)
	default:
		r.retry(d, err, took)
	}
}

// call runs the handler, turning a panic into an error so one bad job
// cannot take the worker process down with it.
func (r *runner) call(ctx context.Context, job Job) (result json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("queue: handler panicked: %v", p)
			r.q.reportError("handler", fmt.Errorf("job %s (%s) panicked: %v\n%s", job.ID, job.Type, p, debug.Stack()))
		}
	}()
	return r.h(ctx, job)
}

func (r *runner) succeed(d delivery, result json.RawMessage, took time.Duration) {
	q, job := r.q, d.job
	set := []any{"attempts", job.Attempt}
	del := append([]string{"result"}, errFields...)
	switch {
	case len(result) == 0:
	case len(result) > MaxResult || !json.Valid(result):
		// The work is done and must not be repeated over a report that
		// cannot be kept, so the job succeeds and the record says why its
		// result is missing.
		set = append(set, "err_kind", string(apperr.Internal),
			"err_detail", fmt.Sprintf("result not stored: not JSON or over %d bytes", MaxResult))
		del = []string{"result", "err_status", "next_ms"}
	default:
		set = append(set, "result", string(result))
		del = errFields
	}
	var acked int64
	err := r.finish(func(ctx context.Context) (err error) {
		acked, err = complete.Run(ctx, q.rdb, []string{q.stream}, group, d.id).Int64()
		return err
	})
	if err != nil {
		// Still pending: once this Run stops extending it, another consumer
		// reclaims it and runs it again. At least once, not exactly once.
		q.reportError("complete", err)
	} else if acked == 0 {
		q.reportResult(job.Type, OutcomeLost, took) // another consumer finished it already
		return
	}
	q.setStatus(r.bg, job, StateSucceeded, set, del)
	q.reportResult(job.Type, OutcomeSucceeded, took)
}

func (r *runner) retry(d delivery, cause error, took time.Duration) {
	q, job := r.q, d.job
	due := q.now().Add(q.Backoff(job.Attempt))
	next := job
	next.Attempt++
	data, err := json.Marshal(next)
	if err != nil {
		q.reportError("retry", err)
		return
	}
	// Status first: once rescheduled the job may be due and running at
	// once, and a late "retrying" would then overwrite "running".
	je := q.jobError(cause)
	q.setStatus(r.bg, job, StateRetrying, []any{"attempts", job.Attempt,
		"err_kind", je.Kind, "err_detail", je.Detail, "err_status", je.Status, "next_ms", due.UnixMilli()}, nil)
	var ok int64
	err = r.finish(func(ctx context.Context) (err error) {
		ok, err = reschedule.Run(ctx, q.rdb, []string{q.stream, q.delayed},
			group, r.consumer, d.id, data, due.UnixMilli()).Int64()
		return err
	})
	switch {
	case err != nil:
		q.reportError("retry", err) // left pending: reclaimed and retried later
	case ok == 0:
		q.reportResult(job.Type, OutcomeLost, took)
	default:
		q.reportResult(job.Type, OutcomeRetried, took)
	}
}

// requeue puts a job back on the stream at once with the same attempt
// number: it is used when this Run, not the job, is why it did not finish.
func (r *runner) requeue(d delivery, took time.Duration) {
	q, job := r.q, d.job
	if d.bad != nil {
		return // left pending; whoever reclaims it dead-letters it
	}
	data, err := json.Marshal(job)
	if err != nil {
		q.reportError("requeue", err)
		return
	}
	q.setStatus(r.bg, job, StateQueued, []any{"attempts", job.Attempt - 1}, []string{"next_ms"})
	var ok int64
	err = r.finish(func(ctx context.Context) (err error) {
		ok, err = reschedule.Run(ctx, q.rdb, []string{q.stream, q.delayed},
			group, r.consumer, d.id, data, "").Int64()
		return err
	})
	switch {
	case err != nil:
		q.reportError("requeue", err)
	case ok == 0:
		q.reportResult(job.Type, OutcomeLost, took)
	default:
		q.reportResult(job.Type, OutcomeRequeued, took)
	}
}

// fail moves the entry to the dead-letter stream and marks the job failed.
func (r *runner) fail(d delivery, cause error, took time.Duration) {
	q, job := r.q, d.job
	je := q.jobError(cause)
	jeData, _ := json.Marshal(je)
	data := []byte(d.raw)
	if d.bad == nil {
		var err error
		if data, err = json.Marshal(job); err != nil {
			q.reportError("dead-letter", err)
			return
		}
	}
	err := r.finish(func(ctx context.Context) error {
		return bury.Run(ctx, q.rdb, []string{q.stream, q.dead},
			group, r.consumer, d.id, data, jeData, cause.Error(), q.now().UnixMilli()).Err()
	})
	switch {
	case errors.Is(err, redis.Nil):
		q.reportResult(job.Type, OutcomeLost, took)
		return
	case err != nil:
		q.reportError("dead-letter", err)
		return
	}
	if d.bad == nil {
		q.setStatus(r.bg, job, StateFailed, []any{"attempts", job.Attempt,
			"err_kind", je.Kind, "err_detail", je.Detail, "err_status", je.Status}, []string{"next_ms"})
		if q.hooks.OnDead != nil {
			q.hooks.OnDead(r.bg, job, je)
		}
	}
	q.reportResult(job.Type, OutcomeFailed, took)
}

// finish runs a call that records a job's outcome, trying again briefly on
// Redis errors: giving up means the job runs once more after a reclaim.
func (r *runner) finish(call func(context.Context) error) error {
	var err error
	for i, wait := 0, errWaitMin; i < 3; i, wait = i+1, wait*4 {
		if i > 0 {
			time.Sleep(wait)
		}
		ctx, cancel := context.WithTimeout(r.bg, finishTimeout)
		err = call(ctx)
		cancel()
		if err == nil || errors.Is(err, redis.Nil) {
			return err
		}
	}
	return err
}

// drain waits for running jobs, cancelling their contexts once the drain
// timeout (if any) has passed.
func (r *runner) drain(cancelJobs context.CancelFunc) {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	if r.q.drain <= 0 {
		<-done
		return
	}
	t := time.NewTimer(r.q.drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancelJobs()
		<-done
	}
}

// extendLoop renews the claims on this Run's running entries every third of
// the visibility timeout, so two missed renewals in a row still keep them.
func (r *runner) extendLoop(stop <-chan struct{}) {
	q := r.q
	tick := time.NewTicker(max(q.visibility/3, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		r.mu.Lock()
		ids := make([]any, 0, len(r.inflight))
		for id := range r.inflight {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), extendChunk)]
			ids = ids[len(chunk):]
			ctx, cancel := context.WithTimeout(r.bg, q.visibility/3)
			lost, err := extend.Run(ctx, q.rdb, []string{q.stream}, append([]any{group, r.consumer}, chunk...)...).StringSlice()
			cancel()
			if err != nil {
				q.reportError("extend", err)
				continue
			}
			r.mu.Lock()
			for _, id := range lost {
				// Either it just finished (cancel is gone or harmless) or
				// another consumer runs it now: stop this copy's work.
				if c, ok := r.inflight[id]; ok {
					c(ErrClaimLost)
				}
			}
			r.mu.Unlock()
		}
	}
}

// moveLoop puts due retries back on the stream until ctx ends.
func (r *runner) moveLoop(ctx context.Context) {
	q := r.q
	tick := time.NewTicker(q.poll)
	defer tick.Stop()
	for {
		for {
			n, err := move.Run(r.bg, q.rdb, []string{q.delayed, q.stream}, q.now().UnixMilli(), moveChunk).Int()
			if err != nil {
				q.reportError("move", err)
				break
			}
			if n < moveChunk {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *runner) retire() {
	ctx, cancel := context.WithTimeout(r.bg, finishTimeout)
	defer cancel()
	if err := retire.Run(ctx, r.q.rdb, []string{r.q.stream}, group, r.consumer).Err(); err != nil {
		r.q.reportError("retire", err)
	}
}
