package source

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
)

const testTwilioToken = "twilio-auth-token"

func twilioTenant(tw *sourcetest.Twilio) Settings {
	return Settings{
		Twilio:    TwilioSettings{AccountSID: tw.AccountSID, AuthToken: tw.AuthToken, APIHost: tw.APIHost},
		Allowlist: []string{tw.CDNHostPort()},
	}
}

func fetchTwilio(f *Fetcher, mediaURL string) (*Result, error) {
	return f.Fetch(context.Background(), "t", Request{Type: TypeTwilio, URL: mediaURL})
}

// basicUser is the user name in a Basic Authorization header.
func basicUser(t *testing.T, h http.Header) string {
	t.Helper()
	v, ok := strings.CutPrefix(h.Get("Authorization"), "Basic ")
	if !ok {
		t.Fatalf("no Basic credentials: %q", h.Get("Authorization"))
	}
	b, _ := base64.StdEncoding.DecodeString(v)
	user, _, _ := strings.Cut(string(b), ":")
	return user
}

// noCredentialsOnCDN fails if any CDN request carried a credential.
func noCredentialsOnCDN(t *testing.T, tw *sourcetest.Twilio) {
	t.Helper()
	if tw.CDNSawAuthorization() {
		t.Error("the CDN saw an Authorization header")
	}
	for _, r := range tw.CDNRequests() {
		for _, h := range []string{"Authorization", "Referer", "Cookie"} {
			if r.Header.Get(h) != "" {
				t.Errorf("CDN request %s carried %s", r.Path, h)
			}
		}
	}
}

func TestTwilioFetch(t *testing.T) {
	for _, redirect := range []int{http.StatusTemporaryRedirect, http.StatusFound} {
		t.Run(http.StatusText(redirect), func(t *testing.T) {
			// The CDN is another host name, as media.twiliocdn.com is.
			tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken,
				sourcetest.WithCDNHost("cdn.test"), sourcetest.WithRedirectStatus(redirect))
			content := sourcetest.Generated(200_000, 1)
			mediaURL, sid := tw.AddMedia(content, "image/jpeg", sourcetest.WithFilename("IMG_0001.JPG"))
			f := newTestFetcher(t, tenants{"t": twilioTenant(tw)})

			r, err := fetchTwilio(f, mediaURL)
			if err != nil {
				t.Fatal(err)
			}
			if r.MimeType != "image/jpeg" || r.Size != content.Size() || r.Filename != "IMG_0001.JPG" || r.Identity != "twilio:"+sid || r.SHA256 != "" {
				t.Errorf("got %+v", *r)
			}
			if n, sum := readAll(t, r); n != content.Size() || sum != content.SHA256() {
				t.Errorf("body: %d bytes, sha %s", n, sum)
			}
			api := tw.Requests()
			if len(api) != 1 || basicUser(t, api[0].Header) != tw.AccountSID {
				t.Errorf("API saw %+v", api)
			}
			if len(tw.CDNRequests()) != 1 {
				t.Errorf("CDN saw %d requests", len(tw.CDNRequests()))
			}
			noCredentialsOnCDN(t, tw)
		})
	}
}

func TestTwilioAPIKeyAuth(t *testing.T) {
	tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken)
	keySID := sourcetest.NewSID("SK")
	tw.AddAPIKey(keySID, "key-secret")
	mediaURL, _ := tw.AddMedia(sourcetest.Bytes([]byte("%PDF-1.7")), "application/pdf")
	s := twilioTenant(tw)
	// The API key wins over the auth token, which here is wrong anyway.
	s.Twilio.AuthToken = "stale-token"
	s.Twilio.APIKeySID, s.Twilio.APIKeySecret = keySID, "key-secret"
	f := newTestFetcher(t, tenants{"t": s})
	r, err := fetchTwilio(f, mediaURL)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r)
	if got := basicUser(t, tw.Requests()[0].Header); got != keySID {
		t.Errorf("authenticated as %s, want the API key %s", got, keySID)
	}
	noCredentialsOnCDN(t, tw)

	// A wrong secret names the API key settings.
	s.Twilio.APIKeySecret = "wrong"
	f = newTestFetcher(t, tenants{"t": s})
	_, err = fetchTwilio(f, mediaURL)
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "twilio.api_key_sid and twilio.api_key_secret", "HTTP 401", "Twilio error 20003")
	if strings.Contains(e.Detail, "wrong") || strings.Contains(e.Error(), "wrong") {
		t.Errorf("error shows the secret: %v", e)
	}
}

