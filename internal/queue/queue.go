// Package queue is chatvault's durable job queue: Redis Streams with one
// consumer group, at-least-once delivery, retries with backoff, a
// dead-letter stream and per-tenant job status records.
//
// Key layout, for a queue called <name> under <prefix>:
//
//	<prefix>{q:<name>}:stream    stream of ready jobs; consumer group "workers"
//	<prefix>{q:<name>}:delayed   ZSET of jobs waiting for a retry, scored by due time (ms)
//	<prefix>{q:<name>}:dead      stream of jobs that failed for good
//	<prefix>{t:<tenant>}:job:<id> hash with the job's status, expiring after the status TTL
//
// A queue's keys share one hash tag, so every script that moves a job between
// them runs on one Redis Cluster slot. Status records live in the tenant's
// slot instead and are written in a separate step: they report on a job but
// never decide its fate, so they need not be atomic with the queue.
//
// Delivery is at least once. An entry stays pending until its outcome is
// recorded in one script (acknowledged, rescheduled or dead-lettered); a
// consumer that dies leaves it pending, and another reclaims it once it has
// been idle for the visibility timeout, which running jobs keep at bay by
// extending their claims. A job can therefore run twice (a consumer stalled
// longer than the timeout, or died after its handler finished but before
// the acknowledgement), so handlers must be idempotent. Rescheduling and
// dead-lettering are fenced: only the entry's current owner can do either,
// so a consumer that lost its entry cannot put the job in twice.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	// MaxPayload caps a job's payload: jobs carry references (media IDs,
	// URLs), never media bytes, and every byte is copied through Redis on
	// each retry.
	MaxPayload = 256 << 10
	// MaxResult caps the result kept in a status record.
	MaxResult = 64 << 10

	DefaultVisibility   = 2 * time.Minute
	DefaultMaxAttempts  = 8
	DefaultBackoffBase  = 2 * time.Second
	DefaultBackoffMax   = 10 * time.Minute
	DefaultStatusTTL    = 7 * 24 * time.Hour
	DefaultBlock        = 2 * time.Second
	DefaultBatchSize    = 16
	DefaultPollInterval = time.Second

	// group is the one consumer group: every worker of every process shares
	// it, so each entry goes to exactly one consumer at a time.
	group = "workers"
)

// Job states, as reported by Status.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateRetrying  = "retrying"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// Outcomes reported to Hooks.OnResult.
const (
	OutcomeSucceeded = "succeeded" // acknowledged
	OutcomeRetried   = "retried"   // failed, scheduled again
	OutcomeFailed    = "failed"    // moved to the dead-letter stream
	OutcomeRequeued  = "requeued"  // cut short by shutdown, put back without counting an attempt
	OutcomeLost      = "lost"      // another consumer owns the entry now; nothing was recorded
)

// Job is one unit of work.
type Job struct {
	ID         string          `json:"id"`   // set by Enqueue: "job_" + ULID
	Type       string          `json:"type"` // e.g. "archive", "inbound"
	TenantID   string          `json:"tenant_id"`
	Payload    json.RawMessage `json:"payload,omitempty"` // small JSON, at most MaxPayload bytes
	Attempt    int             `json:"attempt"`           // 1 on first delivery
	EnqueuedAt time.Time       `json:"enqueued_at"`
}

// JobError is the last error of a job, safe to show its tenant: Detail comes
// from an apperr.Error, and any other error is reported as "internal error".
type JobError struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	Status int    `json:"status,omitempty"` // HTTP status, when WithErrorStatus is given
}

// Status is a job's status record.
type Status struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	TenantID      string          `json:"tenant_id"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         *JobError       `json:"error,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	NextAttemptAt *time.Time      `json:"next_attempt_at,omitempty"`
}

// DeadLetter is a job that failed for good.
type DeadLetter struct {
	Job      Job
	Error    JobError
	Cause    string // the full error text, for operators only: it may hold internals
	FailedAt time.Time
	EntryID  string // pass to RetryDead
}

