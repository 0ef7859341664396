// Package ratelimit enforces per-tenant request rates with GCRA buckets kept
// in Redis, checking and consuming every bucket of a request in one round trip.
//
// # Algorithm
//
// Each bucket stores one number, its theoretical arrival time (TAT). A
// request costs one emission interval T = Period/Rate; it is allowed when the
// new TAT lies at most Burst*T ahead of now, so an idle bucket admits Burst
// requests back to back and then one every T. The TAT is written with a PX
// expiry equal to its lead over now, so an idle bucket's key vanishes exactly
// when it would have refilled anyway. A call names several buckets (for
// example the API key's and the tenant's); one Lua script consumes from all of
// them or, if any refuses, from none, so a refused request never drains a
// bucket that had room.
//
// Time comes from the injected clock and travels to the script as ARGV (Unix
// milliseconds) rather than Redis TIME, so tests move time without sleeping.
// Internally TATs are integer microseconds, which keeps rates that do not
// divide a millisecond exact and stays below 2^53.
//
// All keys of one call share the hash tag {t:<tenant>}, so the script runs
// on Redis Cluster, and it uses only commands miniredis also understands.
//
// # Headers
//
// The helpers render draft-ietf-httpapi-ratelimit-headers (draft 10, the
// structured-field form), with the policy name as an sf-string:
//
//	RateLimit-Policy: "tenant";q=600;w=60   q = Limit.Rate, w = Limit.Period in seconds (ceiling)
//	RateLimit: "tenant";r=12;t=5            r = Decision.Remaining, t = Decision.Reset in seconds (ceiling)
//	Retry-After: 2                          RetryAfterSeconds: ceiling, at least 1
//
// For GCRA, r is how many requests may be sent right now and t is how long
// until the bucket is full again (Burst requests available).
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/redis/go-redis/v9"
)

// Limit is a sustained rate (Rate requests per Period) with room for Burst
// requests at once.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// interval is the cost of one request in microseconds, rounded up so the
// enforced rate never exceeds the advertised one, and never 0, which would
// make requests free.
func (l Limit) interval() int64 {
	us := (l.Period.Microseconds() + int64(l.Rate) - 1) / int64(l.Rate)
	return max(us, 1)
}

func (l Limit) validate() error {
	if l.Rate < 1 || l.Period <= 0 || l.Burst < 1 {
		return fmt.Errorf("ratelimit: invalid limit %+v: rate, period and burst must be positive", l)
	}
	return nil
}

// Bucket is one named limit a request is counted against. Name is scoped to
// the tenant (e.g. "tenant", "key:<key id>") and is shown to clients as the
// policy name, so it must be printable ASCII.
type Bucket struct {
	Name  string
	Limit Limit
}

// Decision describes the outcome for the most constrained bucket: the one
// that refused with the longest wait, or, when all allowed, the one with
// the fewest requests left.
type Decision struct {
	Allowed bool
	Policy  string // the limiting bucket's name
	// Limit is that bucket's Burst: the most requests Remaining can reach.
	Limit      int
	Remaining  int
	Reset      time.Duration // until that bucket is full again
	RetryAfter time.Duration // zero when allowed
}

// Err returns nil when d allows the request and otherwise an
// apperr.RateLimited error carrying the wait, for handlers that just report.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	e := apperr.New(apperr.RateLimited, "rate limit %q exceeded; retry in %d s", d.Policy, RetryAfterSeconds(d))
	e.RetryAfter = time.Duration(RetryAfterSeconds(d)) * time.Second
	return e
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock replaces time.Now, so tests can move time without sleeping.
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) { l.now = now }
}

