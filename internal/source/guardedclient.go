package source

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrRefused is what errors.Is finds in any error of the SSRF guard: a
// destination the tenant may not reach.
var ErrRefused = errors.New("destination not allowed")

// Is lets errors.Is(err, ErrRefused) find a refusal wrapped in url.Error
// and net.OpError.
func (e *refusedError) Is(target error) bool { return target == ErrRefused }

// Refused lets packages that do not import this one recognise a refusal
// with errors.As and an interface{ Refused() bool }.
func (e *refusedError) Refused() bool { return true }

// IsRefused reports whether err, or any error it wraps, is a refusal of
// the SSRF guard.
func IsRefused(err error) bool { return errors.Is(err, ErrRefused) }

// Client returns an HTTP client for requests to destinations the tenant's
// clients choose, such as the URLs of outbound webhook subscriptions. Every
// connection it opens, on every redirect hop, passes the SSRF guard with the
// tenant's allowlist, exactly as URL media fetches do, and it shares their
// connection pools. A refused dial fails the request with an error for
// which IsRefused is true.
//
// The client sets no User-Agent and no timeout: callers set both per
// request. It follows up to five redirects, each checked; callers that must
// not follow them (webhook POSTs) set CheckRedirect on a copy. The error is
// always nil today; it is there so the method fits ports that resolve
// tenants which may not exist.
func (f *Fetcher) Client(tenantID string) (*http.Client, error) {
	return f.client(parseAllowlist(f.tenantSettings(tenantID).Allowlist)), nil
}

// CheckURL checks, without any network access, that raw is a URL the guard
// could reach for tenantID: an absolute http(s) URL without credentials,
// with a sane host and port, and, when the host is an IP literal, an
// address that is public or on the tenant's allowlist. Host names are
// checked again on every dial, against the addresses they resolve to then,
// so passing here promises nothing about later requests. The error's text
// is safe to show the tenant; IsRefused is true for it.
func (f *Fetcher) CheckURL(tenantID, raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || !u.IsAbs() {
		return &refusedError{"not an absolute URL"}
	}
	if err := checkTarget(u); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil
	}
	port, _ := strconv.ParseUint(defaultPort(u.Scheme), 10, 16)
	if p := u.Port(); p != "" {
		port, _ = strconv.ParseUint(p, 10, 16)
	}
	al := parseAllowlist(f.tenantSettings(tenantID).Allowlist)
	if al.allows(strings.ToLower(u.Hostname()), uint16(port), ip) {
		return nil
	}
	if why := deniedReason(ip); why != "" {
		return refuseAddr(u.Hostname(), ip, why)
	}
	return nil
}
