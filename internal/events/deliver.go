package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/queue"
)

// Delivery headers (docs/EVENTS.md).
const (
	HeaderEventID   = "Chatvault-Event-Id"
	HeaderEventType = "Chatvault-Event-Type"
	HeaderSignature = "Chatvault-Signature"
	UserAgent       = "chatvault-webhooks/1"

	// DeliveryTimeout bounds one delivery, connection to last response byte
	// read; a receiver slower than that is retried.
	DeliveryTimeout = 10 * time.Second
	// DefaultTolerance is the signature age VerifySignature accepts when
	// given none.
	DefaultTolerance = 5 * time.Minute
)

// DelivererOption configures a Deliverer.
type DelivererOption func(*Deliverer)

// WithDelivererClock injects the clock that stamps signatures.
func WithDelivererClock(now func() time.Time) DelivererOption {
	return func(d *Deliverer) { d.now = now }
}

// WithDeliveryTimeout replaces DeliveryTimeout, for tests.
func WithDeliveryTimeout(t time.Duration) DelivererOption {
	return func(d *Deliverer) {
		if t > 0 {
			d.timeout = t
		}
	}
}

// Deliverer runs delivery jobs: one signed POST of an event to one
// subscription. It is safe for concurrent use.
type Deliverer struct {
	hooks   *Hooks
	client  ClientFunc
	now     func() time.Time
	timeout time.Duration
}

// NewDeliverer returns a Deliverer loading subscriptions from hooks and
// sending through the tenant's client.
func NewDeliverer(hooks *Hooks, client ClientFunc, opts ...DelivererOption) *Deliverer {
	d := &Deliverer{hooks: hooks, client: client, now: time.Now, timeout: DeliveryTimeout}
	for _, o := range opts {
		o(d)
	}
	return d
}

// DeliveryResult is what a finished delivery job records.
type DeliveryResult struct {
	SubscriptionID string `json:"subscription_id"`
	EventID        string `json:"event_id"`
	Status         int    `json:"status,omitempty"` // the receiver's HTTP status
	// Outcome is "delivered", "unsubscribed" (the receiver answered 410
	// and the subscription was deleted) or "skipped" (the subscription was
	// gone before the attempt).
	Outcome string `json:"outcome"`
}

// Handle is the queue.Handler of JobType jobs. Any 2xx answer succeeds; 410
// deletes the subscription and succeeds; an SSRF refusal or an unusable URL
// or payload fails for good (queue.Permanent); any other answer, a timeout
// or a network error is returned for the queue to retry with backoff.
// Redirects are not followed: a 3xx is retried like any other failure.
func (d *Deliverer) Handle(ctx context.Context, job queue.Job) (json.RawMessage, error) {
	if job.Type != JobType {
		return nil, queue.Permanent(apperr.New(apperr.Invalid, "job type %q is not %q", job.Type, JobType))
	}
	var p DeliveryPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil || p.SubscriptionID == "" || len(p.Event) == 0 {
		return nil, queue.Permanent(apperr.New(apperr.Invalid, "delivery job has no subscription or event"))
	}
	var head struct{ ID, Type string }
	if err := json.Unmarshal(p.Event, &head); err != nil || head.ID == "" {
		return nil, queue.Permanent(apperr.New(apperr.Invalid, "delivery job's event has no ID"))
	}
	res := DeliveryResult{SubscriptionID: p.SubscriptionID, EventID: head.ID}

	sub, err := d.hooks.Get(ctx, job.TenantID, p.SubscriptionID)
	if apperr.Is(err, apperr.NotFound) {
		res.Outcome = "skipped" // unsubscribed since the event; nobody to tell
		return result(res)
	}
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(sub.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, queue.Permanent(apperr.New(apperr.Unprocessable, "hook %s has an unusable url", sub.ID))
	}
	base, err := d.client(job.TenantID)
	if err != nil {
		return nil, err
	}
	client := *base
	// A 301/302 would turn the POST into a body-less GET elsewhere; the
	// receiver must fix its URL instead.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	rctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u.String(), bytes.NewReader(p.Event))
	if err != nil {
		return nil, queue.Permanent(apperr.New(apperr.Unprocessable, "hook %s has an unusable url", sub.ID))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEventID, head.ID)
	req.Header.Set(HeaderEventType, head.Type)
	req.Header.Set(HeaderSignature, Sign(sub.Secret, d.now(), p.Event))
	req.Header.Set("User-Agent", UserAgent)

	resp, err := client.Do(req)
	if err != nil {
		var r interface{ Refused() bool }
		if errors.As(err, &r) && r.Refused() {
			return nil, queue.Permanent(apperr.Wrap(apperr.Unprocessable, err, "hook %s: %s", sub.ID, refusalText(err)))
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			return nil, apperr.Wrap(apperr.BadGateway, err, "hook %s: %s did not answer within %s", sub.ID, u.Host, d.timeout)
		}
		return nil, apperr.Wrap(apperr.BadGateway, err, "hook %s: could not reach %s", sub.ID, u.Host)
	}
	// Drain a little so the connection can be reused; the body means nothing.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
	res.Status = resp.StatusCode

	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		res.Outcome = "delivered"
		return result(res)
	case resp.StatusCode == http.StatusGone:
		if err := d.hooks.Delete(ctx, job.TenantID, sub.ID); err != nil && !apperr.Is(err, apperr.NotFound) {
			return nil, err // retried: the next attempt meets the 410 again and deletes then
		}
		res.Outcome = "unsubscribed"
		return result(res)
	default:
		return nil, apperr.New(apperr.BadGateway, "hook %s: %s answered HTTP %d", sub.ID, u.Host, resp.StatusCode)
	}
}

// refusalText is the guard's own message, which names the destination but
// not what a host resolved to.
func refusalText(err error) string {
	var r interface {
		Refused() bool
		error
	}
	if errors.As(err, &r) {
		return r.Error()
	}
	return "destination not allowed"
}

func result(r DeliveryResult) (json.RawMessage, error) {
	b, err := json.Marshal(r)
	return b, err
}

// Sign returns the Chatvault-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>." + body)>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a Chatvault-Signature header as a receiver should:
// some v1 value is the HMAC of its t, a dot and the raw body under secret
// (compared in constant time), and t is within tolerance of now either way
// (DefaultTolerance when tolerance ≤ 0). Several v1 values are allowed, as
// Stripe allows them, for secret rotation.
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) bool {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			if ts != "" {
				return false // two timestamps: which one was signed?
			}
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return false
	}
	age := now.Sub(time.Unix(sec, 0))
	if age > tolerance || age < -tolerance {
		return false
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		// No early exit: every candidate costs the same.
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	return ok
}

var _ queue.Handler = (*Deliverer)(nil).Handle
