// Package source opens media at the providers it comes from (Meta's WhatsApp
// Cloud API, Twilio, 360dialog, plain URLs) behind one Fetcher, through an
// SSRF-guarded client that retries what is worth retrying.
package source

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

// Source types.
const (
	TypeURL           = "url"
	TypeWhatsAppCloud = "whatsapp_cloud"
	TypeTwilio        = "twilio"
	TypeDialog360     = "dialog360"
)

// DefaultGraphBaseURL is used when a tenant configures no Graph base URL.
const DefaultGraphBaseURL = "https://graph.facebook.com/v23.0"

// DefaultTwilioAPIHost is used when a tenant configures no Twilio API host.
const DefaultTwilioAPIHost = "api.twilio.com"

// DefaultDialog360BaseURL is used when a tenant configures no 360dialog base
// URL.
const DefaultDialog360BaseURL = "https://waba-v2.360dialog.io"

// DefaultUserAgent is sent on every upstream request. Meta's media CDN
// answers requests without a User-Agent with an HTML page instead of media.
const DefaultUserAgent = "chatvault-media-archiver/1.0"

// Request names the media to open, as the client gave it.
type Request struct {
	Type    string // TypeURL, TypeWhatsAppCloud, TypeTwilio or TypeDialog360
	MediaID string // whatsapp_cloud, dialog360
	URL     string // url; twilio (the message's MediaUrl)
}

// Result is an open upstream body and what the provider declared about it.
// Declared values are claims: the caller verifies them while streaming.
type Result struct {
	Body     io.ReadCloser // streamed; the caller closes it
	MimeType string        // parameters stripped, lower case; "" if undeclared
	Size     int64         // -1 if undeclared
	SHA256   string        // lower-case hex; "" if undeclared
	Filename string        // "" if none
	Identity string        // see Identity
}

// HeaderRule sends Header: Value on URL fetches whose host is exactly Host
// ("host" for the scheme's default port, or "host:port").
type HeaderRule struct {
	Host   string
	Header string
	Value  string
}

// Settings are one tenant's source settings. They come from configuration,
// never from a request.
type Settings struct {
	GraphBaseURL string       // "" for DefaultGraphBaseURL
	GraphToken   string       // WhatsApp Cloud API bearer token
	URLAuth      []HeaderRule // credentials for URL sources, bound to one host each
	Twilio       TwilioSettings
	Dialog360    Dialog360Settings
	// Allowlist lets the tenant reach destinations the SSRF guard refuses:
	// a host name (any port), "host:port", an IP address or a CIDR prefix.
	Allowlist []string
}

// TwilioSettings are a tenant's Twilio credentials. Requests are signed with
// HTTP Basic auth: APIKeySID/APIKeySecret when set (Twilio's advice for
// production), else AccountSID/AuthToken. Media URLs must name AccountSID.
type TwilioSettings struct {
	AccountSID   string // AC + 32 hex digits
	AuthToken    string
	APIKeySID    string // SK + 32 hex digits
	APIKeySecret string
	// APIHost is where media URLs may point: "" for DefaultTwilioAPIHost,
	// "host" or "host:port" (https), or "http://host:port" to opt into
	// plain HTTP (a stand-in or an internal proxy). It is trusted
	// configuration, exempt from the SSRF guard; the CDN Twilio redirects
	// to is not.
	APIHost string
}

// Dialog360Settings are a tenant's 360dialog credentials.
type Dialog360Settings struct {
	BaseURL string // "" for DefaultDialog360BaseURL; trusted, exempt from the SSRF guard
	APIKey  string // sent as D360-API-KEY, to the BaseURL host only
}

// SettingsFunc returns a tenant's settings; ok is false for a tenant with
// none, which then gets defaults (public URLs only, no WhatsApp token).
type SettingsFunc func(tenantID string) (Settings, bool)

// Resolver looks up the addresses of a host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Option configures a Fetcher.
type Option func(*Fetcher)

// WithResolver replaces DNS, so tests can point names at any address.
func WithResolver(r Resolver) Option { return func(f *Fetcher) { f.resolve = r } }

// WithUserAgent sets the User-Agent sent upstream.
func WithUserAgent(ua string) Option { return func(f *Fetcher) { f.userAgent = ua } }

// WithTLSConfig sets the TLS client configuration, e.g. private root CAs.
func WithTLSConfig(c *tls.Config) Option { return func(f *Fetcher) { f.tlsConfig = c.Clone() } }

