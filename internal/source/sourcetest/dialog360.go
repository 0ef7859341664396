package sourcetest

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// LookasideURL is the host Meta's media URLs name. 360dialog hands these
// URLs out unchanged; they are downloaded through 360dialog's own host.
const LookasideURL = "https://lookaside.fbsbx.com"

// Dialog360 is a stand-in for 360dialog's WhatsApp Cloud API media proxy,
// as 360dialog documents it:
//
//   - GET /{media-id} with "D360-API-KEY: <key>" answers Meta's media object
//     ({"messaging_product","url","mime_type","sha256","file_size","id"}).
//     Its url is Meta's own lookaside URL,
//     https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=…&ext=…&hash=…
//   - That URL is downloaded by requesting its path and query on the
//     360dialog host, with the same key. The link is signed and expires
//     (five minutes by default, on the fake's clock).
//   - A missing or wrong key is HTTP 401 "Invalid api_key"; an unknown media
//     ID is Meta's error (HTTP 400, code 100, subcode 33), passed through.
//
// The fake is the configured 360dialog host, so a Fetcher needs no
// allowlist entry for it. Nothing is ever served for lookaside.fbsbx.com:
// a client that downloads from Meta directly fails.
type Dialog360 struct {
	// BaseURL is the fake's base, for source.Dialog360Settings.BaseURL.
	BaseURL string
	// APIKey is the key every call must carry in D360-API-KEY.
	APIKey string

	*MediaAPI
}

// NewDialog360 starts a fake 360dialog API requiring apiKey; it stops when t
// ends. WithVersion is ignored: 360dialog's paths carry no version.
func NewDialog360(t testing.TB, apiKey string, opts ...GraphOption) *Dialog360 {
	t.Helper()
	m := newMediaAPI()
	d := &Dialog360{APIKey: apiKey, MediaAPI: m}
	for _, o := range opts {
		o(m)
	}
	m.prefix = ""
	m.authorized = func(w http.ResponseWriter, r *http.Request) bool {
		if got := r.Header.Values("D360-API-KEY"); len(got) == 1 && got[0] == apiKey {
			return true
		}
		writeJSON(w, http.StatusUnauthorized, map[string]any{"meta": map[string]any{
			"success": false, "http_code": http.StatusUnauthorized, "developer_message": "Invalid api_key",
		}})
		return false
	}
	m.downloadBase = func() string { return LookasideURL }
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	d.BaseURL = m.srv.URL
	return d
}
