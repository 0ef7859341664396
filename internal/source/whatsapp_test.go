package source

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
)

const testToken = "EAAtest-token"

func graphTenant(g *sourcetest.Graph) Settings {
	return Settings{GraphBaseURL: g.BaseURL, GraphToken: g.Token, Allowlist: []string{g.HostPort()}}
}

func fetchMedia(f *Fetcher, id string) (*Result, error) {
	return f.Fetch(context.Background(), "t", Request{Type: TypeWhatsAppCloud, MediaID: id})
}

func TestWhatsAppFetch(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g)})
	cases := []struct {
		name     string
		content  sourcetest.Content
		mime     string
		wantMime string
		opts     []sourcetest.MediaOption
		wantFile string
	}{
		{"hex sum, string size", sourcetest.Bytes([]byte("OggS voice note")), "audio/ogg; codecs=opus", "audio/ogg", nil, ""},
		{"base64 sum, number size", sourcetest.Generated(300_000, 1), "image/jpeg", "image/jpeg",
			[]sourcetest.MediaOption{sourcetest.WithChecksum(sourcetest.ChecksumBase64), sourcetest.WithFileSizeNumber()}, ""},
		{"unpadded base64", sourcetest.Generated(1000, 2), "video/mp4", "video/mp4",
			[]sourcetest.MediaOption{sourcetest.WithChecksum(sourcetest.ChecksumBase64Raw)}, ""},
		{"URL-alphabet base64", sourcetest.Generated(1001, 3), "image/webp", "image/webp",
			[]sourcetest.MediaOption{sourcetest.WithChecksum(sourcetest.ChecksumBase64URLRaw), sourcetest.WithFileSizeNumber()}, ""},
		{"padded URL-alphabet base64", sourcetest.Generated(1002, 4), "image/webp", "image/webp",
			[]sourcetest.MediaOption{sourcetest.WithChecksum(sourcetest.ChecksumBase64URL)}, ""},
		{"upper-case hex, filename", sourcetest.Generated(5000, 5), "Application/PDF", "application/pdf",
			[]sourcetest.MediaOption{sourcetest.WithChecksum(sourcetest.ChecksumHexUpper), sourcetest.WithFilename("invoice 7.pdf")}, "invoice 7.pdf"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("10%d4567890123", i)
			info := g.AddMedia(id, c.content, c.mime, c.opts...)
			r, err := fetchMedia(f, id)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if r.MimeType != c.wantMime || r.Size != info.Size || r.SHA256 != info.SHA256 ||
				r.Identity != "whatsapp_cloud:"+id || r.Filename != c.wantFile {
				t.Errorf("got %+v, want mime %q size %d sha %s file %q", *r, c.wantMime, info.Size, info.SHA256, c.wantFile)
			}
			if n, sum := readAll(t, r); n != info.Size || sum != info.SHA256 {
				t.Errorf("body: %d bytes sha %s, want %d %s", n, sum, info.Size, info.SHA256)
			}
			if g.ResolvesOf(id) != 1 || g.DownloadsOf(id) != 1 {
				t.Errorf("resolves %d downloads %d, want 1 and 1", g.ResolvesOf(id), g.DownloadsOf(id))
			}
		})
	}
}

func TestWhatsAppUndeclaredValuesFallBack(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g)})
	g.AddMedia("42", sourcetest.Bytes([]byte("data")), "", sourcetest.WithoutChecksum(), sourcetest.WithoutFileSize())
	r, err := fetchMedia(f, "42")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.SHA256 != "" || r.Size != 4 || r.MimeType != "text/plain" {
		t.Errorf("got sha %q size %d mime %q; want no sha, Content-Length, sniffed type", r.SHA256, r.Size, r.MimeType)
	}
}

// TestWhatsAppWrongChecksumPassesThrough: the declared digest is a claim
// the caller verifies while streaming, so a wrong one is reported as is.
func TestWhatsAppWrongChecksumPassesThrough(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g)})
	info := g.AddMedia("43", sourcetest.Bytes([]byte("data")), "image/png", sourcetest.WithWrongChecksum())
	r, err := fetchMedia(f, "43")
	if err != nil {
		t.Fatal(err)
	}
	if _, sum := readAll(t, r); r.SHA256 == sum || r.SHA256 != info.DeclaredSHA256 || sum != info.SHA256 {
		t.Errorf("declared %s, body %s, fake %+v", r.SHA256, sum, info)
	}
}

