package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/idempotency"
	"github.com/chatvault/chatvault/internal/ratelimit"
)

const (
	ctxRequestID = "chatvault.request_id"
	ctxPrincipal = "chatvault.principal"
	ctxSignedFor = "chatvault.signed_for" // media ID a signed URL grants
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// requestID keeps a sane client-sent X-Request-ID, so a trace spans a
// Zapier step and our logs; otherwise it makes one.
func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !requestIDPattern.MatchString(id) {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

// observe logs one JSON line per request and records metrics.
func (s *server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	s.Metrics.observeRequest(c.Request.Method, route, status, elapsed)
	attrs := []any{"request_id", c.GetString(ctxRequestID), "method", c.Request.Method, "route", route,
		"status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000, "bytes_out", c.Writer.Size()}
	if p, ok := principalOf(c); ok {
		attrs = append(attrs, "tenant", p.TenantID, "key_id", p.KeyID)
	}
	if status >= 500 {
		s.log.ErrorContext(c.Request.Context(), "request", attrs...)
	} else {
		s.log.InfoContext(c.Request.Context(), "request", attrs...)
	}
}

func (s *server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.ErrorContext(c.Request.Context(), "panic", "request_id", c.GetString(ctxRequestID), "panic", fmt.Sprint(r))
			if !c.Writer.Written() {
				s.writeProblem(c, fmt.Errorf("panic: %v", r))
			}
			c.Abort()
		}
	}()
	c.Next()
}

// authenticate resolves the bearer key, or, where allowSigned, a signed
// content URL. Failed attempts are rate limited per client address, which
// also slows down key guessing.
func (s *server) authenticate(allowSigned bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if allowSigned && c.Query("signature") != "" {
			s.authenticateSigned(c)
			return
		}
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		p, found := s.Keys.Lookup(strings.TrimSpace(token))
		if !ok || !found {
			if s.limitAnonymous(c) {
				detail := "missing API key: send Authorization: Bearer <key>"
				if ok || c.GetHeader("Authorization") != "" {
					detail = "the API key is not valid"
				}
				c.Error(apperr.New(apperr.Unauthorized, "%s", detail))
			}
			c.Abort()
			return
		}
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

func (s *server) authenticateSigned(c *gin.Context) {
	tenant, id := c.Query("tenant"), c.Param("media_id")
	exp, err := strconv.ParseInt(c.Query("expires"), 10, 64)
	if err != nil || !s.Signer.Verify(tenant, id, c.Query("rendition"), time.Unix(exp, 0), c.Query("signature"), s.Now()) {
		if s.limitAnonymous(c) {
			c.Error(apperr.New(apperr.Forbidden, "the signed URL is invalid or has expired; fetch the media again for a fresh content_url"))
		}
		c.Abort()
		return
	}
	c.Set(ctxPrincipal, auth.Principal{TenantID: tenant, KeyID: "signed-url", Scopes: []string{auth.ScopeMediaRead}})
	c.Set(ctxSignedFor, id)
	c.Next()
}

// anonymousRate bounds failed authentication per client address.
var anonymousRate = ratelimit.Limit{Rate: 60, Period: time.Minute, Burst: 20}

// limitAnonymous applies the per-address bucket; false means it already
// reported a 429.
func (s *server) limitAnonymous(c *gin.Context) bool {
	c.Header("RateLimit-Policy", ratelimitPolicy("ip", anonymousRate))
	d, err := s.Limiter.Allow(c.Request.Context(), "_ip", ratelimit.Bucket{Name: "ip:" + c.ClientIP(), Limit: anonymousRate})
	if err != nil {
		// Authentication fails anyway; do not hide that behind a 503.
		c.Header("RateLimit", ratelimit.Header(ratelimit.Decision{Policy: "ip", RetryAfter: 5 * time.Second, Reset: 5 * time.Second}))
		return true
	}
	return s.applyDecision(c, d, "ip")
}

func ratelimitPolicy(name string, l ratelimit.Limit) string { return ratelimit.PolicyHeader(name, l) }

// webhookBucket is a tenant's budget for provider webhooks: generous, as a
// refused delivery only comes back later, but bounded.
func webhookBucket(l ratelimit.Limit) ratelimit.Bucket {
	return ratelimit.Bucket{Name: "webhook", Limit: l}
}

func principalOf(c *gin.Context) (auth.Principal, bool) {
	v, ok := c.Get(ctxPrincipal)
	if !ok {
		return auth.Principal{}, false
	}
	p, ok := v.(auth.Principal)
	return p, ok
}

func principal(c *gin.Context) auth.Principal {
	p, _ := principalOf(c)
	return p
}

// rateLimit checks the key's and the tenant's GCRA buckets in one round trip.
func (s *server) rateLimit(c *gin.Context) {
	p := principal(c)
	keyLimit, tenantLimit := s.Rates(p.TenantID)
	c.Header("RateLimit-Policy", ratelimitPolicy("key", keyLimit)+", "+ratelimitPolicy("tenant", tenantLimit))
	d, err := s.Limiter.Allow(c.Request.Context(), p.TenantID,
		ratelimit.Bucket{Name: "key:" + p.KeyID, Limit: keyLimit},
		ratelimit.Bucket{Name: "tenant", Limit: tenantLimit})
	if err != nil {
		limiterDown(c, "tenant", err)
		return
	}
	policy := "tenant"
	if strings.HasPrefix(d.Policy, "key:") {
		policy = "key"
	}
	if !s.applyDecision(c, d, policy) {
		c.Abort()
		return
	}
	c.Next()
}

// limiterDown answers 503 when the rate limiter cannot be asked, still with
// the RateLimit header the contract promises: no quota known, retry soon.
func limiterDown(c *gin.Context, policy string, err error) {
	c.Header("RateLimit", ratelimit.Header(ratelimit.Decision{Policy: policy, RetryAfter: 5 * time.Second, Reset: 5 * time.Second}))
	c.Error(&apperr.Error{Kind: apperr.Unavailable, Detail: "rate limiting is unavailable", RetryAfter: 5 * time.Second, Err: err})
	c.Abort()
}

func (s *server) applyDecision(c *gin.Context, d ratelimit.Decision, policy string) bool {
	d.Policy = policy
	c.Header("RateLimit", ratelimit.Header(d))
	if d.Allowed {
		return true
	}
	s.Metrics.RateLimited.WithLabelValues(policy).Inc()
	c.Error(&apperr.Error{Kind: apperr.RateLimited, Detail: "too many requests for the " + policy + " rate limit; retry after the Retry-After seconds", RetryAfter: d.RetryAfter})
	return false
}

// require refuses keys without scope.
func (s *server) require(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !principal(c).Has(scope) {
			c.Error(apperr.New(apperr.Forbidden, "this API key lacks the %s scope", scope))
			c.Abort()
			return
		}
		c.Next()
	}
}

// idempotent implements Idempotency-Key: a repeat gets the stored answer.
// Only small JSON answers are stored; 5xx, 409 and 429 release the key so
// the client can retry.
func (s *server) idempotent(c *gin.Context) {
	key := c.GetHeader("Idempotency-Key")
	if key == "" {
		c.Next()
		return
	}
	body, err := readBody(c)
	if err != nil {
		c.Error(err)
		c.Abort()
		return
	}
	p := principal(c)
	fp := idempotency.Fingerprint(c.Request.Method, c.Request.URL.Path, body)
	lease, replay, err := s.Idempotency.Begin(c.Request.Context(), p.TenantID, key, fp)
	if err != nil {
		c.Error(err)
		c.Abort()
		return
	}
	if replay != nil {
		for k, v := range replay.Header {
			c.Header(k, v)
		}
		c.Header("Idempotent-Replayed", "true")
		c.Data(replay.Status, replay.Header["Content-Type"], replay.Body)
		c.Abort()
		return
	}
	// Renewal outlives a client disconnect: the archive keeps running, and
	// the key must stay claimed until it finishes.
	ctx := context.WithoutCancel(c.Request.Context())
	lease.Start(ctx)
	rec := &recorder{ResponseWriter: c.Writer}
	c.Writer = rec
	c.Next()
	status := rec.Status()
	if status >= 500 || status == http.StatusConflict || status == http.StatusTooManyRequests || rec.overflow {
		if err := lease.Release(ctx); err != nil {
			s.log.WarnContext(ctx, "releasing an idempotency key failed", "err", err)
		}
		return
	}
	h := map[string]string{"Content-Type": rec.Header().Get("Content-Type")}
	for _, name := range []string{"Location", "Preference-Applied"} {
		if v := rec.Header().Get(name); v != "" {
			h[name] = v
		}
	}
	if err := lease.Complete(ctx, idempotency.Response{Status: status, Header: h, Body: rec.buf.Bytes()}); err != nil {
		s.log.WarnContext(ctx, "storing an idempotent answer failed", "err", err)
	}
}

// recorder keeps a copy of a small JSON answer for idempotent replay.
type recorder struct {
	gin.ResponseWriter
	buf      bytes.Buffer
	overflow bool
}

const maxRecorded = 64 << 10

func (r *recorder) Write(b []byte) (int, error) {
	if r.buf.Len()+len(b) > maxRecorded {
		r.overflow = true
	} else {
		r.buf.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) WriteString(s string) (int, error) { return r.Write([]byte(s)) }

// readBody reads a JSON body once, capped at MaxBodyBytes, and puts it back
// for the handler.
func readBody(c *gin.Context) ([]byte, error) {
	if v, ok := c.Get("chatvault.body"); ok {
		return v.([]byte), nil
	}
	ct := c.ContentType()
	if ct != "application/json" && !strings.HasSuffix(ct, "+json") {
		return nil, apperr.New(apperr.UnsupportedMedia, "send the request body as application/json")
	}
	body, err := rawBody(c)
	if err != nil {
		return nil, err
	}
	c.Set("chatvault.body", body)
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

func ceilSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