// Stats are the queue's gauges.
type Stats struct {
	Length  int64 // entries in the stream: waiting plus pending
	Pending int64 // delivered to a consumer and not yet acknowledged
	Delayed int64 // waiting for a retry
	Dead    int64 // in the dead-letter stream
}

// Handler runs one job. A nil error acknowledges it and stores result; an
// error retries it with backoff, unless wrapped with Permanent. Handlers must
// be idempotent: delivery is at least once.
type Handler func(ctx context.Context, job Job) (result json.RawMessage, err error)

// Hooks let the application observe the queue (metrics, logs) without this
// package importing either. Callbacks run on worker goroutines and must be
// quick and safe for concurrent use.
type Hooks struct {
	// OnResult reports each finished delivery: the job type, one of the
	// Outcome constants, and how long the handler ran.
	OnResult func(jobType, outcome string, d time.Duration)
	// OnDead reports a job moved to the dead letters, once, after its
	// status says failed (the application raises media.failed from it).
	OnDead func(ctx context.Context, job Job, err JobError)
	// OnError reports Redis failures and handler panics in Run's background
	// work, which retries on its own and has no caller to return them to.
	OnError func(op string, err error)
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: the job goes straight to the
// dead-letter stream. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Option configures a Queue.
type Option func(*Queue)

// WithClock replaces time.Now for timestamps and retry due times. Claims
// and visibility use Redis's own clock, which a test clock cannot move.
func WithClock(now func() time.Time) Option { return func(q *Queue) { q.now = now } }

// WithVisibilityTimeout sets how long an entry may go without its consumer
// extending its claim before another consumer reclaims it: the time a
// crashed worker's jobs wait. Values under 3 ms are ignored.
func WithVisibilityTimeout(d time.Duration) Option {
	return func(q *Queue) {
		if d >= 3*time.Millisecond {
			q.visibility = d
		}
	}
}

// WithMaxAttempts sets how many deliveries a job gets before it is
// dead-lettered. Values under 1 are ignored.
func WithMaxAttempts(n int) Option {
	return func(q *Queue) {
		if n >= 1 {
			q.maxAttempts = n
		}
	}
}

// WithBackoff sets the retry delay: attempt n waits a uniformly random time
// in [0, min(max, base·2^(n-1))] ("full jitter"), so a burst of failures
// does not come back as a burst. Non-positive values are ignored.
func WithBackoff(base, max time.Duration) Option {
	return func(q *Queue) {
		if base > 0 {
			q.backoffBase = base
		}
		if max > 0 {
			q.backoffMax = max
		}
	}
}

// WithJitter replaces the random draw of the backoff: it gets the ceiling
// and returns the delay. Tests use it to make delays exact.
func WithJitter(f func(ceiling time.Duration) time.Duration) Option {
	return func(q *Queue) { q.jitter = f }
}

// WithStatusTTL sets how long a status record outlives its last update.
func WithStatusTTL(d time.Duration) Option {
	return func(q *Queue) {
		if d > 0 {
			q.statusTTL = d
		}
	}
}

// WithBlock sets how long an idle consumer waits in XREADGROUP; it also
// bounds how long Run takes to notice that its context ended.
func WithBlock(d time.Duration) Option {
	return func(q *Queue) {
		if d >= time.Millisecond { // BLOCK 0 would wait forever
			q.block = d
		}
	}
}

// WithBatchSize caps the entries one read takes; a Run never takes more
// than it has free workers for.
func WithBatchSize(n int) Option {
	return func(q *Queue) {
		if n >= 1 {
			q.batch = n
		}
	}
}

// WithPollInterval sets how often Run moves due retries back to the stream,
// which is how late a retry may start.
func WithPollInterval(d time.Duration) Option {
	return func(q *Queue) {
		if d > 0 {
			q.poll = d
		}
	}
}

// WithDrainTimeout bounds the graceful stop: once Run's context has ended
// and running handlers have had d, their contexts are cancelled, and jobs
// that then fail are put back without counting an attempt. 0, the default,
// waits for handlers as long as they take.
func WithDrainTimeout(d time.Duration) Option {
	return func(q *Queue) { q.drain = max(d, 0) }
}

// WithErrorStatus fills JobError.Status from the error kind, e.g. with the
// API's status table, which this package does not own.
func WithErrorStatus(f func(apperr.Kind) int) Option {
	return func(q *Queue) { q.errStatus = f }
}

// WithHooks sets the observation callbacks.
func WithHooks(h Hooks) Option { return func(q *Queue) { q.hooks = h } }

// Queue is one named queue. It is safe for concurrent use.
type Queue struct {
	rdb                     redis.UniversalClient
	prefix, name            string
	stream, delayed, dead   string
	now                     func() time.Time
	visibility              time.Duration
	maxAttempts             int
	backoffBase, backoffMax time.Duration
	jitter                  func(time.Duration) time.Duration
	statusTTL               time.Duration
	block, poll, drain      time.Duration
	batch                   int
	errStatus               func(apperr.Kind) int
	hooks                   Hooks
}

// New returns the queue called name, keeping its keys under prefix. Neither
// may contain braces: the queue's hash tag has to be the keys' first one.
func New(rdb redis.UniversalClient, prefix, name string, opts ...Option) *Queue {
	if strings.ContainsAny(prefix, "{}") || strings.ContainsAny(name, "{}") || name == "" {
		panic(fmt.Sprintf("queue: prefix %q and name %q must be brace-free and the name non-empty", prefix, name))
	}
	base := prefix + "{q:" + name + "}:"
	q := &Queue{
		rdb: rdb, prefix: prefix, name: name,
		stream: base + "stream", delayed: base + "delayed", dead: base + "dead",
		now:         time.Now,
		visibility:  DefaultVisibility,
		maxAttempts: DefaultMaxAttempts,
		backoffBase: DefaultBackoffBase,
		backoffMax:  DefaultBackoffMax,
		jitter:      fullJitter,
		statusTTL:   DefaultStatusTTL,
		block:       DefaultBlock,
		poll:        DefaultPollInterval,
		batch:       DefaultBatchSize,
	}
	for _, o := range opts {
		o(q)
	}
	return q
}

func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// Backoff returns the delay before the attempt after failed attempt n.
func (q *Queue) Backoff(attempt int) time.Duration {
	ceiling := q.backoffBase
	// Doubling stops at the cap, so a large attempt cannot overflow.
	for i := 1; i < attempt && ceiling < q.backoffMax; i++ {
		ceiling *= 2
	}
	d := q.jitter(min(ceiling, q.backoffMax))
	return max(d, 0)
}

// Enqueue adds job to the queue and records its status as queued. It sets
// ID, Attempt (1) and EnqueuedAt, and returns the job as stored.
func (q *Queue) Enqueue(ctx context.Context, job Job) (Job, error) {
	return q.EnqueueAt(ctx, job, time.Time{})
}

// EnqueueAt is Enqueue for a job that is not to run before at: it waits
// with the retries until then (Run's poll interval late at most). A zero
// or past at runs it at once.
func (q *Queue) EnqueueAt(ctx context.Context, job Job, at time.Time) (Job, error) {
	if err := validate(job); err != nil {
		return Job{}, err
	}
	now := q.now().UTC()
	id, err := ulid.New(ulid.Timestamp(now), ulid.DefaultEntropy())
	if err != nil {
		return Job{}, fmt.Errorf("queue: job ID: %w", err)
	}
	job.ID = "job_" + id.String()
	job.Attempt = 1
	job.EnqueuedAt = now
	if len(job.Payload) == 0 {
		job.Payload = nil
	}
	data, err := json.Marshal(job)
	if err != nil {
		return Job{}, fmt.Errorf("queue: encode job: %w", err)
	}

	// One round trip. The status is written create-only: on a cluster the
	// two commands go to different nodes in no set order, and a worker that
	// already took the job must not see its "running" turned back into
	// "queued".
	set := []any{"attempts", 0}
	delayed := at.After(now)
	if delayed {
		set = append(set, "next_ms", at.UnixMilli())
	}
	skey, sargs := q.statusWrite(job, now, "-", StateQueued, set, nil)
	pipe := q.rdb.Pipeline()
	st := writeStatus.EvalSha(ctx, pipe, []string{skey}, sargs...)
	var add redis.Cmder
	if delayed {
		add = pipe.ZAdd(ctx, q.delayed, redis.Z{Score: float64(at.UnixMilli()), Member: data})
	} else {
		add = pipe.XAdd(ctx, &redis.XAddArgs{Stream: q.stream, Values: []any{"job", data}})
	}
	_, _ = pipe.Exec(ctx)
	if err := add.Err(); err != nil {
		// The caller never learns this ID, so the status would only confuse.
		if st.Err() == nil {
			_ = q.rdb.Del(context.WithoutCancel(ctx), skey).Err()
		}
		return Job{}, unavailable(err)
	}
	if err := st.Err(); err != nil {
		// First use on this server: the pipeline could not load the script.
		// The job is in already; a lost status only means NotFound until a
		// worker writes "running", so this is worth one more try, not a failure.
		if err := writeStatus.Run(ctx, q.rdb, []string{skey}, sargs...).Err(); err != nil {
			q.reportError("enqueue status", err)
		}
	}
	return job, nil
}

func validate(job Job) error {
	var fields []apperr.FieldError
	if job.Type == "" {
		fields = append(fields, apperr.FieldError{Pointer: "/type", Detail: "must not be empty"})
	}
	if job.TenantID == "" || strings.ContainsAny(job.TenantID, "{}") {
		// A brace would end the tenant hash tag early and mix tenants' keys.
		fields = append(fields, apperr.FieldError{Pointer: "/tenant_id", Detail: "must be non-empty and brace-free"})
	}
	if len(job.Payload) > 0 && len(job.Payload) <= MaxPayload && !json.Valid(job.Payload) {
		fields = append(fields, apperr.FieldError{Pointer: "/payload", Detail: "must be valid JSON"})
	}
	if len(fields) > 0 {
		return apperr.WithFields("invalid job", fields...)
	}
	if len(job.Payload) > MaxPayload {
		return apperr.New(apperr.TooLarge, "job payload is %d bytes, limit %d", len(job.Payload), MaxPayload)
	}
	return nil
}

// Status returns the status of the tenant's job. Unknown IDs, expired
// records and other tenants' jobs are all apperr.NotFound.
func (q *Queue) Status(ctx context.Context, tenantID, jobID string) (Status, error) {
	if tenantID == "" || strings.ContainsAny(tenantID, "{}") || jobID == "" {
		return Status{}, apperr.New(apperr.NotFound, "job not found")
	}
	h, err := q.rdb.HGetAll(ctx, q.statusKey(tenantID, jobID)).Result()
	if err != nil {
		return Status{}, unavailable(err)
	}
	// The key is tenant-scoped already; the field check guards against a
	// record written under the wrong key by a bug.
	if len(h) == 0 || h["tenant"] != tenantID || h["state"] == "" {
		return Status{}, apperr.New(apperr.NotFound, "job not found")
	}
	s := Status{
		ID: h["id"], Type: h["type"], TenantID: h["tenant"], State: h["state"],
		CreatedAt: msTime(h["created_ms"]), UpdatedAt: msTime(h["updated_ms"]),
	}
	s.Attempts, _ = strconv.Atoi(h["attempts"])
	if r := h["result"]; r != "" {
		s.Result = json.RawMessage(r)
	}
	if k := h["err_kind"]; k != "" {
		st, _ := strconv.Atoi(h["err_status"])
		s.Error = &JobError{Kind: k, Detail: h["err_detail"], Status: st}
	}
	if n := h["next_ms"]; n != "" {
		t := msTime(n)
		s.NextAttemptAt = &t
	}
	return s, nil
}

var entryIDPattern = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// DeadLetters lists dead-lettered jobs of every tenant, newest first, at
// most limit (1 to 1000, default 50) per page. Pass the returned cursor to
// get the next page; it is "" after the last one.
func (q *Queue) DeadLetters(ctx context.Context, limit int, cursor string) ([]DeadLetter, string, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	start := "+"
	if cursor != "" {
		if !entryIDPattern.MatchString(cursor) {
			return nil, "", apperr.WithFields("invalid cursor", apperr.FieldError{Pointer: "query:cursor", Detail: "not a cursor from a previous page"})
		}
		start = "(" + cursor // exclusive: the cursor's own entry was on the last page
	}
	// One more than asked tells whether another page exists.
	msgs, err := q.rdb.XRevRangeN(ctx, q.dead, start, "-", int64(limit+1)).Result()
	if err != nil {
		return nil, "", unavailable(err)
	}
	next := ""
	if len(msgs) > limit {
		msgs = msgs[:limit]
		next = msgs[limit-1].ID
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, decodeDead(m))
	}
	return out, next, nil
}