func TestWhatsAppExpiredURLIsResolvedAgain(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			g := sourcetest.NewGraph(t, testToken, sourcetest.WithExpiredStatus(status))
			f := newTestFetcher(t, tenants{"t": graphTenant(g)})
			info := g.AddMedia("777", sourcetest.Generated(64<<10, 9), "image/jpeg")
			var once sync.Once
			g.OnResolve(func(string) { once.Do(func() { g.Advance(5*time.Minute + time.Second) }) })

			r, err := fetchMedia(f, "777")
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if _, sum := readAll(t, r); sum != info.SHA256 {
				t.Errorf("body sha %s, want %s", sum, info.SHA256)
			}
			if g.Resolves() != 2 || g.Downloads() != 2 {
				t.Errorf("resolves %d downloads %d, want 2 and 2", g.Resolves(), g.Downloads())
			}
		})
	}
}

func TestWhatsAppExpiresAgainGivesUp(t *testing.T) {
	for status, kind := range map[int]apperr.Kind{
		http.StatusNotFound:  apperr.Gone,
		http.StatusForbidden: apperr.BadGateway,
	} {
		g := sourcetest.NewGraph(t, testToken, sourcetest.WithExpiredStatus(status))
		f := newTestFetcher(t, tenants{"t": graphTenant(g)})
		g.AddMedia("778", sourcetest.Bytes([]byte("x")), "image/jpeg")
		g.OnResolve(func(string) { g.Advance(time.Hour) })
		_, err := fetchMedia(f, "778")
		e := wantKind(t, err, kind)
		wantDetail(t, e, fmt.Sprint(status))
		if g.Resolves() != 2 || g.Downloads() != 2 {
			t.Errorf("%d: resolves %d downloads %d, want 2 and 2 (one retry only)", status, g.Resolves(), g.Downloads())
		}
	}
}

func TestWhatsAppMediaDeletedAfterResolve(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g)})
	g.AddMedia("779", sourcetest.Bytes([]byte("x")), "image/jpeg")
	g.OnResolve(func(id string) { g.RemoveMedia(id) })
	_, err := fetchMedia(f, "779")
	e := wantKind(t, err, apperr.Gone)
	wantDetail(t, e, "779", "unknown or has expired")
}

func TestWhatsAppBadToken(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/jpeg")
	s := graphTenant(g)
	s.GraphToken = "EAAexpired"
	f := newTestFetcher(t, tenants{"t": s})
	_, err := fetchMedia(f, "100")
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "access token", "whatsapp_cloud.access_token", "190")
	if strings.Contains(e.Detail, "EAAexpired") {
		t.Errorf("detail shows the token: %q", e.Detail)
	}
	if g.Downloads() != 0 {
		t.Errorf("downloaded %d times after a refused lookup", g.Downloads())
	}
}

func TestWhatsAppUnknownID(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g)})
	_, err := fetchMedia(f, "999999999")
	e := wantKind(t, err, apperr.Gone)
	wantDetail(t, e, "WhatsApp media ID 999999999 is unknown or has expired")
}

func TestWhatsAppInvalidRequest(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g), "unconfigured": {}})
	for _, id := range []string{"", "../../me", "123/456", "12 34", "123?fields=x", "%2e%2e", "١٢٣", strings.Repeat("1", 101)} {
		_, err := fetchMedia(f, id)
		e := wantKind(t, err, apperr.Invalid)
		if len(e.Fields) != 1 || e.Fields[0].Pointer != "/source/media_id" {
			t.Errorf("%q: fields %+v", id, e.Fields)
		}
	}
	_, err := f.Fetch(context.Background(), "unconfigured", Request{Type: TypeWhatsAppCloud, MediaID: "123"})
	e := wantKind(t, err, apperr.Invalid)
	wantDetail(t, e, "whatsapp_cloud.access_token")
	if g.Resolves() != 0 {
		t.Errorf("invalid requests reached Graph %d times", g.Resolves())
	}
}

// TestWhatsAppDownloadURLIsGuarded: the Graph base is trusted
// configuration, the download URL it hands out is not.
func TestWhatsAppDownloadURLIsGuarded(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/jpeg")
	s := graphTenant(g)
	s.Allowlist = nil
	f := newTestFetcher(t, tenants{"t": s})
	_, err := fetchMedia(f, "100")
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "not allowed", "loopback")
	if g.Resolves() != 1 || g.Downloads() != 0 {
		t.Errorf("resolves %d downloads %d, want 1 and 0", g.Resolves(), g.Downloads())
	}
}

