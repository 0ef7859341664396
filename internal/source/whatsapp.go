package source

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	mediaIDPointer = "/source/media_id"
	maxMediaIDLen  = 100
	// maxGraphBody bounds the JSON read from Graph; a media object is a few
	// hundred bytes.
	maxGraphBody = 1 << 20
)

// validateMediaID keeps the ID to what Meta issues (digits in practice,
// letters allowed) before it is placed in a URL path.
func validateMediaID(id string) error {
	detail := ""
	switch {
	case id == "":
		detail = "source media_id is required"
	case len(id) > maxMediaIDLen || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
		detail = "source media_id must be 1 to 100 letters or digits"
	default:
		return nil
	}
	return apperr.WithFields(detail, apperr.FieldError{Pointer: mediaIDPointer, Detail: detail})
}

// graphMedia is Graph's answer to GET /{media-id}.
type graphMedia struct {
	URL      string   `json:"url"`
	MimeType string   `json:"mime_type"`
	SHA256   string   `json:"sha256"`
	FileSize fileSize `json:"file_size"`
	ID       string   `json:"id"`
}

// fileSize reads Graph's file_size, documented as a string but seen as a
// number too; anything unreadable is "unknown" (-1), never an error.
type fileSize int64

func (s *fileSize) UnmarshalJSON(b []byte) error {
	*s = -1
	var v any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil
	}
	var text string
	switch v := v.(type) {
	case json.Number:
		text = v.String()
	case string:
		text = strings.TrimSpace(v)
	default:
		return nil
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil && n >= 0 {
		*s = fileSize(n)
	}
	return nil
}

// graphErrorBody is Graph's error envelope. WhatsApp errors add
// error_data.details, which Meta advises handling on together with code.
type graphErrorBody struct {
	Error struct {
		Message     string `json:"message"`
		Type        string `json:"type"`
		Code        int    `json:"code"`
		Subcode     int    `json:"error_subcode"`
		IsTransient bool   `json:"is_transient"`
		ErrorData   struct {
			Details string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// mediaRetention is what a client needs to know about an expired media ID.
const mediaRetention = "WhatsApp keeps media IDs 7 days after a webhook delivers them (30 days after an upload), so archive media when its webhook arrives"

// metaAPI is an API shaped like Graph's media endpoints: GET /{media-id}
// answers {url, mime_type, sha256, file_size, id}, and the url is
// downloaded with the same credential. Meta's WhatsApp Cloud API is one;
// 360dialog proxies it under its own host and key.
type metaAPI struct {
	name         string // in details: "the WhatsApp Cloud API"
	errLabel     string // in details: "Graph error"
	typ          string // identity prefix, the source type
	base         *url.URL
	authHeader   string
	authValue    string
	credential   string // in details: "access token"
	credSetting  string // the tenant setting holding the credential
	baseSetting  string // the tenant setting holding base
	needsMessage string // how the credential gets permission, for 10/200-299
	mediaHost    string // in details: "the WhatsApp media host"
	// download turns the url the API returned into the request target;
	// trusted reports that the target host is configuration, exempt from
	// the SSRF guard.
	download func(u *url.URL) (*url.URL, bool)
}

func (f *Fetcher) fetchWhatsApp(ctx context.Context, s Settings, id string) (*Result, error) {
	if err := validateMediaID(id); err != nil {
		return nil, err
	}
	if s.GraphToken == "" {
		detail := "whatsapp_cloud sources are not configured for this tenant (whatsapp_cloud.access_token is empty)"
		return nil, apperr.WithFields(detail, apperr.FieldError{Pointer: "/source/type", Detail: detail})
	}
	base, err := graphBase(s.GraphBaseURL)
	if err != nil {
		return nil, err
	}
	api := &metaAPI{
		name: "the WhatsApp Cloud API", errLabel: "Graph error", typ: TypeWhatsAppCloud,
		base: base, authHeader: "Authorization", authValue: "Bearer " + s.GraphToken,
		credential: "access token", credSetting: "whatsapp_cloud.access_token", baseSetting: "whatsapp_cloud.graph_base_url",
		needsMessage: "the token in whatsapp_cloud.access_token needs whatsapp_business_messaging on the receiving WhatsApp Business Account",
		mediaHost:    "the WhatsApp media host",
		// Meta's lookaside host is not configuration: it passes the guard.
		download: func(u *url.URL) (*url.URL, bool) { return u, false },
	}
	return f.fetchMeta(ctx, api, parseAllowlist(s.Allowlist), id)
}

func (f *Fetcher) fetchMeta(ctx context.Context, api *metaAPI, al *allowlist, id string) (*Result, error) {
	r := f.newRetrier()
	meta, err := f.resolveMedia(ctx, r, api, al, id)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		resp, err := f.downloadMedia(ctx, r, api, al, meta.URL)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return metaResult(api.typ, id, meta, resp), nil
		}
		discard(resp)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			// Download URLs live five minutes, and the wait between
			// resolving and downloading is ours to lose (queues, retries).
			// A fresh URL settles whether it merely expired.
			if attempt == 0 {
				if meta, err = f.resolveMedia(ctx, r, api, al, id); err != nil {
					return nil, err
				}
				continue
			}
		}
		return nil, f.downloadStatusError(api, resp, id)
	}
}

