package sourcetest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Twilio is a stand-in for Twilio's Programmable Messaging media, as Twilio
// documents it:
//
//   - GET /2010-04-01/Accounts/{AC…}/Messages/{MM…}/Media/{ME…} needs HTTP
//     Basic auth: the Account SID and Auth Token, or an API key SID and
//     secret. Anything else is HTTP 401 with Twilio's error body
//     {"code":20003,"message":"Authenticate","more_info":…,"status":401}.
//   - An unknown media SID is HTTP 404 with code 20404.
//   - With ".json" the Media resource is described as JSON; without an
//     extension the answer is a 307 to a signed, expiring URL on a second
//     server, the CDN, which serves the bytes with the media's content type.
//   - Like the S3 bucket behind Twilio's CDN, the CDN refuses a request that
//     carries an Authorization header as well as a signed query (HTTP 400),
//     and it records whether it ever saw one.
//
// The API is the configured Twilio host (source.TwilioSettings.APIHost),
// exempt from the SSRF guard; the CDN is not, so a Fetcher under test must
// allowlist CDNHostPort().
type Twilio struct {
	AccountSID string
	AuthToken  string
	// APIHost is the API's origin, "http://127.0.0.1:port", for
	// source.TwilioSettings.APIHost.
	APIHost string

	api, cdn       *httptest.Server
	cdnHost        string
	ttl            time.Duration
	redirectStatus int
	key            []byte

	mu         sync.Mutex
	clock      func() time.Time
	offset     time.Duration
	media      map[string]*twilioMedia // by media SID
	apiKeys    map[string]string
	apiSeen    []Seen
	cdnSeen    []Seen
	cdnAuth    bool
	failures   []Failure
	onRedirect func(mediaSID string)
}

type twilioMedia struct {
	account, message, sid string
	content               Content
	contentType           string
	filename              string
	object                string // the CDN's key for the bytes
	created               time.Time
}

// TwilioOption configures a Twilio.
type TwilioOption func(*Twilio)

// WithTwilioClock drives CDN link expiry from now instead of the wall clock.
func WithTwilioClock(now func() time.Time) TwilioOption { return func(tw *Twilio) { tw.clock = now } }

// WithCDNURLTTL sets how long CDN links live (default five minutes).
func WithCDNURLTTL(d time.Duration) TwilioOption { return func(tw *Twilio) { tw.ttl = d } }

// WithCDNHost names the CDN host in redirects (default 127.0.0.1), e.g. a
// name the test's resolver maps to loopback, so the CDN is another host and
// not just another port.
func WithCDNHost(host string) TwilioOption { return func(tw *Twilio) { tw.cdnHost = host } }

// WithRedirectStatus sets the status of the redirect to the CDN (default
// 307; Twilio has also been seen answering 302).
func WithRedirectStatus(code int) TwilioOption { return func(tw *Twilio) { tw.redirectStatus = code } }

// NewTwilio starts a fake Twilio API and CDN for one account; they stop
// when t ends.
func NewTwilio(t testing.TB, accountSID, authToken string, opts ...TwilioOption) *Twilio {
	t.Helper()
	tw := &Twilio{
		AccountSID:     accountSID,
		AuthToken:      authToken,
		cdnHost:        "127.0.0.1",
		ttl:            5 * time.Minute,
		redirectStatus: http.StatusTemporaryRedirect,
		key:            make([]byte, 32),
		clock:          time.Now,
		media:          map[string]*twilioMedia{},
		apiKeys:        map[string]string{},
	}
	_, _ = rand.Read(tw.key)
	for _, o := range opts {
		o(tw)
	}
	tw.api = httptest.NewServer(http.HandlerFunc(tw.serveAPI))
	t.Cleanup(tw.api.Close)
	tw.cdn = httptest.NewServer(http.HandlerFunc(tw.serveCDN))
	t.Cleanup(tw.cdn.Close)
	tw.APIHost = tw.api.URL
	return tw
}