// TestTwilioCredentialsStayOnAPIHost: the CDN, another host, never sees
// the Basic credentials, on the first hop or on a retry.
func TestTwilioCredentialsStayOnAPIHost(t *testing.T) {
	tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken)
	mediaURL, _ := tw.AddMedia(sourcetest.Bytes([]byte("ogg")), "audio/ogg")
	// The first CDN link expires on the way: the Fetcher asks again.
	var once sync.Once
	tw.OnRedirect(func(string) { once.Do(func() { tw.Advance(time.Hour) }) })
	f := newTestFetcher(t, tenants{"t": twilioTenant(tw)})
	r, err := fetchTwilio(f, mediaURL)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := readAll(t, r); n != 3 {
		t.Errorf("read %d bytes", n)
	}
	if len(tw.Requests()) != 2 || len(tw.CDNRequests()) != 2 {
		t.Errorf("api %d cdn %d requests, want 2 and 2", len(tw.Requests()), len(tw.CDNRequests()))
	}
	for _, req := range tw.Requests() {
		if basicUser(t, req.Header) != tw.AccountSID {
			t.Errorf("API request without the account's credentials")
		}
	}
	noCredentialsOnCDN(t, tw)

	// Expiring every time: one retry, then a clear error.
	tw.OnRedirect(func(string) { tw.Advance(time.Hour) })
	_, err = fetchTwilio(f, mediaURL)
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "media storage", "HTTP 403", "fresh link")
	noCredentialsOnCDN(t, tw)
}

// TestTwilioCDNIsGuarded: the redirect target passes the SSRF guard like
// any URL: a tenant that has not allowlisted a loopback CDN cannot reach it.
func TestTwilioCDNIsGuarded(t *testing.T) {
	tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken)
	mediaURL, _ := tw.AddMedia(sourcetest.Bytes([]byte("x")), "image/png")
	s := twilioTenant(tw)
	s.Allowlist = nil
	f, sl := newRecordingFetcher(t, tenants{"t": s})
	_, err := fetchTwilio(f, mediaURL)
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "Twilio redirected", "not allowed", "loopback")
	if len(tw.Requests()) != 1 || len(tw.CDNRequests()) != 0 || len(sl.all()) != 0 {
		t.Errorf("api %d cdn %d sleeps %v", len(tw.Requests()), len(tw.CDNRequests()), sl.all())
	}
}

// TestTwilioRefusesOtherAccountsAndHosts: the tenant's credentials only
// ever go to its configured API host, for its own account's media.
func TestTwilioRefusesOtherAccountsAndHosts(t *testing.T) {
	tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken)
	mediaURL, _ := tw.AddMedia(sourcetest.Bytes([]byte("x")), "image/png")
	origin := sourcetest.NewOrigin(t)
	path := mediaURL[len(tw.APIHost):]
	other := sourcetest.NewSID("AC")

	f := newTestFetcher(t, tenants{"t": twilioTenant(tw)})
	cases := []struct {
		name, url, detail string
	}{
		{"another account", tw.MediaURL(other, sourcetest.NewSID("MM"), sourcetest.NewSID("ME")), "names Twilio account " + other},
		{"foreign host", origin.URL + path, "tenant's Twilio API host " + tw.APIHost},
		{"real Twilio while configured elsewhere", "https://api.twilio.com" + path, "Twilio API host"},
		{"same host, https", strings.Replace(mediaURL, "http://", "https://", 1), "Twilio API host"},
		{"same address, other name", "http://loop.test:" + strings.Split(tw.HostPort(), ":")[1] + path, "Twilio API host"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fetchTwilio(f, c.url)
			e := wantKind(t, err, apperr.Invalid)
			wantDetail(t, e, c.detail)
			if len(e.Fields) != 1 || e.Fields[0].Pointer != "/source/url" {
				t.Errorf("fields %+v", e.Fields)
			}
		})
	}
	if len(tw.Requests()) != 0 || len(origin.Requests()) != 0 {
		t.Errorf("refused URLs were fetched: twilio %d, origin %d", len(tw.Requests()), len(origin.Requests()))
	}

	// The default API host is https://api.twilio.com; plain http to it is
	// refused before anything is dialled.
	f = newTestFetcher(t, tenants{"t": {Twilio: TwilioSettings{AccountSID: tw.AccountSID, AuthToken: "x"}}})
	_, err := fetchTwilio(f, "http://api.twilio.com"+path)
	e := wantKind(t, err, apperr.Invalid)
	wantDetail(t, e, "https://api.twilio.com")
}

func TestTwilioStatusErrors(t *testing.T) {
	tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken)
	mediaURL, sid := tw.AddMedia(sourcetest.Bytes([]byte("x")), "image/png")
	f := newTestFetcher(t, tenants{"t": twilioTenant(tw)})

	tw.RemoveMedia(sid)
	_, err := fetchTwilio(f, mediaURL)
	e := wantKind(t, err, apperr.NotFound)
	wantDetail(t, e, sid, "HTTP 404", "Twilio error 20404", "deleted", "another Twilio account")

	s := twilioTenant(tw)
	s.Twilio.AuthToken = "revoked"
	f = newTestFetcher(t, tenants{"t": s})
	_, err = fetchTwilio(f, mediaURL)
	e = wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "Twilio rejected the tenant's credentials", "twilio.account_sid and twilio.auth_token", "Twilio error 20003")
	if strings.Contains(e.Error(), "revoked") {
		t.Errorf("error shows the token: %v", e)
	}
	if len(tw.CDNRequests()) != 0 {
		t.Error("reached the CDN")
	}
}

