package source

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/chatvault/chatvault/internal/apperr"
)

// twilioMediaPath is the shape of a Twilio media URL's path (the MediaUrl
// of an incoming message). Without an extension Twilio answers with the
// media itself, by redirecting to a short-lived URL on its media CDN.
const twilioMediaPath = "/2010-04-01/Accounts/{AC…}/Messages/{MM…}/Media/{ME…}"

// twilioMediaURL is a validated Twilio media URL.
type twilioMediaURL struct {
	u       *url.URL
	account string // AC…
	message string // MM… or SM…
	media   string // ME…
}

// identity names the media by its SID, which is unique across accounts.
// SIDs are hex, so the letter case is not part of the identity.
func (t *twilioMediaURL) identity() string {
	return TypeTwilio + ":ME" + strings.ToLower(t.media[2:])
}

// validSID reports whether s is one of prefixes followed by 32 hex digits,
// the shape Twilio documents for every SID.
func validSID(s string, prefixes ...string) bool {
	if len(s) != 34 {
		return false
	}
	ok := false
	for _, p := range prefixes {
		ok = ok || s[:2] == p
	}
	return ok && strings.Trim(s[2:], "0123456789abcdefABCDEF") == ""
}

func parseTwilioURL(raw string) (*twilioMediaURL, error) {
	u, err := parseSourceURL(raw)
	if err != nil {
		return nil, err
	}
	notMedia := func(why string) error {
		return invalidURL("source url is not a Twilio media URL (" + why + "); want https://api.twilio.com" + twilioMediaPath)
	}
	if u.RawPath != "" {
		return nil, notMedia("its path is percent-encoded")
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 8 || parts[0] != "" || parts[1] != "2010-04-01" || parts[2] != "Accounts" || parts[4] != "Messages" || parts[6] != "Media" {
		return nil, notMedia("its path does not match")
	}
	t := &twilioMediaURL{u: u, account: parts[3], message: parts[5], media: parts[7]}
	switch {
	case !validSID(t.account, "AC"):
		return nil, invalidURL("the Account SID in the source url must be AC followed by 32 hex digits")
	case !validSID(t.message, "MM", "SM"):
		return nil, invalidURL("the Message SID in the source url must be MM or SM followed by 32 hex digits")
	case strings.HasSuffix(t.media, ".json") || strings.HasSuffix(t.media, ".xml"):
		return nil, invalidURL("the source url names the Media resource's JSON or XML description; drop the extension to name the media itself")
	case !validSID(t.media, "ME"):
		return nil, invalidURL("the Media SID in the source url must be ME followed by 32 hex digits")
	}
	return t, nil
}

// twilioAPIBase reads the tenant's twilio.api_host: a host, "host:port"
// (https) or an http(s) origin.
func twilioAPIBase(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = DefaultTwilioAPIHost
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || checkTarget(u) != nil {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the tenant's twilio.api_host is not a host, host:port or http(s) origin; fix the tenant's configuration")
	}
	return u, nil
}

// sameOrigin compares scheme, host and port, default ports included.
func sameOrigin(a, b *url.URL) bool {
	ah, ap := hostPort(a)
	bh, bp := hostPort(b)
	return strings.EqualFold(a.Scheme, b.Scheme) && ah == bh && ap == bp
}

// twilioErrorBody is Twilio's REST error envelope.
type twilioErrorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func (f *Fetcher) fetchTwilio(ctx context.Context, s Settings, raw string) (*Result, error) {
	tu, err := parseTwilioURL(raw)
	if err != nil {
		return nil, err
	}
	ts := s.Twilio
	user, pass, credSettings := ts.AccountSID, ts.AuthToken, "twilio.account_sid and twilio.auth_token"
	if ts.APIKeySID != "" {
		user, pass, credSettings = ts.APIKeySID, ts.APIKeySecret, "twilio.api_key_sid and twilio.api_key_secret"
	}
	if ts.AccountSID == "" || user == "" || pass == "" {
		detail := "twilio sources are not configured for this tenant (" + credSettings + " are required)"
		if ts.AccountSID == "" {
			detail = "twilio sources are not configured for this tenant (twilio.account_sid is empty)"
		}
		return nil, apperr.WithFields(detail, apperr.FieldError{Pointer: "/source/type", Detail: detail})
	}
	base, err := twilioAPIBase(ts.APIHost)
	if err != nil {
		return nil, err
	}
	if !sameOrigin(tu.u, base) {
		return nil, invalidURL("source url must be a media URL on the tenant's Twilio API host " + base.Scheme + "://" + base.Host)
	}
	// Credentials open any URL on the API host; only the tenant's own
	// account is theirs to read.
	if !strings.EqualFold(tu.account, ts.AccountSID) {
		return nil, invalidURL("source url names Twilio account " + tu.account + ", which is not this tenant's twilio.account_sid")
	}
	target := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: tu.u.Path}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	client := f.client(trusting(parseAllowlist(s.Allowlist), base))
	build := func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
		if err != nil {
			return nil, invalidURL("source url is not a valid request URL")
		}
		req.Header.Set("User-Agent", f.userAgent)
		req.Header.Set("Accept", "*/*")
		req.Header.Set("Accept-Encoding", "identity")
		// Twilio answers with a redirect to its CDN; the credentials are
		// bound to the API host and stripped from every other hop.
		return bindHeaders(req, []boundHeader{boundTo(target, "Authorization", auth)}), nil
	}

	r := f.newRetrier()
	for attempt := 0; ; attempt++ {
		resp, err := f.doWithRetry(ctx, r, client, build)
		if err != nil {
			if _, ok := apperr.As(err); ok {
				return nil, err
			}
			return nil, transportError(err, "Twilio", func(reason string) error {
				return apperr.New(apperr.BadGateway, "Twilio redirected the media download to a destination that is not allowed: %s", reason)
			})
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return &Result{
				Body:     resp.Body,
				MimeType: mediaType(resp.Header.Get("Content-Type")),
				Size:     resp.ContentLength,
				SHA256:   declaredSHA256(resp.Header),
				// The CDN path is an opaque key; only a Content-Disposition
				// names the file.
				Filename: dispositionFilename(resp.Header.Get("Content-Disposition")),
				Identity: tu.identity(),
			}, nil
		}
		fromAPI := resp.Request != nil && sameOrigin(resp.Request.URL, base)
		if fromAPI {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxGraphBody))
			discard(resp)
			return nil, f.twilioStatusError(resp, body, tu, credSettings)
		}
		discard(resp)
		cdn := resp.Request.URL.Host
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			// The CDN link is signed and short-lived; a fresh one from
			// Twilio settles whether it merely expired on the way.
			if attempt == 0 {
				continue
			}
		}
		return nil, f.twilioCDNError(resp, cdn)
	}
}

