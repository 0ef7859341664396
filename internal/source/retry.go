package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	defaultBackoffBase = 500 * time.Millisecond
	defaultBackoffMax  = 8 * time.Second
	defaultAttempts    = 4
	// maxRetryAfter is the longest Retry-After a Fetch waits out itself.
	// A provider asking for longer is not going to be ready within one
	// request; the caller gets Unavailable with that RetryAfter instead.
	maxRetryAfter = 30 * time.Second
	// maxTotalWait bounds the sleeping one Fetch does across all its calls.
	maxTotalWait = time.Minute
	// Defaults for an error's RetryAfter when the provider gave none.
	rateLimitRetry   = time.Minute
	unavailableRetry = 30 * time.Second
)

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fullJitter spreads retries of many clients evenly over [0, ceiling], so
// that a provider recovering from overload is not hit by all of them at once.
func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// retrier is one Fetch's retry budget, shared by the calls the Fetch makes
// (resolve, download, a second resolve), so that the total wait stays
// bounded however many calls fail.
type retrier struct {
	f      *Fetcher
	waited time.Duration
}

func (f *Fetcher) newRetrier() *retrier { return &retrier{f: f} }

// next decides whether a call that just failed its try number attempt
// (0-based) is tried again, and after how long. retryAfter is the
// provider's Retry-After, if hasRA.
func (r *retrier) next(ctx context.Context, attempt int, retryAfter time.Duration, hasRA bool) (time.Duration, bool) {
	if attempt+1 >= r.f.attempts || ctx.Err() != nil {
		return 0, false
	}
	var d time.Duration
	if hasRA {
		if retryAfter > maxRetryAfter {
			return 0, false
		}
		d = retryAfter
	} else {
		ceiling := r.f.backoffMax
		if attempt < 30 {
			if c := r.f.backoffBase << attempt; c > 0 && c < ceiling {
				ceiling = c
			}
		}
		d = r.f.jitter(ceiling)
	}
	if r.waited+d > r.f.maxWait {
		return 0, false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		// Sleeping only to be cancelled helps nobody; report now.
		return 0, false
	}
	return d, true
}

// sleep waits d, or less if ctx ends first (then it returns why).
func (r *retrier) sleep(ctx context.Context, d time.Duration) error {
	err := r.f.sleep(ctx, d)
	if err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		return err
	}
	r.waited += d
	return nil
}

// retryableStatus: throttling and server-side failures. 501 and 505 say
// the request itself will never work.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests ||
		(code >= 500 && code <= 599 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported)
}

// transientError reports whether a failed round trip may succeed if tried
// again: connection refused or reset, a cut-off response, a timeout. An
// SSRF refusal, a redirect loop, a certificate problem, an unknown host or
// the caller giving up will not.
func transientError(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return false
	}
	var (
		re       *refusedError
		rd       *redirectError
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
	)
	switch {
	case errors.As(err, &re), errors.As(err, &rd):
		return false
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &recErr), errors.As(err, &alertErr):
		return false
	case errors.As(err, &dnsErr):
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	return true
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). A date in the past means "now".
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	if d > 24*time.Hour {
		d = 24 * time.Hour
	}
	return d, true
}

// retryAfterOf is resp's Retry-After on the Fetcher's clock.
func (f *Fetcher) retryAfterOf(h http.Header) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	return parseRetryAfter(h.Get("Retry-After"), f.now())
}

// retryHint is the RetryAfter for an error: the provider's, rounded up to
// whole seconds (the API sends integer Retry-After), else fallback.
func (f *Fetcher) retryHint(h http.Header, fallback time.Duration) time.Duration {
	d, ok := f.retryAfterOf(h)
	if !ok {
		return fallback
	}
	if d < time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// doWithRetry runs one provider call: build makes a fresh request for each
// try. It retries transient transport errors and retryable statuses within
// r's budget, and returns the last response (whatever its status, body
// unread) or the last transport error.
func (f *Fetcher) doWithRetry(ctx context.Context, r *retrier, client *http.Client, build func() (*http.Request, error)) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := build()
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			if !transientError(ctx, err) {
				return nil, err
			}
			d, ok := r.next(ctx, attempt, 0, false)
			if !ok || r.sleep(ctx, d) != nil {
				return nil, err
			}
			continue
		}
		if !retryableStatus(resp.StatusCode) {
			return resp, nil
		}
		ra, hasRA := f.retryAfterOf(resp.Header)
		d, ok := r.next(ctx, attempt, ra, hasRA)
		if !ok {
			return resp, nil
		}
		// Hand the connection back before sleeping on it.
		discard(resp)
		if err := r.sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}
