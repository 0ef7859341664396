package sourcetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, method, rawURL string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, rawURL, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// No redirects: the tests look at each hop.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

type twilioErr struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func TestTwilioFollowsTwilioDocs(t *testing.T) {
	start := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	account := NewSID("AC")
	tw := NewTwilio(t, account, "token", WithTwilioClock(func() time.Time { return start }), WithCDNURLTTL(time.Minute))
	mediaURL, sid := tw.AddMedia(Bytes([]byte("GIF89a")), "image/gif", WithFilename("cat.gif"))
	if !strings.HasPrefix(mediaURL, tw.APIHost+"/2010-04-01/Accounts/"+account+"/Messages/MM") || !strings.HasSuffix(mediaURL, "/Media/"+sid) || len(sid) != 34 {
		t.Fatalf("media URL %s, sid %s", mediaURL, sid)
	}

	// No or wrong credentials: 401 with Twilio's error body.
	for _, auth := range []string{"", basic(account, "wrong"), basic("SK00000000000000000000000000000000", "x")} {
		resp, body := do(t, "GET", mediaURL, "Authorization", auth)
		var e twilioErr
		if resp.StatusCode != 401 || json.Unmarshal(body, &e) != nil || e.Code != 20003 || e.Message != "Authenticate" || e.Status != 401 || !strings.Contains(e.MoreInfo, "20003") {
			t.Errorf("auth %q: %d %s", auth, resp.StatusCode, body)
		}
	}
	// Another account's path with valid credentials: refused too.
	other := strings.Replace(mediaURL, account, NewSID("AC"), 1)
	if resp, _ := do(t, "GET", other, "Authorization", basic(account, "token")); resp.StatusCode != 401 {
		t.Errorf("other account: %d", resp.StatusCode)
	}
	// Unknown media: 404, code 20404.
	resp, body := do(t, "GET", strings.Replace(mediaURL, sid, NewSID("ME"), 1), "Authorization", basic(account, "token"))
	var e twilioErr
	if resp.StatusCode != 404 || json.Unmarshal(body, &e) != nil || e.Code != 20404 {
		t.Errorf("unknown media: %d %s", resp.StatusCode, body)
	}
	// .json describes the resource.
	resp, body = do(t, "GET", mediaURL+".json", "Authorization", basic(account, "token"))
	var desc map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &desc) != nil || desc["sid"] != sid || desc["content_type"] != "image/gif" || desc["account_sid"] != account {
		t.Errorf(".json: %d %s", resp.StatusCode, body)
	}

	// The media itself: a 307 to the CDN, with an API key as well.
	tw.AddAPIKey("SK11111111111111111111111111111111", "secret")
	for _, auth := range []string{basic(account, "token"), basic("SK11111111111111111111111111111111", "secret")} {
		resp, _ = do(t, "GET", mediaURL, "Authorization", auth)
		if resp.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("media: %d", resp.StatusCode)
		}
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Host != tw.CDNHostPort() || loc.Query().Get("Signature") == "" {
		t.Fatalf("redirect to %s", loc)
	}

	// The CDN serves the bytes to a plain GET...
	resp, body = do(t, "GET", loc.String())
	if resp.StatusCode != 200 || string(body) != "GIF89a" || resp.Header.Get("Content-Type") != "image/gif" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "cat.gif") {
		t.Errorf("cdn: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if tw.CDNSawAuthorization() {
		t.Error("CDNSawAuthorization before any credential was sent")
	}
	// ...refuses one that carries credentials, and remembers it...
	if resp, _ := do(t, "GET", loc.String(), "Authorization", basic(account, "token")); resp.StatusCode != 400 || !tw.CDNSawAuthorization() {
		t.Errorf("cdn with Authorization: %d, saw %v", resp.StatusCode, tw.CDNSawAuthorization())
	}
	// ...and refuses tampered or expired links.
	q := loc.Query()
	q.Set("Expires", "9999999999")
	tampered := *loc
	tampered.RawQuery = q.Encode()
	if resp, _ := do(t, "GET", tampered.String()); resp.StatusCode != 403 {
		t.Errorf("tampered link: %d", resp.StatusCode)
	}
	tw.Advance(time.Minute)
	if resp, body := do(t, "GET", loc.String()); resp.StatusCode != 403 || !strings.Contains(string(body), "Request has expired") {
		t.Errorf("expired link: %d %s", resp.StatusCode, body)
	}
	if len(tw.Requests()) != 8 || len(tw.CDNRequests()) != 4 {
		t.Errorf("requests: api %d cdn %d", len(tw.Requests()), len(tw.CDNRequests()))
	}

	// Scripted failures come first, with Retry-After.
	tw.FailNext(1, Failure{Status: 429, RetryAfter: "3"})
	resp, body = do(t, "GET", mediaURL, "Authorization", basic(account, "token"))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || !strings.Contains(string(body), "20429") {
		t.Errorf("throttled: %d %s", resp.StatusCode, body)
	}
}

