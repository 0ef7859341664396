// Package idempotency keeps Idempotency-Key records in Redis, so a retried
// POST replays its first answer instead of running twice.
//
// A record lives under {prefix}{t:<tenant>}:idem:<key> as a hash. Begin
// creates it in flight with a random token and a short lease; the request's
// Lease renews that lease while the work runs and finally either completes
// the record (the answer is kept for the TTL, 24 h by default) or releases
// it. Every write after Begin is a compare-and-set on the token, so a process
// that lost its lease can never overwrite the record of the request that
// took over, and a crashed process strands nothing: its lease just expires.
//
// The tenant hash tag keeps the package usable on Redis Cluster, and the
// scripts use only commands miniredis also understands.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/redis/go-redis/v9"
)

const (
	// DefaultTTL is how long a completed answer is replayed.
	DefaultTTL = 24 * time.Hour
	// DefaultLease is how long an in-flight record outlives its last renewal;
	// short, because it is how long a crashed request blocks its key.
	DefaultLease = 15 * time.Second
	// MaxResponseBody caps stored answers: only small JSON bodies are kept,
	// never media bytes, so a record never bloats Redis.
	MaxResponseBody = 64 << 10
	// MaxKeyLength bounds client keys, which become part of a Redis key.
	MaxKeyLength = 255
)

var (
	// ErrLeaseLost means the record no longer carries this lease's token:
	// the lease expired and the key was released or taken by a retry.
	// Nothing was written.
	ErrLeaseLost = errors.New("idempotency: lease lost; the record belongs to another request or expired")
	// ErrResponseTooLarge means Complete refused a body over MaxResponseBody.
	// Nothing was written and the lease is still held, so the caller can
	// Release it or Complete with a smaller answer.
	ErrResponseTooLarge = errors.New("idempotency: response body too large to store")
	// ErrLeaseFinished means Complete or Release was already done.
	ErrLeaseFinished = errors.New("idempotency: lease already completed or released")
)

// Response is a stored answer, replayed byte for byte.
type Response struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
	// CompletedAt is set by Complete from the Store's clock; Complete
	// ignores the caller's value.
	CompletedAt time.Time `json:"completed_at"`
}

// Option configures a Store.
type Option func(*Store)

// WithTTL sets how long completed answers are kept. Non-positive values are
// ignored.
func WithTTL(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.ttl = d
		}
	}
}

// WithLease sets the in-flight lease; it is renewed every third of it.
// Values under 3 ms are ignored: Redis expiries count whole milliseconds.
func WithLease(d time.Duration) Option {
	return func(s *Store) {
		if d >= 3*time.Millisecond {
			s.lease = d
		}
	}
}

// WithClock replaces time.Now for the timestamps the Store records.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// Store reads and writes idempotency records. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	lease  time.Duration
	now    func() time.Time
}

// New returns a Store keeping records under prefix, which must not contain
// braces: the tenant hash tag has to be the key's first one.
func New(rdb redis.UniversalClient, prefix string, opts ...Option) *Store {
	if strings.ContainsAny(prefix, "{}") {
		panic("idempotency: key prefix must not contain braces, they would change the cluster hash tag: " + prefix)
	}
	s := &Store{rdb: rdb, prefix: prefix, ttl: DefaultTTL, lease: DefaultLease, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ValidateKey checks a client's Idempotency-Key: 1 to 255 printable ASCII
// characters.
func ValidateKey(key string) error {
	detail := ""
	switch {
	case key == "":
		detail = "must not be empty"
	case len(key) > MaxKeyLength:
		detail = fmt.Sprintf("must be at most %d characters", MaxKeyLength)
	default:
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				detail = "must be printable ASCII"
				break
			}
		}
	}
	if detail == "" {
		return nil
	}
	return apperr.WithFields("invalid Idempotency-Key header",
		apperr.FieldError{Pointer: "header:Idempotency-Key", Detail: detail})
}

// Fingerprint identifies a request for key reuse checks: the hex sha256 of
// the method, the path and the body. Pass the path with its query string
// when the query changes what the request does.
func Fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(strings.ToUpper(method)))
	h.Write([]byte{' '})
	h.Write([]byte(path))
	h.Write([]byte{'\n'})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// begin returns {"acquired"}, {"mismatch"}, {"in_flight"} or {"done", resp}.
// The fingerprint is compared first, so a different request gets 422 even
// while the first one still runs.
var begin = redis.NewScript(`
local rec = redis.call('HMGET', KEYS[1], 'state', 'fp', 'resp')
if not rec[1] then
  redis.call('HSET', KEYS[1], 'state', 'in_flight', 'fp', ARGV[1], 'token', ARGV[2], 'created_ms', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'acquired'}
end
if rec[2] ~= ARGV[1] then return {'mismatch'} end
if rec[1] == 'in_flight' then return {'in_flight'} end
return {'done', rec[3]}
`)

// Complete removes the token, so a token match alone proves the record is
// still in flight and still ours.
var renew = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