// WithBackoff sets how provider calls (WhatsApp Cloud API, Twilio,
// 360dialog) are retried after HTTP 429, 5xx or a transient network error:
// at most attempts tries per call, waiting a random time up to base·2ⁿ
// (capped at maxDelay) before try n+1, or what the provider's Retry-After asks
// for. attempts ≤ 1 turns retries off; base or maxDelay ≤ 0 keep their
// defaults (500ms, 8s; 4 attempts).
// Whatever the policy, one Fetch waits at most a minute in total, and never
// past its context's deadline.
func WithBackoff(base, maxDelay time.Duration, attempts int) Option {
	return func(f *Fetcher) {
		if base > 0 {
			f.backoffBase = base
		}
		if maxDelay > 0 {
			f.backoffMax = maxDelay
		}
		f.attempts = max(attempts, 1)
	}
}

// Fetcher opens media at any supported provider. It is safe for concurrent use.
type Fetcher struct {
	settings  SettingsFunc
	resolve   Resolver
	userAgent string
	tlsConfig *tls.Config

	// Retry policy; see WithBackoff. sleep, now and jitter are hooks for
	// tests, so that no test really waits.
	backoffBase time.Duration
	backoffMax  time.Duration
	attempts    int
	maxWait     time.Duration
	sleep       func(ctx context.Context, d time.Duration) error
	now         func() time.Time
	jitter      func(ceiling time.Duration) time.Duration

	mu sync.Mutex
	// transports holds one connection pool per distinct allowlist, so that a
	// connection one tenant was allowed to open is never reused by a tenant
	// that was not.
	transports map[string]*http.Transport
}

// New returns a Fetcher reading tenant settings through settings.
func New(settings SettingsFunc, opts ...Option) *Fetcher {
	f := &Fetcher{
		settings:   settings,
		resolve:    defaultResolver,
		userAgent:  DefaultUserAgent,
		transports: make(map[string]*http.Transport),

		backoffBase: defaultBackoffBase,
		backoffMax:  defaultBackoffMax,
		attempts:    defaultAttempts,
		maxWait:     maxTotalWait,
		sleep:       sleepCtx,
		now:         time.Now,
		jitter:      fullJitter,
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Fetch opens the media req names on behalf of tenantID. Errors are
// *apperr.Error with client-safe details.
func (f *Fetcher) Fetch(ctx context.Context, tenantID string, req Request) (*Result, error) {
	s := f.tenantSettings(tenantID)
	switch req.Type {
	case TypeURL:
		return f.fetchURL(ctx, s, req.URL)
	case TypeWhatsAppCloud:
		return f.fetchWhatsApp(ctx, s, req.MediaID)
	case TypeTwilio:
		return f.fetchTwilio(ctx, s, req.URL)
	case TypeDialog360:
		return f.fetchDialog360(ctx, s, req.MediaID)
	default:
		return nil, unsupportedType(req.Type)
	}
}

// Identity returns the natural identity of req without any network access,
// so callers can dedupe before fetching. It is the Identity Fetch reports:
// "url:<normalised url>", "whatsapp_cloud:<media_id>",
// "twilio:<media sid>" or "dialog360:<media_id>".
func Identity(req Request) (string, error) {
	switch req.Type {
	case TypeURL:
		u, err := parseSourceURL(req.URL)
		if err != nil {
			return "", err
		}
		return "url:" + normaliseURL(u), nil
	case TypeWhatsAppCloud:
		if err := validateMediaID(req.MediaID); err != nil {
			return "", err
		}
		return "whatsapp_cloud:" + req.MediaID, nil
	case TypeTwilio:
		tu, err := parseTwilioURL(req.URL)
		if err != nil {
			return "", err
		}
		return tu.identity(), nil
	case TypeDialog360:
		if err := validateMediaID(req.MediaID); err != nil {
			return "", err
		}
		return "dialog360:" + req.MediaID, nil
	default:
		return "", unsupportedType(req.Type)
	}
}

// CloseIdleConnections closes every pooled upstream connection.
func (f *Fetcher) CloseIdleConnections() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.transports {
		t.CloseIdleConnections()
	}
}

func (f *Fetcher) tenantSettings(tenantID string) Settings {
	if f.settings == nil {
		return Settings{}
	}
	s, ok := f.settings(tenantID)
	if !ok {
		return Settings{}
	}
	return s
}

func unsupportedType(t string) *apperr.Error {
	detail := "unknown source type " + quote(t) + "; use url, whatsapp_cloud, twilio or dialog360"
	if t == "" {
		detail = "source type is required"
	}
	return apperr.WithFields(detail, apperr.FieldError{Pointer: "/source/type", Detail: detail})
}