func TestDialog360FollowsDocs(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	d := NewDialog360(t, "d360-key", WithClock(func() time.Time { return start }))
	info := d.AddMedia("1234", Bytes([]byte("hello")), "image/jpeg")

	for _, key := range []string{"", "wrong"} {
		resp, body := do(t, "GET", d.BaseURL+"/1234", "D360-API-KEY", key)
		if resp.StatusCode != 401 || !strings.Contains(string(body), "Invalid api_key") {
			t.Errorf("key %q: %d %s", key, resp.StatusCode, body)
		}
	}
	resp, body := do(t, "GET", d.BaseURL+"/999", "D360-API-KEY", "d360-key")
	var e graphErr
	if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || e.Error.Code != 100 || e.Error.Subcode != 33 {
		t.Errorf("unknown id: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, "GET", d.BaseURL+"/1234", "D360-API-KEY", "d360-key")
	var m map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &m) != nil || m["sha256"] != info.SHA256 || m["file_size"] != "5" || m["id"] != "1234" {
		t.Fatalf("lookup: %d %s", resp.StatusCode, body)
	}
	// Meta's URL, downloaded through 360dialog's host.
	u, _ := url.Parse(m["url"].(string))
	if u.Scheme+"://"+u.Host != LookasideURL || u.Path != "/whatsapp_business/attachments/" || u.Query().Get("mid") != "1234" {
		t.Fatalf("url %s", u)
	}
	proxied := d.BaseURL + u.RequestURI()
	if resp, _ := do(t, "GET", proxied); resp.StatusCode != 401 {
		t.Errorf("download without key: %d", resp.StatusCode)
	}
	resp, body = do(t, "GET", proxied, "D360-API-KEY", "d360-key")
	if resp.StatusCode != 200 || string(body) != "hello" || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("download: %d %q", resp.StatusCode, body)
	}
	d.Advance(5 * time.Minute)
	if resp, _ := do(t, "GET", proxied, "D360-API-KEY", "d360-key"); resp.StatusCode != 404 {
		t.Errorf("expired: %d", resp.StatusCode)
	}
	if d.Resolves() != 4 || d.Downloads() != 3 {
		t.Errorf("counters: %d %d", d.Resolves(), d.Downloads())
	}
}

func TestGraphScriptedFailures(t *testing.T) {
	g := NewGraph(t, "tok", WithThrottled(2, "7"), WithUnavailable(1))
	g.AddMedia("1", Bytes([]byte("x")), "image/png")
	g.SetError("2", MetaError{Status: 400, Code: 131052, Message: "Media download error", Details: "Media ID has expired"})

	for i, want := range []int{429, 429, 503, 200} {
		resp, body := get(t, g.BaseURL+"/1", "tok")
		if resp.StatusCode != want {
			t.Fatalf("call %d: %d %s, want %d", i, resp.StatusCode, body, want)
		}
		var e graphErr
		switch want {
		case 429:
			if resp.Header.Get("Retry-After") != "7" || json.Unmarshal(body, &e) != nil || e.Error.Code != 4 {
				t.Errorf("throttled: %v %s", resp.Header, body)
			}
		case 503:
			if !strings.Contains(string(body), `"is_transient":true`) {
				t.Errorf("unavailable: %s", body)
			}
		}
	}
	resp, body := get(t, g.BaseURL+"/2", "tok")
	var e struct {
		Error struct {
			Code      int
			ErrorData struct{ Details string } `json:"error_data"`
		}
	}
	if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || e.Error.Code != 131052 || e.Error.ErrorData.Details != "Media ID has expired" {
		t.Errorf("scripted error: %d %s", resp.StatusCode, body)
	}
	g.ClearError("2")
	if resp, _ := get(t, g.BaseURL+"/2", "tok"); resp.StatusCode != 400 {
		t.Errorf("cleared error: %d", resp.StatusCode)
	}

	g.FailNext(Download, 1, Failure{Status: 503, RetryAfter: "Wed, 21 Oct 2015 07:28:00 GMT"})
	_, body = get(t, g.BaseURL+"/1", "tok")
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	resp, _ = get(t, m["url"].(string), "tok")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("download failure: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ = get(t, m["url"].(string), "tok"); resp.StatusCode != 200 {
		t.Errorf("download after failure: %d", resp.StatusCode)
	}
}
