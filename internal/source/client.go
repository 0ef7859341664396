package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 30 * time.Second
	maxRedirects          = 5
	// maxTransports bounds the pools kept for distinct allowlists; configs
	// rarely have more than a handful, a reload may add a few.
	maxTransports = 64
)

// goResolver is the pure-Go resolver: the C library's getaddrinfo would
// accept "2130706433" or "0x7f.1" as IPv4 addresses.
var goResolver = &net.Resolver{PreferGo: true}

func defaultResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return goResolver.LookupNetIP(ctx, "ip", host)
}

// client returns an HTTP client whose every connection, on every redirect
// hop, passes the SSRF guard with the exceptions in al.
func (f *Fetcher) client(al *allowlist) *http.Client {
	return &http.Client{Transport: f.transport(al), CheckRedirect: checkRedirect}
}

func (f *Fetcher) transport(al *allowlist) *http.Transport {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.transports[al.key]; ok {
		return t
	}
	if len(f.transports) >= maxTransports {
		for k, t := range f.transports {
			// In-flight requests keep their connections; only the pool goes.
			t.CloseIdleConnections()
			delete(f.transports, k)
			break
		}
	}
	t := &http.Transport{
		// Proxy settings from the environment would move the dial, and so
		// the address check, to somewhere we cannot see.
		Proxy:                  nil,
		DialContext:            f.guardedDial(al),
		TLSClientConfig:        f.tlsConfig.Clone(),
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ResponseHeaderTimeout:  responseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: 64 << 10,
		// Archives keep the bytes exactly as the origin stores them.
		DisableCompression: true,
		// A custom DialContext turns HTTP/2 off unless asked for.
		ForceAttemptHTTP2: true,
	}
	f.transports[al.key] = t
	return t
}

// guardedDial resolves the host itself and dials only addresses that pass
// the guard, by IP literal, so the address checked is the address
// connected to (no second lookup for DNS rebinding to race).
func (f *Fetcher) guardedDial(al *allowlist) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			return nil, &refusedError{"invalid port " + quote(portStr)}
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")

		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else {
			if numericHost(host) || !validHostName(host) {
				return nil, &refusedError{"ambiguous host " + quote(host)}
			}
			rctx, cancel := context.WithTimeout(ctx, dialTimeout)
			addrs, err = f.resolve(rctx, host)
			cancel()
			if err != nil {
				return nil, err
			}
		}

		var refused error
		var allowed []netip.Addr
		for _, ip := range addrs {
			if al.allows(host, uint16(port), ip) {
				allowed = append(allowed, ip)
				continue
			}
			if why := deniedReason(ip); why != "" {
				if refused == nil {
					refused = refuseAddr(host, ip, why)
				}
				continue
			}
			allowed = append(allowed, ip)
		}
		if len(allowed) == 0 {
			if refused != nil {
				return nil, refused
			}
			return nil, &net.DNSError{Err: errNoAddress.Error(), Name: host, IsNotFound: true}
		}
		var lastErr error
		for _, ip := range allowed {
			conn, err := dialer.DialContext(ctx, network, netip.AddrPortFrom(ip.Unmap(), uint16(port)).String())
			if err == nil {
				return conn, nil
			}
			lastErr = err
			if ctx.Err() != nil {
				break
			}
		}
		return nil, lastErr
	}
}

// checkTarget refuses URLs the guard will not fetch whatever they resolve
// to. The address itself is checked when dialling.
func checkTarget(u *url.URL) *refusedError {
	switch u.Scheme {
	case "http", "https":
	default:
		return &refusedError{"scheme " + quote(u.Scheme) + " (only http and https)"}
	}
	if u.User != nil {
		return &refusedError{"URLs with credentials (configure url_auth instead)"}
	}
	if u.Opaque != "" {
		return &refusedError{"opaque URL"}
	}
	host := u.Hostname()
	if host == "" {
		return &refusedError{"URL without a host"}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return &refusedError{"invalid port " + quote(p)}
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if numericHost(h) {
		return &refusedError{"ambiguous numeric host " + quote(host)}
	}
	if !validHostName(h) {
		return &refusedError{"invalid host " + quote(host)}
	}
	return nil
}

type redirectError struct{ n int }

func (e *redirectError) Error() string { return fmt.Sprintf("stopped after %d redirects", e.n) }

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return &redirectError{maxRedirects}
	}
	if err := checkTarget(req.URL); err != nil {
		return err
	}
	// The previous URL may be a signed one; the next host has no business
	// seeing it.
	req.Header.Del("Referer")
	downgraded := false
	for _, v := range via {
		if v.URL.Scheme == "https" && req.URL.Scheme == "http" {
			downgraded = true
		}
	}
	bound, _ := req.Context().Value(boundKey{}).([]boundHeader)
	applyBound(req, bound, downgraded)
	return nil
}

// boundHeader is a credential that may only ever reach one host:port.
// net/http forwards custom headers to any redirect target and Authorization
// to subdomains, so bound headers are stripped and re-added on every hop.
type boundHeader struct {
	host  string // lower case, no brackets
	port  string // "" for the scheme's default port
	name  string
	value string
}

type boundKey struct{}

func bindHeaders(req *http.Request, hs []boundHeader) *http.Request {
	req = req.WithContext(context.WithValue(req.Context(), boundKey{}, hs))
	applyBound(req, hs, false)
	return req
}

func applyBound(req *http.Request, hs []boundHeader, downgraded bool) {
	for _, h := range hs {
		req.Header.Del(h.name)
	}
	if downgraded {
		return
	}
	host, port := hostPort(req.URL)
	for _, h := range hs {
		want := h.port
		if want == "" {
			want = defaultPort(req.URL.Scheme)
		}
		if h.host == host && want == port {
			req.Header.Add(h.name, h.value)
		}
	}
}

// boundTo binds a header to exactly u's host and port.
func boundTo(u *url.URL, name, value string) boundHeader {
	host, port := hostPort(u)
	return boundHeader{host: host, port: port, name: name, value: value}
}

// parseRuleHost reads a HeaderRule host: "host" or "host:port".
func parseRuleHost(s string) (host, port string, ok bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return "", "", false
		}
		return strings.TrimSuffix(h, "."), p, h != ""
	}
	s = strings.TrimSuffix(strings.Trim(s, "[]"), ".")
	return s, "", s != ""
}

func hostPort(u *url.URL) (host, port string) {
	host = strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port = u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	return host, port
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// validHeaderName keeps configuration from smuggling framing headers.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	switch http.CanonicalHeaderKey(name) {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Keep-Alive", "Proxy-Connection":
		return false
	}
	return true
}

// transportError classifies a failed round trip. refused builds the error
// for an SSRF refusal, whose kind depends on who chose the destination.
func transportError(err error, host string, refused func(reason string) error) error {
	var re *refusedError
	if errors.As(err, &re) && refused != nil {
		return refused(re.reason)
	}
	var rd *redirectError
	if errors.As(err, &rd) {
		return apperr.Wrap(apperr.BadGateway, err, "%s: %s", host, rd.Error())
	}
	if errors.Is(err, context.Canceled) {
		return apperr.Wrap(apperr.BadGateway, err, "fetching from %s was cancelled", host)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return apperr.Wrap(apperr.BadGateway, err, "fetching from %s timed out", host)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return apperr.Wrap(apperr.BadGateway, err, "host %s could not be resolved", host)
	}
	return apperr.Wrap(apperr.BadGateway, err, "could not connect to %s", host)
}

// discard drains a little of an unwanted body so the connection can be
// reused, then closes it.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

// quote keeps client-supplied text in messages short and unambiguous.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}