func TestTwilioBackoff(t *testing.T) {
	tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken)
	mediaURL, _ := tw.AddMedia(sourcetest.Bytes([]byte("x")), "image/png")
	tw.FailNext(2, sourcetest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "1"})
	f, sl := newRecordingFetcher(t, tenants{"t": twilioTenant(tw)})
	r, err := fetchTwilio(f, mediaURL)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r)
	if got := sl.all(); !slices.Equal(got, []time.Duration{time.Second, time.Second}) {
		t.Errorf("slept %v", got)
	}

	tw.FailNext(10, sourcetest.Failure{Status: http.StatusServiceUnavailable})
	_, err = fetchTwilio(f, mediaURL)
	e := wantKind(t, err, apperr.Unavailable)
	wantDetail(t, e, "Twilio is unavailable", "HTTP 503")
	if e.RetryAfter <= 0 {
		t.Error("no RetryAfter")
	}
	noCredentialsOnCDN(t, tw)
}

func TestTwilioNotConfigured(t *testing.T) {
	tw := sourcetest.NewTwilio(t, sourcetest.NewSID("AC"), testTwilioToken)
	mediaURL, _ := tw.AddMedia(sourcetest.Bytes([]byte("x")), "image/png")
	for name, s := range map[string]TwilioSettings{
		"nothing":        {},
		"no account":     {AuthToken: "x", APIHost: tw.APIHost},
		"no token":       {AccountSID: tw.AccountSID, APIHost: tw.APIHost},
		"half an APIKey": {AccountSID: tw.AccountSID, AuthToken: "x", APIKeySID: sourcetest.NewSID("SK"), APIHost: tw.APIHost},
	} {
		f := newTestFetcher(t, tenants{"t": {Twilio: s}})
		_, err := fetchTwilio(f, mediaURL)
		e := wantKind(t, err, apperr.Invalid)
		wantDetail(t, e, "twilio sources are not configured")
		if len(e.Fields) != 1 || e.Fields[0].Pointer != "/source/type" {
			t.Errorf("%s: fields %+v", name, e.Fields)
		}
	}
	for _, host := range []string{"ftp://api.twilio.com", "https://api.twilio.com/base", "user@api.twilio.com", "http://[::1", "2130706433"} {
		f := newTestFetcher(t, tenants{"t": {Twilio: TwilioSettings{AccountSID: tw.AccountSID, AuthToken: "x", APIHost: host}}})
		_, err := fetchTwilio(f, mediaURL)
		e := wantKind(t, err, apperr.BadGateway)
		wantDetail(t, e, "twilio.api_host")
	}
	if len(tw.Requests()) != 0 {
		t.Error("Twilio was called")
	}
}

func TestTwilioIdentity(t *testing.T) {
	ac, mm, me := sourcetest.NewSID("AC"), sourcetest.NewSID("MM"), sourcetest.NewSID("ME")
	base := "https://api.twilio.com/2010-04-01/Accounts/" + ac + "/Messages/" + mm + "/Media/"
	for in, want := range map[string]string{
		base + me:                                     "twilio:" + me,
		base + "ME" + strings.ToUpper(me[2:]):         "twilio:" + me,
		strings.Replace(base, "/MM", "/SM", 1) + me:   "twilio:" + me,
		"HTTPS://API.TWILIO.COM" + base[22:] + me:     "twilio:" + me,
		base + me + "#fragment":                       "twilio:" + me,
		"http://127.0.0.1:8080" + base[22:] + me + "": "twilio:" + me,
	} {
		got, err := Identity(Request{Type: TypeTwilio, URL: in})
		if err != nil || got != want {
			t.Errorf("Identity(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, detail := range map[string]string{
		"":                                    "required",
		"not a url":                           "absolute",
		"https://api.twilio.com/":             "not a Twilio media URL",
		base:                                  "Media SID",
		base + me + ".json":                   "drop the extension",
		base + me + "/extra":                  "not a Twilio media URL",
		base + "XX" + me[2:]:                  "Media SID",
		base + me[:33]:                        "Media SID",
		base + me + "0":                       "Media SID",
		base + "ME" + strings.Repeat("g", 32): "Media SID",
		strings.Replace(base, ac, "AC123", 1) + me:                "Account SID",
		strings.Replace(base, "/"+mm, "/"+me, 1) + me:             "Message SID",
		strings.Replace(base, "2010-04-01", "2008-08-01", 1) + me: "not a Twilio media URL",
		strings.Replace(base, "/Media/", "/%4Dedia/", 1) + me:     "percent-encoded",
		"https://u:p@api.twilio.com" + base[22:] + me:             "credentials",
		"ftp://api.twilio.com" + base[22:] + me:                   "scheme",
	} {
		_, err := Identity(Request{Type: TypeTwilio, URL: in})
		e := wantKind(t, err, apperr.Invalid)
		wantDetail(t, e, detail)
		if len(e.Fields) != 1 || e.Fields[0].Pointer != "/source/url" {
			t.Errorf("%q: fields %+v", in, e.Fields)
		}
	}
}