func metaResult(typ, id string, meta *graphMedia, resp *http.Response) *Result {
	r := &Result{
		Body:     resp.Body,
		MimeType: mediaType(meta.MimeType),
		Size:     int64(meta.FileSize),
		SHA256:   NormaliseSHA256(meta.SHA256),
		Filename: dispositionFilename(resp.Header.Get("Content-Disposition")),
		Identity: typ + ":" + id,
	}
	if r.MimeType == "" {
		r.MimeType = mediaType(resp.Header.Get("Content-Type"))
	}
	if r.Size < 0 {
		r.Size = resp.ContentLength
	}
	return r
}

// graphBase validates the tenant's Graph base URL. It is trusted
// configuration, so its own host is exempt from the SSRF guard (an internal
// Graph proxy is legitimate); anything it redirects to is not.
func graphBase(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultGraphBaseURL
	}
	return configBase(raw, "whatsapp_cloud.graph_base_url")
}

func configBase(raw, setting string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the tenant's %s is not a valid http(s) URL; fix the tenant's configuration", setting)
	}
	return u, nil
}

// trusting returns al extended by u's host:port: configured provider hosts
// may be internal proxies.
func trusting(al *allowlist, u *url.URL) *allowlist {
	host, port := hostPort(u)
	return al.with(net.JoinHostPort(host, port))
}

func (f *Fetcher) resolveMedia(ctx context.Context, r *retrier, api *metaAPI, al *allowlist, id string) (*graphMedia, error) {
	endpoint := api.base.String() + "/" + id
	build := func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, apperr.Wrap(apperr.BadGateway, err, "the tenant's %s is not a valid http(s) URL; fix the tenant's configuration", api.baseSetting)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", f.userAgent)
		return bindHeaders(req, []boundHeader{boundTo(req.URL, api.authHeader, api.authValue)}), nil
	}
	resp, err := f.doWithRetry(ctx, r, f.client(trusting(al, api.base)), build)
	if err != nil {
		if _, ok := apperr.As(err); ok {
			return nil, err
		}
		return nil, transportError(err, api.name, func(reason string) error {
			return apperr.New(apperr.BadGateway, "%s redirected to a destination that is not allowed: %s", api.name, reason)
		})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGraphBody))
	if err != nil {
		return nil, transportError(err, api.name, nil)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, f.graphStatusError(api, resp.StatusCode, resp.Header, body, id)
	}
	var m graphMedia
	m.FileSize = -1
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, apperr.Wrap(apperr.BadGateway, err, "%s returned an unreadable media object", api.name)
	}
	if m.URL == "" {
		return nil, apperr.New(apperr.BadGateway, "%s returned no download URL for media ID %s", api.name, id)
	}
	return &m, nil
}