// fakeGraph answers media lookups with whatever body the test wants.
func fakeGraph(t *testing.T, status int, body any) *sourcetest.Origin {
	g := sourcetest.NewOrigin(t)
	g.Handle("/v23.0/123", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if s, ok := body.(string); ok {
			_, _ = w.Write([]byte(s))
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	return g
}

func TestWhatsAppGraphErrors(t *testing.T) {
	graphErr := func(code, subcode int) map[string]any {
		return map[string]any{"error": map[string]any{"message": "m", "type": "OAuthException", "code": code, "error_subcode": subcode, "fbtrace_id": "x"}}
	}
	cases := []struct {
		name   string
		status int
		body   any
		kind   apperr.Kind
		detail string
		tries  int // 0: 1
	}{
		{"expired token", 401, graphErr(190, 463), apperr.BadGateway, "whatsapp_cloud.access_token", 0},
		{"no permission", 403, graphErr(10, 0), apperr.BadGateway, "whatsapp_business_messaging", 0},
		{"permission 200", 403, graphErr(200, 0), apperr.BadGateway, "whatsapp_cloud.access_token", 0},
		{"unknown object", 400, graphErr(100, 33), apperr.Gone, "unknown or has expired", 0},
		{"rate limited", 400, graphErr(80007, 0), apperr.Unavailable, "rate limit", 0},
		{"throttled", 429, "", apperr.Unavailable, "rate limit", 4},
		{"server error", 500, graphErr(2, 0), apperr.BadGateway, "HTTP 500", 4},
		{"html error page", 502, "<html>bad gateway</html>", apperr.BadGateway, "HTTP 502", 4},
		{"other error", 400, graphErr(131000, 0), apperr.BadGateway, "131000", 0},
		{"garbage", 200, "{not json", apperr.BadGateway, "unreadable", 0},
		{"no url", 200, map[string]any{"id": "123", "mime_type": "image/jpeg"}, apperr.BadGateway, "no download URL", 0},
		{"private download url", 200, map[string]any{"id": "123", "url": "http://169.254.169.254/latest/meta-data/"}, apperr.BadGateway, "metadata", 0},
		{"file download url", 200, map[string]any{"id": "123", "url": "file:///etc/passwd"}, apperr.BadGateway, "not allowed", 0},
		{"relative download url", 200, map[string]any{"id": "123", "url": "/x"}, apperr.BadGateway, "invalid download URL", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := fakeGraph(t, c.status, c.body)
			f := newTestFetcher(t, tenants{"t": {GraphBaseURL: g.URL + "/v23.0/", GraphToken: testToken}})
			_, err := fetchMedia(f, "123")
			e := wantKind(t, err, c.kind)
			wantDetail(t, e, c.detail)
			if c.kind == apperr.Unavailable && e.RetryAfter <= 0 {
				t.Errorf("no RetryAfter on %v", e)
			}
			reqs := g.Requests()
			if len(reqs) != max(c.tries, 1) || reqs[0].Header.Get("Authorization") != "Bearer "+testToken {
				t.Errorf("Graph saw %d requests, want %d: %+v", len(reqs), max(c.tries, 1), reqs)
			}
		})
	}
}

// TestWhatsAppTokenStaysWithMeta: the bearer token goes to Graph and to the
// download host, and not to wherever the download redirects.
func TestWhatsAppTokenStaysWithMeta(t *testing.T) {
	cdn := sourcetest.NewOrigin(t)
	cdn.Serve("/media.jpg", sourcetest.Bytes([]byte("jpeg")), "image/jpeg")
	lookaside := sourcetest.NewOrigin(t)
	lookaside.Redirect("/attachments/", cdn.URL+"/media.jpg")
	g := fakeGraph(t, 200, map[string]any{"id": "123", "url": lookaside.URL + "/attachments/?mid=123&hash=sig", "mime_type": "image/jpeg", "file_size": 4})

	f := newTestFetcher(t, tenants{"t": {
		GraphBaseURL: g.URL + "/v23.0", GraphToken: testToken,
		Allowlist: []string{lookaside.HostPort(), cdn.HostPort()},
	}})
	r, err := fetchMedia(f, "123")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := readAll(t, r); n != 4 || r.Size != 4 {
		t.Errorf("read %d bytes, size %d", n, r.Size)
	}
	if got := lookaside.Requests()[0].Header; got.Get("Authorization") != "Bearer "+testToken || got.Get("User-Agent") == "" {
		t.Errorf("download request headers %v", got)
	}
	if got := cdn.Requests()[0].Header; got.Get("Authorization") != "" || got.Get("Referer") != "" {
		t.Errorf("redirect target got Authorization %q, Referer %q", got.Get("Authorization"), got.Get("Referer"))
	}
}

func TestWhatsAppGraphRedirectIsGuarded(t *testing.T) {
	victim := sourcetest.NewOrigin(t)
	g := sourcetest.NewOrigin(t)
	g.Redirect("/v23.0/123", victim.URL+"/v23.0/123")
	f := newTestFetcher(t, tenants{"t": {GraphBaseURL: g.URL + "/v23.0", GraphToken: testToken}})
	_, err := fetchMedia(f, "123")
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "redirected", "not allowed")
	if len(victim.Requests()) != 0 {
		t.Errorf("victim reached")
	}
}