func decodeDead(m redis.XMessage) DeadLetter {
	d := DeadLetter{EntryID: m.ID}
	// Entries are ours, so decoding errors leave zero fields rather than
	// hide the entry: an operator still sees it and can retry or inspect it.
	_ = json.Unmarshal([]byte(str(m.Values["job"])), &d.Job)
	_ = json.Unmarshal([]byte(str(m.Values["error"])), &d.Error)
	d.Cause = str(m.Values["cause"])
	d.FailedAt = msTime(str(m.Values["failed_ms"]))
	return d
}

// DeadLetter returns one dead letter, apperr.NotFound if there is none
// with that entry ID. The dead-letter stream is shared by all tenants: a
// caller acting for a tenant must check Job.TenantID.
func (q *Queue) DeadLetter(ctx context.Context, entryID string) (DeadLetter, error) {
	if !entryIDPattern.MatchString(entryID) {
		return DeadLetter{}, apperr.New(apperr.NotFound, "dead letter not found")
	}
	msgs, err := q.rdb.XRange(ctx, q.dead, entryID, entryID).Result()
	if err != nil {
		return DeadLetter{}, unavailable(err)
	}
	if len(msgs) == 0 {
		return DeadLetter{}, apperr.New(apperr.NotFound, "dead letter not found")
	}
	return decodeDead(msgs[0]), nil
}