// graphRateLimitCodes are Graph and WhatsApp throttling codes: 4 (app), 17
// (user), 32 (page), 613 (endpoint), 80007 (WhatsApp Business Account),
// 130429 (Cloud API throughput), 131048 (spam rate limit), 131056 (pair
// rate limit).
var graphRateLimitCodes = map[int]bool{4: true, 17: true, 32: true, 613: true, 80007: true, 130429: true, 131048: true, 131056: true}

func (f *Fetcher) graphStatusError(api *metaAPI, status int, h http.Header, body []byte, id string) error {
	var ge graphErrorBody
	_ = json.Unmarshal(body, &ge)
	e := ge.Error
	// Meta's message goes to the logs only: it is not ours to vouch for.
	cause := fmt.Errorf("%s: HTTP %d, code %d, subcode %d, type %q, fbtrace_id %q: %s (details: %s)",
		api.name, status, e.Code, e.Subcode, e.Type, e.FBTraceID, e.Message, e.ErrorData.Details)
	code := fmt.Sprintf("%s %d", api.errLabel, e.Code)
	if e.Subcode != 0 {
		code += fmt.Sprintf(", subcode %d", e.Subcode)
	}
	expired := func() error {
		return apperr.Wrap(apperr.Gone, cause, "WhatsApp media ID %s is unknown or has expired (%s): %s", id, code, mediaRetention)
	}
	rateLimited := func() error {
		err := apperr.Wrap(apperr.Unavailable, cause, "%s rate limit was reached (%s); retry later", api.name, code)
		err.RetryAfter = f.retryHint(h, rateLimitRetry)
		return err
	}
	switch {
	case e.Code == 0 && status == http.StatusTooManyRequests:
		err := apperr.Wrap(apperr.Unavailable, cause, "%s rate limit was reached (HTTP 429); retry later", api.name)
		err.RetryAfter = f.retryHint(h, rateLimitRetry)
		return err
	case e.Code == 0 && status == http.StatusServiceUnavailable:
		err := apperr.Wrap(apperr.Unavailable, cause, "%s is unavailable (HTTP 503); retry later", api.name)
		err.RetryAfter = f.retryHint(h, unavailableRetry)
		return err
	case e.Code == 0 && status == http.StatusNotFound:
		return apperr.Wrap(apperr.Gone, cause, "WhatsApp media ID %s is unknown or has expired (HTTP 404): %s", id, mediaRetention)
	case e.Code == 190 || e.Code == 102 || (e.Code == 0 && status == http.StatusUnauthorized):
		what := "rejected"
		if e.Subcode == 463 {
			what = "reports as expired"
		}
		if e.Code == 0 {
			code = fmt.Sprintf("HTTP %d", status)
		}
		return apperr.Wrap(apperr.BadGateway, cause,
			"%s %s the tenant's %s (%s); update %s in the tenant's configuration", api.name, what, api.credential, code, api.credSetting)
	case e.Code == 10 || e.Code == 3 || (e.Code >= 200 && e.Code <= 299) || e.Code == 131005 || (e.Code == 0 && status == http.StatusForbidden):
		if e.Code == 0 {
			code = fmt.Sprintf("HTTP %d", status)
		}
		return apperr.Wrap(apperr.BadGateway, cause,
			"the tenant's %s may not read this media (%s); %s", api.credential, code, api.needsMessage)
	case e.Code == 100:
		// 100 with subcode 33 is "object does not exist"; other subcodes
		// are invalid parameters, which for a bare GET /{id} also means the
		// ID is not one Meta knows.
		return expired()
	case e.Code == 131052:
		// Media download error: WhatsApp could not fetch the media from
		// the sender's device. Only its details tell expiry from failure.
		if strings.Contains(strings.ToLower(e.ErrorData.Details+" "+e.Message), "expire") {
			return expired()
		}
		return apperr.Wrap(apperr.BadGateway, cause,
			"WhatsApp could not download media ID %s from the sender (%s, media download error); ask the sender to send it again", id, code)
	case e.Code == 131053:
		return apperr.Wrap(apperr.BadGateway, cause,
			"WhatsApp could not process media ID %s (%s, media upload error): its type or size is not supported; upload it again in a supported format", id, code)
	case graphRateLimitCodes[e.Code] || status == http.StatusTooManyRequests:
		return rateLimited()
	case e.Code == 131016 || (e.Code == 2 && e.IsTransient) || status == http.StatusServiceUnavailable:
		err := apperr.Wrap(apperr.Unavailable, cause, "%s is temporarily unavailable (%s); retry later", api.name, code)
		err.RetryAfter = f.retryHint(h, unavailableRetry)
		return err
	case status >= 500:
		if e.Code == 0 {
			return apperr.Wrap(apperr.BadGateway, cause, "%s failed (HTTP %d)", api.name, status)
		}
		return apperr.Wrap(apperr.BadGateway, cause, "%s failed (HTTP %d, %s)", api.name, status, code)
	}
	if e.Code == 0 {
		return apperr.Wrap(apperr.BadGateway, cause, "%s answered HTTP %d", api.name, status)
	}
	return apperr.Wrap(apperr.BadGateway, cause, "%s answered HTTP %d (%s)", api.name, status, code)
}

