package source

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	urlPointer = "/source/url"
	maxURLLen  = 4096
)

func invalidURL(detail string) *apperr.Error {
	return apperr.WithFields(detail, apperr.FieldError{Pointer: urlPointer, Detail: detail})
}

// parseSourceURL validates a client-given URL before anything is dialled.
func parseSourceURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, invalidURL("source url is required")
	}
	if len(raw) > maxURLLen {
		return nil, invalidURL("source url is longer than 4096 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return nil, invalidURL("source url is not an absolute URL")
	}
	if err := checkTarget(u); err != nil {
		return nil, invalidURL(err.Error())
	}
	return u, nil
}

// normaliseURL is the dedupe form of u: the same resource spelled with a
// different case, default port or fragment is the same source.
func normaliseURL(u *url.URL) string {
	n := *u
	n.Scheme = strings.ToLower(n.Scheme)
	host, port := strings.ToLower(n.Hostname()), n.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && port != defaultPort(n.Scheme) {
		host += ":" + port
	}
	n.Host = host
	n.User = nil
	n.Fragment, n.RawFragment = "", ""
	n.ForceQuery = false
	if n.Path == "" {
		n.Path, n.RawPath = "/", ""
	}
	return n.String()
}

func (f *Fetcher) fetchURL(ctx context.Context, s Settings, raw string) (*Result, error) {
	u, err := parseSourceURL(raw)
	if err != nil {
		return nil, err
	}
	var bound []boundHeader
	for _, r := range s.URLAuth {
		host, port, ok := parseRuleHost(r.Host)
		if !ok || !validHeaderName(r.Header) {
			continue // config validation reports these; never guess a host
		}
		bound = append(bound, boundHeader{host: host, port: port, name: r.Header, value: r.Value})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, invalidURL("source url is not a valid request URL")
	}
	req.Header.Set("User-Agent", f.userAgent)
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Accept-Encoding", "identity")
	req = bindHeaders(req, bound)

	host := u.Host
	resp, err := f.client(parseAllowlist(s.Allowlist)).Do(req)
	if err != nil {
		return nil, transportError(err, host, func(reason string) error {
			return invalidURL("destination not allowed: " + reason)
		})
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		discard(resp)
		// Name the host that answered, which after redirects may not be
		// the one the client gave.
		return nil, originStatusError(resp.StatusCode, resp.Request.URL.Host)
	}
	return &Result{
		Body:     resp.Body,
		MimeType: mediaType(resp.Header.Get("Content-Type")),
		Size:     resp.ContentLength,
		SHA256:   declaredSHA256(resp.Header),
		Filename: responseFilename(resp),
		Identity: "url:" + normaliseURL(u),
	}, nil
}

func originStatusError(status int, host string) error {
	switch status {
	case http.StatusNotFound:
		return apperr.New(apperr.NotFound, "%s answered 404: the source url does not exist", host)
	case http.StatusGone:
		return apperr.New(apperr.Gone, "%s answered 410: the source url is gone", host)
	case http.StatusUnauthorized, http.StatusForbidden:
		return apperr.New(apperr.BadGateway, "%s refused access (HTTP %d); check the URL or the tenant's url_auth configuration", host, status)
	}
	return apperr.New(apperr.BadGateway, "%s answered HTTP %d", host, status)
}

// mediaType is a declared Content-Type without parameters, lower case.
func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	if typ, sub, ok := strings.Cut(mt, "/"); !ok || typ == "" || sub == "" {
		return ""
	}
	return mt
}

// responseFilename prefers the origin's Content-Disposition and falls back
// to the last path segment of the URL that finally answered.
func responseFilename(resp *http.Response) string {
	if name := dispositionFilename(resp.Header.Get("Content-Disposition")); name != "" {
		return name
	}
	if resp.Request == nil || resp.Request.URL == nil {
		return ""
	}
	p := resp.Request.URL.Path
	return cleanFilename(p[strings.LastIndex(p, "/")+1:])
}

// cleanFilename keeps only a base name without control characters, since
// the name ends up in Content-Disposition headers and CRM fields.
func cleanFilename(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		return ""
	}
	if len(name) > 255 {
		// File systems count bytes; cut on a rune boundary.
		cut := 255
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut]
	}
	return name
}

// declaredSHA256 reads a SHA-256 digest an origin declares for the whole
// body: RFC 9530 Repr-Digest or Content-Digest (identical here, since we ask
// for identity encoding) or the older RFC 3230 Digest.
func declaredSHA256(h http.Header) string {
	for _, name := range []string{"Repr-Digest", "Content-Digest"} {
		for _, v := range h.Values(name) {
			for _, member := range strings.Split(v, ",") {
				k, val, ok := strings.Cut(strings.TrimSpace(member), "=")
				if !ok || !strings.EqualFold(k, "sha-256") {
					continue
				}
				val = strings.TrimSpace(val)
				if len(val) >= 2 && val[0] == ':' && val[len(val)-1] == ':' {
					if sum := NormaliseSHA256(val[1 : len(val)-1]); sum != "" {
						return sum
					}
				}
			}
		}
	}
	for _, v := range h.Values("Digest") {
		for _, member := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(member), "=")
			if ok && strings.EqualFold(k, "sha-256") {
				if sum := NormaliseSHA256(strings.TrimSpace(val)); sum != "" {
					return sum
				}
			}
		}
	}
	return ""
}

// NormaliseSHA256 returns a SHA-256 digest given as hex or base64 (standard
// or URL alphabet, padded or not) as lower-case hex, or "" if s is neither.
// Meta's webhooks carry base64 digests while its media endpoint gives hex.
func NormaliseSHA256(s string) string {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return hex.EncodeToString(b)
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}