// Limiter checks buckets in Redis. It is safe for concurrent use.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// New returns a Limiter storing its keys under prefix, which must not
// contain braces: the tenant hash tag has to be the key's first one.
func New(rdb redis.UniversalClient, prefix string, opts ...Option) *Limiter {
	if strings.ContainsAny(prefix, "{}") {
		panic("ratelimit: key prefix must not contain braces, they would change the cluster hash tag: " + prefix)
	}
	l := &Limiter{rdb: rdb, prefix: prefix, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// gcra sees KEYS[i] with ARGV[2i] = interval (µs) and ARGV[2i+1] = burst;
// ARGV[1] is now in ms. It returns {all_allowed, then per bucket: allowed,
// remaining, reset µs, retry µs}. The first pass only reads, so a refusal by
// any bucket leaves every bucket untouched.
var gcra = redis.NewScript(`
local now = tonumber(ARGV[1]) * 1000
local n = #KEYS
local tat, interval, capacity = {}, {}, {}
local ok = 1
for i = 1, n do
  interval[i] = tonumber(ARGV[2 * i])
  capacity[i] = interval[i] * tonumber(ARGV[2 * i + 1])
  local t = tonumber(redis.call('GET', KEYS[i])) or now
  if t < now then t = now end
  tat[i] = t
  if t + interval[i] - now > capacity[i] then ok = 0 end
end
local out = {ok}
for i = 1, n do
  local new = tat[i] + interval[i]
  local allowed, retry = 1, 0
  if new - now > capacity[i] then
    allowed = 0
    retry = new - now - capacity[i]
  end
  local after = tat[i]
  if ok == 1 then
    after = new
    redis.call('SET', KEYS[i], string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
  end
  local remaining = math.floor((capacity[i] - (after - now)) / interval[i])
  out[#out + 1] = allowed
  out[#out + 1] = remaining
  out[#out + 1] = after - now
  out[#out + 1] = retry
end
return out
`)

// Allow counts one request against every bucket if all of them have room,
// and against none otherwise. A Redis failure is an apperr.Unavailable error;
// whether to fail open is the caller's choice.
func (l *Limiter) Allow(ctx context.Context, tenantID string, buckets ...Bucket) (Decision, error) {
	if err := validate(tenantID, buckets); err != nil {
		return Decision{}, err
	}
	keys := make([]string, len(buckets))
	args := make([]any, 0, 1+2*len(buckets))
	args = append(args, l.now().UnixMilli())
	for i, b := range buckets {
		keys[i] = l.key(tenantID, b.Name)
		args = append(args, b.Limit.interval(), b.Limit.Burst)
	}
	vals, err := gcra.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, apperr.Wrap(apperr.Unavailable, err, "rate limiter unavailable")
	}
	if len(vals) != 1+4*len(buckets) {
		return Decision{}, fmt.Errorf("ratelimit: script returned %d values for %d buckets", len(vals), len(buckets))
	}
	allowed := vals[0] == 1
	var d Decision
	for i, b := range buckets {
		v := vals[1+4*i:]
		c := Decision{
			Allowed:    v[0] == 1,
			Policy:     b.Name,
			Limit:      b.Limit.Burst,
			Remaining:  int(max(v[1], 0)), // negative only after a limit was lowered
			Reset:      time.Duration(v[2]) * time.Microsecond,
			RetryAfter: time.Duration(v[3]) * time.Microsecond,
		}
		if i == 0 || moreConstrained(c, d, allowed) {
			d = c
		}
	}
	d.Allowed = allowed
	return d, nil
}

// moreConstrained orders candidates for the Decision: on a refusal the
// refusing bucket with the longest wait, since waiting less would fail again;
// otherwise the bucket closest to empty.
func moreConstrained(c, cur Decision, allowed bool) bool {
	if !allowed {
		if c.Allowed != cur.Allowed {
			return !c.Allowed
		}
		return c.RetryAfter > cur.RetryAfter
	}
	if c.Remaining != cur.Remaining {
		return c.Remaining < cur.Remaining
	}
	return c.Reset > cur.Reset
}

func (l *Limiter) key(tenantID, bucket string) string {
	return l.prefix + "{t:" + tenantID + "}:rl:" + bucket
}

// validate rejects what would break key isolation: a brace in the tenant ID
// would end the hash tag early and let two tenants' keys collide.
func validate(tenantID string, buckets []Bucket) error {
	if tenantID == "" || strings.ContainsAny(tenantID, "{}") {
		return fmt.Errorf("ratelimit: invalid tenant ID %q", tenantID)
	}
	if len(buckets) == 0 {
		return errors.New("ratelimit: no bucket to check")
	}
	seen := make(map[string]bool, len(buckets))
	for _, b := range buckets {
		if b.Name == "" || !printable(b.Name) {
			return fmt.Errorf("ratelimit: invalid bucket name %q", b.Name)
		}
		if seen[b.Name] {
			// The script would read the same key twice and consume once.
			return fmt.Errorf("ratelimit: bucket %q listed twice", b.Name)
		}
		seen[b.Name] = true
		if err := b.Limit.validate(); err != nil {
			return err
		}
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// PolicyHeader renders one RateLimit-Policy list member, e.g.
// `"tenant";q=600;w=60`. Join several members with ", ".
func PolicyHeader(name string, l Limit) string {
	return sfString(name) + ";q=" + strconv.Itoa(l.Rate) + ";w=" + strconv.FormatInt(ceilSeconds(l.Period), 10)
}

// Header renders the RateLimit field for d, e.g. `"tenant";r=12;t=5`.
func Header(d Decision) string {
	return sfString(d.Policy) + ";r=" + strconv.Itoa(d.Remaining) + ";t=" + strconv.FormatInt(ceilSeconds(d.Reset), 10)
}

// RetryAfterSeconds is the Retry-After value for d: whole seconds rounded
// up, and at least 1, because a client told 0 would retry at once and be
// refused again.
func RetryAfterSeconds(d Decision) int {
	return int(max(ceilSeconds(d.RetryAfter), 1))
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// sfString quotes s as a structured-field String (RFC 8941 §3.3.3), which
// allows only printable ASCII with '"' and '\' escaped; anything else is
// replaced so a header can never be malformed.
func sfString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