func TestWhatsAppBadGraphBase(t *testing.T) {
	for _, base := range []string{"ftp://graph.example.com", "graph.facebook.com/v23.0", "https://u:p@graph.example.com", "https://graph.example.com/v23.0?x=1"} {
		f := newTestFetcher(t, tenants{"t": {GraphBaseURL: base, GraphToken: testToken}})
		_, err := fetchMedia(f, "123")
		e := wantKind(t, err, apperr.BadGateway)
		wantDetail(t, e, "whatsapp_cloud.graph_base_url")
	}
}

func TestFileSizeJSON(t *testing.T) {
	cases := map[string]int64{
		`"12345"`: 12345, `12345`: 12345, `" 7 "`: 7, `0`: 0,
		`null`: -1, `""`: -1, `"abc"`: -1, `-5`: -1, `1.5`: -1, `{}`: -1, `"99999999999999999999"`: -1,
	}
	for in, want := range cases {
		var m graphMedia
		if err := json.Unmarshal([]byte(`{"file_size":`+in+`}`), &m); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if int64(m.FileSize) != want {
			t.Errorf("file_size %s → %d, want %d", in, m.FileSize, want)
		}
	}
}

func TestWhatsAppStreamsLargeMedia(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g)})
	info := g.AddMedia("555", sourcetest.Generated(32*sourcetest.MiB, 11), "video/mp4")
	r, err := fetchMedia(f, "555")
	if err != nil {
		t.Fatal(err)
	}
	if n, sum := readAll(t, r); n != info.Size || sum != info.SHA256 || r.SHA256 != sum {
		t.Errorf("got %d bytes sha %s (declared %s), want %d %s", n, sum, r.SHA256, info.Size, info.SHA256)
	}
}

func BenchmarkWhatsAppFetch(b *testing.B) {
	for _, size := range []int64{1 * sourcetest.MiB, 16 * sourcetest.MiB, 64 * sourcetest.MiB} {
		b.Run(fmt.Sprintf("%dMiB", size/sourcetest.MiB), func(b *testing.B) {
			g := sourcetest.NewGraph(b, testToken)
			g.AddMedia("1", sourcetest.Generated(size, 1), "video/mp4", sourcetest.WithoutChecksum())
			f := New(tenants{"t": graphTenant(g)}.get)
			b.Cleanup(f.CloseIdleConnections)
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				r, err := fetchMedia(f, "1")
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 256<<10)
				for {
					if _, err := r.Body.Read(buf); err != nil {
						break
					}
				}
				r.Body.Close()
			}
		})
	}
}