var complete = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'resp', ARGV[2])
redis.call('HDEL', KEYS[1], 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

var release = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// Begin claims key for a request. It returns exactly one of: a Lease when
// the key is new (the caller runs the request, then calls Complete or
// Release); the stored Response when the same request already completed; or
// an error: apperr.Unprocessable when the key was used with a different
// fingerprint, apperr.Conflict while the same request is still in flight,
// apperr.Invalid for a malformed key, apperr.Unavailable when Redis fails.
func (s *Store) Begin(ctx context.Context, tenantID, key, fingerprint string) (*Lease, *Response, error) {
	if err := ValidateKey(key); err != nil {
		return nil, nil, err
	}
	if tenantID == "" || strings.ContainsAny(tenantID, "{}") {
		// A brace would end the hash tag early and let tenants' keys collide.
		return nil, nil, fmt.Errorf("idempotency: invalid tenant ID %q", tenantID)
	}
	token, err := newToken()
	if err != nil {
		return nil, nil, err
	}
	rkey := s.prefix + "{t:" + tenantID + "}:idem:" + key
	res, err := begin.Run(ctx, s.rdb, []string{rkey},
		fingerprint, token, ms(s.lease), s.now().UnixMilli()).StringSlice()
	if err != nil {
		return nil, nil, apperr.Wrap(apperr.Unavailable, err, "idempotency store unavailable")
	}
	switch res[0] {
	case "acquired":
		return &Lease{store: s, key: rkey, token: token}, nil, nil
	case "mismatch":
		return nil, nil, apperr.New(apperr.Unprocessable,
			"this Idempotency-Key was already used with a different request; use a new key for a new request")
	case "in_flight":
		return nil, nil, apperr.New(apperr.Conflict, "a request with this Idempotency-Key is still in progress")
	case "done":
		if len(res) < 2 {
			return nil, nil, fmt.Errorf("idempotency: completed record %s has no response", rkey)
		}
		var r Response
		if err := json.Unmarshal([]byte(res[1]), &r); err != nil {
			return nil, nil, fmt.Errorf("idempotency: decode stored response: %w", err)
		}
		return nil, &r, nil
	default:
		return nil, nil, fmt.Errorf("idempotency: unexpected script reply %q", res)
	}
}

// Lease is one request's claim on an in-flight record. Its methods are safe
// for concurrent use. Complete and Release write only while the record
// still carries the lease's token.
type Lease struct {
	store *Store
	key   string
	token string

	mu       sync.Mutex
	stop     chan struct{} // closed to end renewal; nil until Start
	renewing chan struct{} // closed when the renewal goroutine has returned
	halted   bool
	finished bool
}

// Start renews the lease every third of its length until ctx ends or
// Complete or Release is called (give it a context that lasts as long as the
// work, not one a client disconnect cancels), so a request may run longer than one lease
// while a crashed process still frees the key within one lease. Renewal
// also stops for good once the lease is found lost. Calling Start again, or
// after Complete or Release, does nothing.
func (l *Lease) Start(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stop != nil || l.halted {
		return
	}
	l.stop = make(chan struct{})
	l.renewing = make(chan struct{})
	go l.renew(ctx, l.stop, l.renewing)
}

func (l *Lease) renew(ctx context.Context, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(l.store.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
		}
		ok, err := renew.Run(ctx, l.store.rdb, []string{l.key}, l.token, ms(l.store.lease)).Int()
		if err == nil && ok == 0 {
			return // lost: renewing could only fail again
		}
		// A Redis error is retried on the next tick; two more chances remain
		// before the lease runs out.
	}
}

// halt stops renewal and waits for it, so no renewal races the final write.
func (l *Lease) halt() {
	l.mu.Lock()
	if l.halted {
		l.mu.Unlock()
		return
	}
	l.halted = true
	stop, renewing := l.stop, l.renewing
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		<-renewing
	}
}

// Complete stores resp as the answer to replay for the TTL and ends the
// lease. It refuses a body over MaxResponseBody (ErrResponseTooLarge, lease
// kept) and returns ErrLeaseLost when the lease was lost, storing nothing
// in either case. Pass a context that outlives the client's connection
// (context.WithoutCancel), or a disconnect would leave the key in flight
// until the lease expires.
func (l *Lease) Complete(ctx context.Context, resp Response) error {
	if len(resp.Body) > MaxResponseBody {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrResponseTooLarge, len(resp.Body), MaxResponseBody)
	}
	if resp.Status < 100 || resp.Status > 599 {
		return fmt.Errorf("idempotency: invalid status %d", resp.Status)
	}
	resp.CompletedAt = l.store.now().UTC()
	data, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("idempotency: encode response: %w", err)
	}
	return l.finish(ctx, complete, data, ms(l.store.ttl))
}

// Release deletes the in-flight record so the client may retry with the
// same key, e.g. after a 5xx. It returns ErrLeaseLost when the record is no
// longer this lease's.
func (l *Lease) Release(ctx context.Context) error {
	return l.finish(ctx, release)
}

func (l *Lease) finish(ctx context.Context, script *redis.Script, args ...any) error {
	l.mu.Lock()
	finished := l.finished
	l.mu.Unlock()
	if finished {
		return ErrLeaseFinished
	}
	l.halt()
	ok, err := script.Run(ctx, l.store.rdb, []string{l.key}, append([]any{l.token}, args...)...).Int()
	if err != nil {
		// Not finished: the caller may try again while the lease lasts.
		return apperr.Wrap(apperr.Unavailable, err, "idempotency store unavailable")
	}
	l.mu.Lock()
	l.finished = true
	l.mu.Unlock()
	if ok == 0 {
		return ErrLeaseLost
	}
	return nil
}

// ms rounds up to whole milliseconds, Redis's expiry unit, and never to 0,
// which PEXPIRE would take as "expire now".
func ms(d time.Duration) int64 {
	return max(int64((d+time.Millisecond-1)/time.Millisecond), 1)
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("idempotency: token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