// NewSID returns a random SID of Twilio's shape: prefix ("AC", "MM", "ME",
// "SK", …) and 32 lower-case hex digits.
func NewSID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// MediaURL is the URL of a media SID under an account and message on the
// fake's API host, whether or not such media exists.
func (tw *Twilio) MediaURL(accountSID, messageSID, mediaSID string) string {
	return tw.api.URL + "/2010-04-01/Accounts/" + accountSID + "/Messages/" + messageSID + "/Media/" + mediaSID
}

// HostPort is the API's address ("127.0.0.1:port").
func (tw *Twilio) HostPort() string { return tw.api.Listener.Addr().String() }

// CDNHostPort is the CDN's host and port as redirects name it, for
// allowlists.
func (tw *Twilio) CDNHostPort() string {
	_, port, _ := net.SplitHostPort(tw.cdn.Listener.Addr().String())
	return net.JoinHostPort(tw.cdnHost, port)
}

// AddMedia stores content as the media of a new message of the fake's
// account and returns its MediaUrl and Media SID. WithFilename makes the
// CDN send a Content-Disposition; other media options do not apply.
func (tw *Twilio) AddMedia(content Content, contentType string, opts ...MediaOption) (mediaURL, mediaSID string) {
	var o mediaOptions
	for _, opt := range opts {
		opt(&o)
	}
	m := &twilioMedia{
		account: tw.AccountSID, message: NewSID("MM"), sid: NewSID("ME"),
		content: content, contentType: contentType, filename: o.filename,
		object: NewSID(""), created: tw.now(),
	}
	tw.mu.Lock()
	tw.media[m.sid] = m
	tw.mu.Unlock()
	return tw.MediaURL(m.account, m.message, m.sid), m.sid
}

// AddAPIKey lets sid and secret authenticate as the account, as an API key
// created in the account does.
func (tw *Twilio) AddAPIKey(sid, secret string) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.apiKeys[sid] = secret
}

// RemoveMedia deletes media, as DELETE on the Media resource does; its CDN
// object goes too.
func (tw *Twilio) RemoveMedia(mediaSID string) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	delete(tw.media, mediaSID)
}

// Advance moves the fake's clock forward, e.g. past a CDN link's expiry.
func (tw *Twilio) Advance(d time.Duration) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.offset += d
}

// OnRedirect calls fn when a CDN link has been signed, just before the
// redirect to it is sent, so a test can act between the two hops (e.g.
// Advance past the link's expiry).
func (tw *Twilio) OnRedirect(fn func(mediaSID string)) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.onRedirect = fn
}

// FailNext answers the next n API requests with f (Twilio's error body,
// code 20429 for 429, 20500 otherwise) before behaving normally again.
func (tw *Twilio) FailNext(n int, f Failure) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	for range n {
		tw.failures = append(tw.failures, f)
	}
}

// Requests returns the API requests received so far, oldest first.
func (tw *Twilio) Requests() []Seen {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]Seen(nil), tw.apiSeen...)
}

// CDNRequests returns the CDN requests received so far, oldest first.
func (tw *Twilio) CDNRequests() []Seen {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]Seen(nil), tw.cdnSeen...)
}

// CDNSawAuthorization reports whether any CDN request carried an
// Authorization header: Twilio credentials must never leave the API host.
func (tw *Twilio) CDNSawAuthorization() bool {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.cdnAuth
}

func (tw *Twilio) now() time.Time {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.clock().Add(tw.offset)
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	}
	writeJSON(w, status, map[string]any{
		"code": code, "message": msg, "more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code), "status": status,
	})
}

func (tw *Twilio) authenticated(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if user == tw.AccountSID {
		return hmac.Equal([]byte(pass), []byte(tw.AuthToken))
	}
	secret, found := tw.apiKeys[user]
	return found && hmac.Equal([]byte(pass), []byte(secret))
}