// TestWhatsAppMetaErrorMapping: Meta's error bodies, as the Graph fake
// sends them, become errors whose details name the code and the fix.
func TestWhatsAppMetaErrorMapping(t *testing.T) {
	me := func(status, code, subcode int, details string) sourcetest.MetaError {
		return sourcetest.MetaError{Status: status, Code: code, Subcode: subcode, Message: fmt.Sprintf("(#%d) m", code), Details: details}
	}
	cases := []struct {
		name       string
		err        sourcetest.MetaError
		kind       apperr.Kind
		detail     []string
		retryAfter time.Duration // for Unavailable
	}{
		{"download error", me(400, 131052, 0, "Unable to download the media sent by the user."), apperr.BadGateway,
			[]string{"131052", "media download error", "send it again"}, 0},
		{"download error, expired", me(400, 131052, 0, "Media ID has expired"), apperr.Gone,
			[]string{"131052", "7 days after a webhook", "30 days after an upload"}, 0},
		{"upload error", me(400, 131053, 0, "Unsupported file type"), apperr.BadGateway,
			[]string{"131053", "media upload error"}, 0},
		{"unknown object", me(400, 100, 33, ""), apperr.Gone,
			[]string{"unknown or has expired", "Graph error 100, subcode 33", "7 days after a webhook", "30 days after an upload"}, 0},
		{"invalid parameter", me(400, 100, 0, ""), apperr.Gone, []string{"unknown or has expired", "Graph error 100"}, 0},
		{"token invalid", me(401, 190, 0, ""), apperr.BadGateway, []string{"rejected", "access token", "whatsapp_cloud.access_token", "190"}, 0},
		{"token expired", me(401, 190, 463, ""), apperr.BadGateway, []string{"expired", "whatsapp_cloud.access_token", "subcode 463"}, 0},
		{"auth exception", me(401, 0, 0, ""), apperr.BadGateway, []string{"whatsapp_cloud.access_token", "HTTP 401"}, 0},
		{"permission denied", me(403, 10, 0, ""), apperr.BadGateway, []string{"Graph error 10", "whatsapp_business_messaging"}, 0},
		{"api permission", me(403, 230, 0, ""), apperr.BadGateway, []string{"Graph error 230", "whatsapp_cloud.access_token"}, 0},
		{"api method", me(400, 3, 0, ""), apperr.BadGateway, []string{"Graph error 3", "whatsapp_business_messaging"}, 0},
		{"app rate limit", me(400, 4, 0, ""), apperr.Unavailable, []string{"rate limit", "Graph error 4"}, rateLimitRetry},
		{"waba rate limit", me(400, 80007, 0, ""), apperr.Unavailable, []string{"rate limit", "80007"}, rateLimitRetry},
		{"throughput", me(400, 130429, 0, ""), apperr.Unavailable, []string{"rate limit", "130429"}, rateLimitRetry},
		{"spam rate limit", me(400, 131048, 0, ""), apperr.Unavailable, []string{"rate limit", "131048"}, rateLimitRetry},
		{"pair rate limit", me(400, 131056, 0, ""), apperr.Unavailable, []string{"rate limit", "131056"}, rateLimitRetry},
		{"rate limit with Retry-After", sourcetest.MetaError{Status: 400, Code: 613, RetryAfter: "90"}, apperr.Unavailable,
			[]string{"rate limit", "613"}, 90 * time.Second},
		{"service unavailable", me(400, 131016, 0, ""), apperr.Unavailable, []string{"temporarily unavailable", "131016"}, unavailableRetry},
		{"something went wrong", me(400, 131000, 0, ""), apperr.BadGateway, []string{"HTTP 400", "Graph error 131000"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := sourcetest.NewGraph(t, testToken)
			g.AddMedia("555", sourcetest.Bytes([]byte("x")), "image/jpeg")
			g.SetError("555", c.err)
			f := newTestFetcher(t, tenants{"t": graphTenant(g)})
			_, err := fetchMedia(f, "555")
			e := wantKind(t, err, c.kind)
			wantDetail(t, e, c.detail...)
			if e.RetryAfter != c.retryAfter {
				t.Errorf("RetryAfter %v, want %v", e.RetryAfter, c.retryAfter)
			}
			// Meta's own words stay in the logs.
			if strings.Contains(e.Detail, "(#") || (c.err.Details != "" && strings.Contains(e.Detail, c.err.Details)) {
				t.Errorf("detail repeats Meta's message: %q", e.Detail)
			}
			if e.Err == nil || !strings.Contains(e.Err.Error(), fmt.Sprint(c.err.Code)) {
				t.Errorf("cause %v does not keep the code", e.Err)
			}
			if g.Resolves() != 1 || g.Downloads() != 0 {
				t.Errorf("resolves %d downloads %d: a %d is not retried", g.Resolves(), g.Downloads(), c.err.Status)
			}
		})
	}
}

// TestWhatsAppExpiredMediaID: an ID past Meta's retention is unknown to
// Graph; the client learns why and what to do about it.
func TestWhatsAppExpiredMediaID(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	f := newTestFetcher(t, tenants{"t": graphTenant(g)})
	_, err := fetchMedia(f, "1037543291543636")
	e := wantKind(t, err, apperr.Gone)
	wantDetail(t, e, "WhatsApp media ID 1037543291543636 is unknown or has expired",
		"WhatsApp keeps media IDs 7 days after a webhook delivers them (30 days after an upload)")

	// A Graph proxy answering a bare 404 means the same.
	o := fakeGraph(t, 404, "")
	f = newTestFetcher(t, tenants{"t": {GraphBaseURL: o.URL + "/v23.0", GraphToken: testToken}})
	_, err = fetchMedia(f, "123")
	e = wantKind(t, err, apperr.Gone)
	wantDetail(t, e, "HTTP 404", "7 days after a webhook")
}