func (f *Fetcher) twilioStatusError(resp *http.Response, body []byte, tu *twilioMediaURL, credSettings string) error {
	status := resp.StatusCode
	var te twilioErrorBody
	_ = json.Unmarshal(body, &te)
	cause := fmt.Errorf("twilio: HTTP %d, code %d: %s (%s)", status, te.Code, te.Message, te.MoreInfo)
	code := fmt.Sprintf("HTTP %d", status)
	if te.Code != 0 {
		code += fmt.Sprintf(", Twilio error %d", te.Code)
	}
	switch {
	case status == http.StatusNotFound:
		return apperr.Wrap(apperr.NotFound, cause,
			"Twilio has no media %s on message %s (%s): it was deleted, or the URL belongs to another Twilio account", tu.media, tu.message, code)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return apperr.Wrap(apperr.BadGateway, cause,
			"Twilio rejected the tenant's credentials (%s); check %s in the tenant's twilio configuration", code, credSettings)
	case status == http.StatusTooManyRequests:
		err := apperr.Wrap(apperr.Unavailable, cause, "Twilio rate limit was reached (%s); retry later", code)
		err.RetryAfter = f.retryHint(resp.Header, rateLimitRetry)
		return err
	case status == http.StatusServiceUnavailable:
		err := apperr.Wrap(apperr.Unavailable, cause, "Twilio is unavailable (%s); retry later", code)
		err.RetryAfter = f.retryHint(resp.Header, unavailableRetry)
		return err
	case status >= 300 && status <= 399:
		return apperr.Wrap(apperr.BadGateway, cause, "Twilio answered %s without a usable redirect", code)
	}
	return apperr.Wrap(apperr.BadGateway, cause, "Twilio answered %s", code)
}

func (f *Fetcher) twilioCDNError(resp *http.Response, host string) error {
	status := resp.StatusCode
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		err := apperr.New(apperr.Unavailable, "Twilio's media storage (%s) is unavailable (HTTP %d); retry later", host, status)
		err.RetryAfter = f.retryHint(resp.Header, unavailableRetry)
		return err
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return apperr.New(apperr.BadGateway, "Twilio's media storage (%s) refused the download (HTTP %d) even with a fresh link", host, status)
	}
	return apperr.New(apperr.BadGateway, "Twilio's media storage (%s) answered HTTP %d", host, status)
}