// RetryDead moves a dead-lettered job back to the stream as attempt 1 under
// its original ID and removes it from the dead-letter stream. It returns
// apperr.NotFound when no such entry exists (or a concurrent RetryDead took
// it first).
func (q *Queue) RetryDead(ctx context.Context, entryID string) (Job, error) {
	d, err := q.DeadLetter(ctx, entryID)
	if err != nil {
		return Job{}, err
	}
	job := d.Job
	if job.ID == "" || job.TenantID == "" {
		return Job{}, apperr.New(apperr.Unprocessable, "dead letter %s holds no valid job", entryID)
	}
	job.Attempt = 1
	data, err := json.Marshal(job)
	if err != nil {
		return Job{}, fmt.Errorf("queue: encode job: %w", err)
	}
	// The job is rebuilt in Go, not Lua, so its payload bytes are not
	// re-encoded; the script then removes and re-adds in one step, and only
	// if the entry is still there.
	res, err := revive.Run(ctx, q.rdb, []string{q.dead, q.stream}, entryID, data).Result()
	if errors.Is(err, redis.Nil) || res == nil {
		return Job{}, apperr.New(apperr.NotFound, "dead letter not found")
	}
	if err != nil {
		return Job{}, unavailable(err)
	}
	// Only over "failed": a worker may have taken the job already.
	q.setStatusIf(ctx, job, StateFailed, StateQueued, []any{"attempts", 0}, errFields)
	return job, nil
}