func (tw *Twilio) serveAPI(w http.ResponseWriter, r *http.Request) {
	tw.mu.Lock()
	tw.apiSeen = append(tw.apiSeen, Seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	var fail *Failure
	if len(tw.failures) > 0 {
		fail = &tw.failures[0]
		tw.failures = tw.failures[1:]
	}
	tw.mu.Unlock()

	if fail != nil {
		if fail.RetryAfter != "" {
			w.Header().Set("Retry-After", fail.RetryAfter)
		}
		if fail.Status == http.StatusTooManyRequests {
			twilioError(w, fail.Status, 20429, "Too Many Requests")
		} else {
			twilioError(w, fail.Status, 20500, "Internal Server Error")
		}
		return
	}
	if !tw.authenticated(r) {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	parts := strings.Split(r.URL.Path, "/")
	if len(parts) != 8 || parts[1] != "2010-04-01" || parts[2] != "Accounts" || parts[4] != "Messages" || parts[6] != "Media" {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if parts[3] != tw.AccountSID {
		// The credentials are valid, but for another account.
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	sid, ext := parts[7], ""
	if i := strings.IndexByte(sid, '.'); i >= 0 {
		sid, ext = sid[:i], sid[i:]
	}
	tw.mu.Lock()
	m := tw.media[sid]
	hook := tw.onRedirect
	tw.mu.Unlock()
	if m == nil || m.message != parts[5] || (ext != "" && ext != ".json") {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if ext == ".json" {
		date := m.created.UTC().Format(time.RFC1123Z)
		writeJSON(w, http.StatusOK, map[string]any{
			"account_sid": m.account, "content_type": m.contentType, "date_created": date, "date_updated": date,
			"parent_sid": m.message, "sid": m.sid,
			"uri": strings.TrimSuffix(r.URL.Path, ext) + ".json",
		})
		return
	}
	loc := tw.signedURL(m, tw.now().Add(tw.ttl))
	if hook != nil {
		hook(m.sid)
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(tw.redirectStatus)
	fmt.Fprintf(w, "<?xml version='1.0' encoding='UTF-8'?>\n<TwilioResponse><RedirectTo>%s</RedirectTo></TwilioResponse>", html.EscapeString(loc))
}

func (tw *Twilio) signedURL(m *twilioMedia, exp time.Time) string {
	path := "/" + m.account + "/" + m.object
	expires := strconv.FormatInt(exp.Unix(), 10)
	q := url.Values{"Expires": {expires}, "Signature": {tw.sign(path, expires)}}
	return "http://" + tw.CDNHostPort() + path + "?" + q.Encode()
}

func (tw *Twilio) sign(path, expires string) string {
	mac := hmac.New(sha256.New, tw.key)
	fmt.Fprintf(mac, "%s\x00%s", path, expires)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

func (tw *Twilio) serveCDN(w http.ResponseWriter, r *http.Request) {
	tw.mu.Lock()
	tw.cdnSeen = append(tw.cdnSeen, Seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	if r.Header.Get("Authorization") != "" {
		tw.cdnAuth = true
	}
	tw.mu.Unlock()

	q := r.URL.Query()
	expires, sig := q.Get("Expires"), q.Get("Signature")
	if r.Header.Get("Authorization") != "" {
		s3Error(w, http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	}
	if !hmac.Equal([]byte(sig), []byte(tw.sign(r.URL.Path, expires))) {
		s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	exp, _ := strconv.ParseInt(expires, 10, 64)
	if !tw.now().Before(time.Unix(exp, 0)) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	var m *twilioMedia
	tw.mu.Lock()
	for _, c := range tw.media {
		if "/"+c.account+"/"+c.object == r.URL.Path {
			m = c
			break
		}
	}
	tw.mu.Unlock()
	if m == nil {
		s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if m.contentType != "" {
		w.Header().Set("Content-Type", m.contentType)
	}
	if m.filename != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": m.filename}))
	}
	if m.content.Size() >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(m.content.Size(), 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = io.Copy(w, m.content.Open())
	}
}
