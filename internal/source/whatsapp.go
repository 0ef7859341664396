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
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	mediaIDPointer = "/source/media_id"
	maxMediaIDLen  = 100
	// maxGraphBody bounds the JSON read from Graph; a media object is a few
	// hundred bytes.
	maxGraphBody = 1 << 20
	// graphRateLimitRetry is a guess: Graph does not say when its
	// throughput limits lift.
	graphRateLimitRetry = time.Minute
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

// graphErrorBody is Graph's error envelope.
type graphErrorBody struct {
	Error struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Subcode   int    `json:"error_subcode"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
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
	al := parseAllowlist(s.Allowlist)
	meta, err := f.resolveMedia(ctx, al, base, s.GraphToken, id)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		resp, err := f.downloadMedia(ctx, al, meta.URL, s.GraphToken)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return whatsAppResult(id, meta, resp), nil
		}
		discard(resp)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			// Download URLs live five minutes, and the wait between
			// resolving and downloading is ours to lose (queues, retries).
			// A fresh URL settles whether it merely expired.
			if attempt == 0 {
				if meta, err = f.resolveMedia(ctx, al, base, s.GraphToken, id); err != nil {
					return nil, err
				}
				continue
			}
		}
		return nil, downloadStatusError(resp.StatusCode, id)
	}
}

func whatsAppResult(id string, meta *graphMedia, resp *http.Response) *Result {
	r := &Result{
		Body:     resp.Body,
		MimeType: mediaType(meta.MimeType),
		Size:     int64(meta.FileSize),
		SHA256:   NormaliseSHA256(meta.SHA256),
		Filename: dispositionFilename(resp.Header.Get("Content-Disposition")),
		Identity: "whatsapp_cloud:" + id,
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
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the tenant's whatsapp_cloud.graph_base_url is not a valid http(s) URL; fix the tenant's configuration")
	}
	return u, nil
}

func (f *Fetcher) resolveMedia(ctx context.Context, al *allowlist, base *url.URL, token, id string) (*graphMedia, error) {
	endpoint := base.String() + "/" + id
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the tenant's whatsapp_cloud.graph_base_url is not a valid http(s) URL; fix the tenant's configuration")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", f.userAgent)
	req = bindHeaders(req, []boundHeader{boundTo(req.URL, "Authorization", "Bearer "+token)})

	host, port := hostPort(base)
	resp, err := f.client(al.with(net.JoinHostPort(host, port))).Do(req)
	if err != nil {
		return nil, transportError(err, "the WhatsApp Cloud API", func(reason string) error {
			return apperr.New(apperr.BadGateway, "the WhatsApp Cloud API redirected to a destination that is not allowed: %s", reason)
		})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGraphBody))
	if err != nil {
		return nil, transportError(err, "the WhatsApp Cloud API", nil)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, graphStatusError(resp.StatusCode, body, id)
	}
	var m graphMedia
	m.FileSize = -1
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the WhatsApp Cloud API returned an unreadable media object")
	}
	if m.URL == "" {
		return nil, apperr.New(apperr.BadGateway, "the WhatsApp Cloud API returned no download URL for media ID %s", id)
	}
	return &m, nil
}

func graphStatusError(status int, body []byte, id string) error {
	var ge graphErrorBody
	_ = json.Unmarshal(body, &ge)
	e := ge.Error
	// Meta's message goes to the logs only: it is not ours to vouch for.
	cause := fmt.Errorf("graph: HTTP %d, code %d, subcode %d, type %q, fbtrace_id %q: %s",
		status, e.Code, e.Subcode, e.Type, e.FBTraceID, e.Message)
	switch {
	case e.Code == 190 || e.Code == 102 || (e.Code == 0 && status == http.StatusUnauthorized):
		return apperr.Wrap(apperr.BadGateway, cause,
			"the WhatsApp Cloud API rejected the tenant's access token (Graph error %d); update whatsapp_cloud.access_token in the tenant's configuration", e.Code)
	case e.Code == 10 || (e.Code >= 200 && e.Code <= 299) || (e.Code == 0 && status == http.StatusForbidden):
		return apperr.Wrap(apperr.BadGateway, cause,
			"the tenant's WhatsApp access token may not read this media (Graph error %d); the token in whatsapp_cloud.access_token needs whatsapp_business_messaging on the receiving WhatsApp Business Account", e.Code)
	case e.Code == 100 || (e.Code == 0 && status == http.StatusNotFound):
		return apperr.Wrap(apperr.Gone, cause, "WhatsApp media ID %s is unknown or has expired", id)
	case e.Code == 4 || e.Code == 80007 || e.Code == 130429 || status == http.StatusTooManyRequests:
		err := apperr.Wrap(apperr.Unavailable, cause, "the WhatsApp Cloud API rate limit was reached; retry later")
		err.RetryAfter = graphRateLimitRetry
		return err
	case status >= 500:
		return apperr.Wrap(apperr.BadGateway, cause, "the WhatsApp Cloud API failed (HTTP %d)", status)
	}
	return apperr.Wrap(apperr.BadGateway, cause, "the WhatsApp Cloud API answered HTTP %d (Graph error %d)", status, e.Code)
}

func (f *Fetcher) downloadMedia(ctx context.Context, al *allowlist, raw, token string) (*http.Response, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the WhatsApp Cloud API returned an invalid download URL")
	}
	if err := checkTarget(u); err != nil {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the WhatsApp Cloud API returned a download URL that is not allowed: %s", err.reason)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, apperr.Wrap(apperr.BadGateway, err, "the WhatsApp Cloud API returned an invalid download URL")
	}
	req.Header.Set("User-Agent", f.userAgent)
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Accept-Encoding", "identity")
	// Meta requires the bearer token on the download too; it is bound to the
	// download host so a redirect cannot carry it elsewhere.
	req = bindHeaders(req, []boundHeader{boundTo(u, "Authorization", "Bearer "+token)})
	resp, err := f.client(al).Do(req)
	if err != nil {
		return nil, transportError(err, u.Host, func(reason string) error {
			return apperr.New(apperr.BadGateway, "the WhatsApp media download leads to a destination that is not allowed: %s", reason)
		})
	}
	return resp, nil
}

func downloadStatusError(status int, id string) error {
	switch status {
	case http.StatusNotFound, http.StatusGone:
		return apperr.New(apperr.Gone, "WhatsApp media ID %s is no longer downloadable (HTTP %d); it has expired or was deleted", id, status)
	case http.StatusUnauthorized, http.StatusForbidden:
		return apperr.New(apperr.BadGateway, "the WhatsApp media host refused the download (HTTP %d) even with a fresh URL; check whatsapp_cloud.access_token in the tenant's configuration", status)
	case http.StatusTooManyRequests:
		err := apperr.New(apperr.Unavailable, "the WhatsApp media host is rate limiting downloads; retry later")
		err.RetryAfter = graphRateLimitRetry
		return err
	}
	return apperr.New(apperr.BadGateway, "the WhatsApp media host answered HTTP %d", status)
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