// Stats returns the queue's gauges in one round trip.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	pipe := q.rdb.Pipeline()
	xlen := pipe.XLen(ctx, q.stream)
	pend := pipe.XPending(ctx, q.stream, group)
	zc := pipe.ZCard(ctx, q.delayed)
	dead := pipe.XLen(ctx, q.dead)
	_, _ = pipe.Exec(ctx)
	var s Stats
	var err error
	s.Length, err = xlen.Result()
	if err != nil {
		return Stats{}, unavailable(err)
	}
	if p, perr := pend.Result(); perr == nil {
		s.Pending = p.Count
	} else if !noGroup(perr) { // before the first Run there is no group, so nothing pending
		return Stats{}, unavailable(perr)
	}
	if s.Delayed, err = zc.Result(); err != nil {
		return Stats{}, unavailable(err)
	}
	if s.Dead, err = dead.Result(); err != nil {
		return Stats{}, unavailable(err)
	}
	return s, nil
}

// errFields are the status fields of a failure, cleared when a job moves on.
var errFields = []string{"err_kind", "err_detail", "err_status", "next_ms"}

func (q *Queue) statusKey(tenantID, jobID string) string {
	return q.prefix + "{t:" + tenantID + "}:job:" + jobID
}

// statusWrite builds writeStatus's key and arguments; see the script for
// the precondition.
func (q *Queue) statusWrite(job Job, now time.Time, precondition, state string, set []any, del []string) (string, []any) {
	base := []any{"id", job.ID, "type", job.Type, "tenant", job.TenantID, "created_ms", job.EnqueuedAt.UnixMilli()}
	set = append([]any{"state", state, "updated_ms", now.UnixMilli()}, set...)
	args := []any{precondition, ms(q.statusTTL), len(base), len(set)}
	args = append(args, base...)
	args = append(args, set...)
	for _, f := range del {
		args = append(args, f)
	}
	return q.statusKey(job.TenantID, job.ID), args
}