func (f *Fetcher) downloadMedia(ctx context.Context, r *retrier, api *metaAPI, al *allowlist, raw string) (*http.Response, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return nil, apperr.Wrap(apperr.BadGateway, err, "%s returned an invalid download URL", api.name)
	}
	if err := checkTarget(u); err != nil {
		return nil, apperr.Wrap(apperr.BadGateway, err, "%s returned a download URL that is not allowed: %s", api.name, err.reason)
	}
	target, trusted := api.download(u)
	if trusted {
		al = trusting(al, target)
	}
	build := func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
		if err != nil {
			return nil, apperr.Wrap(apperr.BadGateway, err, "%s returned an invalid download URL", api.name)
		}
		req.Header.Set("User-Agent", f.userAgent)
		req.Header.Set("Accept", "*/*")
		req.Header.Set("Accept-Encoding", "identity")
		// The download needs the credential too; it is bound to the
		// download host so a redirect cannot carry it elsewhere.
		return bindHeaders(req, []boundHeader{boundTo(target, api.authHeader, api.authValue)}), nil
	}
	resp, err := f.doWithRetry(ctx, r, f.client(al), build)
	if err != nil {
		if _, ok := apperr.As(err); ok {
			return nil, err
		}
		return nil, transportError(err, target.Host, func(reason string) error {
			return apperr.New(apperr.BadGateway, "the media download from %s leads to a destination that is not allowed: %s", api.mediaHost, reason)
		})
	}
	return resp, nil
}

func (f *Fetcher) downloadStatusError(api *metaAPI, resp *http.Response, id string) error {
	status := resp.StatusCode
	switch status {
	case http.StatusNotFound, http.StatusGone:
		return apperr.New(apperr.Gone, "WhatsApp media ID %s is no longer downloadable (HTTP %d); it has expired or was deleted: %s", id, status, mediaRetention)
	case http.StatusUnauthorized, http.StatusForbidden:
		return apperr.New(apperr.BadGateway, "%s refused the download (HTTP %d) even with a fresh URL; check %s in the tenant's configuration", api.mediaHost, status, api.credSetting)
	case http.StatusTooManyRequests:
		err := apperr.New(apperr.Unavailable, "%s is rate limiting downloads (HTTP 429); retry later", api.mediaHost)
		err.RetryAfter = f.retryHint(resp.Header, rateLimitRetry)
		return err
	case http.StatusServiceUnavailable:
		err := apperr.New(apperr.Unavailable, "%s is unavailable (HTTP 503); retry later", api.mediaHost)
		err.RetryAfter = f.retryHint(resp.Header, unavailableRetry)
		return err
	}
	return apperr.New(apperr.BadGateway, "%s answered HTTP %d", api.mediaHost, status)
}

func dispositionFilename(cd string) string {
	if cd == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(cd)
	if err != nil {
		return ""
	}
	return cleanFilename(params["filename"])
}