// setStatus updates a status record. Failures are reported, not returned:
// the record describes the job, and a job must not fail or stall because
// its description could not be written.
func (q *Queue) setStatus(ctx context.Context, job Job, state string, set []any, del []string) {
	q.setStatusIf(ctx, job, "", state, set, del)
}

// setStatusIf is setStatus only while the record is absent or in state from.
func (q *Queue) setStatusIf(ctx context.Context, job Job, from, state string, set []any, del []string) {
	key, args := q.statusWrite(job, q.now(), from, state, set, del)
	if err := writeStatus.Run(ctx, q.rdb, []string{key}, args...).Err(); err != nil {
		q.reportError("status "+state, err)
	}
}

func (q *Queue) jobError(err error) JobError {
	je := JobError{Kind: string(apperr.Internal), Detail: "internal error"}
	if e, ok := apperr.As(err); ok && e.Kind != apperr.Internal {
		je = JobError{Kind: string(e.Kind), Detail: e.Detail}
	}
	if q.errStatus != nil {
		je.Status = q.errStatus(apperr.Kind(je.Kind))
	}
	return je
}

func (q *Queue) reportError(op string, err error) {
	if q.hooks.OnError != nil {
		q.hooks.OnError(op, err)
	}
}

func (q *Queue) reportResult(jobType, outcome string, d time.Duration) {
	if q.hooks.OnResult != nil {
		q.hooks.OnResult(jobType, outcome, d)
	}
}

func unavailable(err error) error {
	return apperr.Wrap(apperr.Unavailable, err, "job queue unavailable")
}

func noGroup(err error) bool {
	return redis.HasErrorPrefix(err, "NOGROUP")
}

// ms rounds up to whole milliseconds, Redis's unit, and never to 0, which
// PEXPIRE would take as "expire now".
func ms(d time.Duration) int64 {
	return max(int64((d+time.Millisecond-1)/time.Millisecond), 1)
}

func msTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
