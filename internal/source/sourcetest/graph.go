package sourcetest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Graph is a stand-in for the WhatsApp Cloud API media endpoints, as Meta
// documents them:
//
//   - GET /{version}/{media-id} with "Authorization: Bearer <token>" answers
//     {"messaging_product":"whatsapp","url":...,"mime_type":...,"sha256":...,
//     "file_size":...,"id":...}; an unknown ID is HTTP 400 with Graph error
//     code 100 (subcode 33), a wrong or missing token HTTP 401 with code 190.
//   - The url is signed and expires (five minutes by default, on the fake's
//     clock). Downloading it needs the same bearer token.
//   - DELETE /{version}/{media-id} deletes the media.
//
// Failures can be scripted: FailNext answers the next calls with 429 (and
// Retry-After) or 5xx, SetError answers one media ID with a given Meta error.
//
// Download URLs point at the fake's own host, so a Fetcher under test must
// allowlist HostPort().
type Graph struct {
	// BaseURL is the Graph base including the version, for
	// source.Settings.GraphBaseURL.
	BaseURL string
	// Token is the bearer token every call must carry.
	Token string

	*MediaAPI
}

// MediaAPI is the media API Graph and Dialog360 share: Meta's media
// objects, signed expiring download URLs, counters and scripted failures.
// Its methods are used through a Graph or a Dialog360.
type MediaAPI struct {
	srv           *httptest.Server
	version       string
	prefix        string // path before /{media-id}: "/v23.0" for Graph, "" for 360dialog
	key           []byte
	ttl           time.Duration
	expiredStatus int
	// authorized checks a request's credential and answers it if wrong.
	authorized func(w http.ResponseWriter, r *http.Request) bool
	// downloadBase is where download URLs point: the fake itself for
	// Graph, Meta's lookaside host for 360dialog.
	downloadBase func() string

	mu        sync.Mutex
	clock     func() time.Time
	offset    time.Duration
	media     map[string]*fakeMedia
	onResolve func(id string)
	resolves  map[string]int
	downloads map[string]int
	nResolve  int
	nDownload int
	failures  map[Endpoint][]Failure
	errors    map[string]MetaError
}

// Endpoint names one of the fake's endpoints, for FailNext.
type Endpoint int

const (
	Resolve  Endpoint = iota // GET /{media-id}
	Download                 // GET /whatsapp_business/attachments/
)

// Failure is a scripted answer to one call.
type Failure struct {
	Status     int    // e.g. 429, 500, 503
	RetryAfter string // Retry-After header: seconds or an HTTP date; "" for none
}

// MetaError is an error as Graph returns it, for SetError.
type MetaError struct {
	Status  int    // HTTP status; 400 if zero
	Code    int    // error.code
	Subcode int    // error.error_subcode; omitted if zero
	Type    string // error.type; "OAuthException" if empty
	Message string // error.message
	Details string // error.error_data.details; omitted if empty
	// RetryAfter is sent as a Retry-After header if set.
	RetryAfter string
}

type fakeMedia struct {
	info        MediaInfo
	content     Content
	sizeNumber  bool
	omitSize    bool
	declaredSum string
	filename    string
}

// MediaInfo describes media added to the fake.
type MediaInfo struct {
	ID       string
	MimeType string
	Size     int64
	// SHA256 is the true digest of the content, lower-case hex.
	SHA256 string
	// DeclaredSHA256 is the sha256 field as the fake sends it ("" if omitted).
	DeclaredSHA256 string
}

// GraphOption configures a Graph or a Dialog360.
type GraphOption func(*MediaAPI)

// WithClock drives URL expiry from now instead of the wall clock.
func WithClock(now func() time.Time) GraphOption { return func(g *MediaAPI) { g.clock = now } }

// WithURLTTL sets how long download URLs live (Meta: five minutes).
func WithURLTTL(d time.Duration) GraphOption { return func(g *MediaAPI) { g.ttl = d } }

// WithExpiredStatus sets the HTTP status of a download of an expired URL
// (404 by default).
func WithExpiredStatus(code int) GraphOption { return func(g *MediaAPI) { g.expiredStatus = code } }

// WithVersion sets the Graph API version in BaseURL (default v23.0). A
// Dialog360 has no version and ignores it.
func WithVersion(v string) GraphOption { return func(g *MediaAPI) { g.version = v } }

// WithThrottled answers the first n media lookups with HTTP 429 and
// Retry-After: retryAfter ("" for none), as Graph's edge does under load.
func WithThrottled(n int, retryAfter string) GraphOption {
	return func(g *MediaAPI) {
		g.FailNext(Resolve, n, Failure{Status: http.StatusTooManyRequests, RetryAfter: retryAfter})
	}
}

// WithUnavailable answers the first n media lookups with HTTP 503.
func WithUnavailable(n int) GraphOption {
	return func(g *MediaAPI) { g.FailNext(Resolve, n, Failure{Status: http.StatusServiceUnavailable}) }
}

// WithMediaError answers lookups of id with e; see SetError.
func WithMediaError(id string, e MetaError) GraphOption {
	return func(g *MediaAPI) { g.SetError(id, e) }
}

func newMediaAPI() *MediaAPI {
	g := &MediaAPI{
		version:       "v23.0",
		key:           make([]byte, 32),
		ttl:           5 * time.Minute,
		expiredStatus: http.StatusNotFound,
		clock:         time.Now,
		media:         map[string]*fakeMedia{},
		resolves:      map[string]int{},
		downloads:     map[string]int{},
		failures:      map[Endpoint][]Failure{},
		errors:        map[string]MetaError{},
	}
	_, _ = rand.Read(g.key)
	return g
}

// NewGraph starts a fake Graph API requiring token; it stops when t ends.
func NewGraph(t testing.TB, token string, opts ...GraphOption) *Graph {
	t.Helper()
	m := newMediaAPI()
	g := &Graph{Token: token, MediaAPI: m}
	for _, o := range opts {
		o(m)
	}
	m.prefix = "/" + m.version
	m.authorized = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == "Bearer "+token {
			return true
		}
		graphError(w, http.StatusUnauthorized, "OAuthException", 190, 0, "Invalid OAuth access token - Cannot parse access token")
		return false
	}
	m.downloadBase = func() string { return m.srv.URL }
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	g.BaseURL = m.srv.URL + m.prefix
	return g
}

// HostPort is the fake's address ("127.0.0.1:port"), for allowlists.
func (g *MediaAPI) HostPort() string { return g.srv.Listener.Addr().String() }

// FailNext answers the next n calls to e with f, before behaving normally
// again. Calls queue: FailNext(Resolve, 2, a) then FailNext(Resolve, 1, b)
// answers a, a, b.
func (g *MediaAPI) FailNext(e Endpoint, n int, f Failure) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for range n {
		g.failures[e] = append(g.failures[e], f)
	}
}

// SetError answers every lookup of id with e, whether or not id was
// added, until ClearError.
func (g *MediaAPI) SetError(id string, e MetaError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.errors[id] = e
}

// ClearError undoes SetError.
func (g *MediaAPI) ClearError(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.errors, id)
}

func (g *MediaAPI) nextFailure(e Endpoint) (Failure, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := g.failures[e]
	if len(q) == 0 {
		return Failure{}, false
	}
	g.failures[e] = q[1:]
	return q[0], true
}

// Advance moves the fake's clock forward, e.g. past a URL's expiry.
func (g *MediaAPI) Advance(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.offset += d
}

// OnResolve calls fn after each media lookup is answered and before the
// answer is sent, so a test can act "between resolve and download".
func (g *MediaAPI) OnResolve(fn func(id string)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onResolve = fn
}

// Checksum is how the fake encodes the sha256 field.
type Checksum int

const (
	ChecksumHex          Checksum = iota // lower-case hex, as the media endpoint sends
	ChecksumBase64                       // standard alphabet, padded, as webhooks send
	ChecksumBase64Raw                    // standard alphabet, unpadded
	ChecksumBase64URL                    // URL alphabet, padded
	ChecksumBase64URLRaw                 // URL alphabet, unpadded
	ChecksumHexUpper                     // upper-case hex
)

// MediaOption configures one media object.
type MediaOption func(*mediaOptions)

type mediaOptions struct {
	checksum   Checksum
	wrongSum   bool
	noSum      bool
	sizeNumber bool
	noSize     bool
	filename   string
}

// WithChecksum encodes the sha256 field as c.
func WithChecksum(c Checksum) MediaOption { return func(o *mediaOptions) { o.checksum = c } }

// WithWrongChecksum declares the digest of different content.
func WithWrongChecksum() MediaOption { return func(o *mediaOptions) { o.wrongSum = true } }

// WithoutChecksum omits the sha256 field.
func WithoutChecksum() MediaOption { return func(o *mediaOptions) { o.noSum = true } }

// WithFileSizeNumber sends file_size as a JSON number rather than the
// documented string.
func WithFileSizeNumber() MediaOption { return func(o *mediaOptions) { o.sizeNumber = true } }

// WithoutFileSize omits the file_size field.
func WithoutFileSize() MediaOption { return func(o *mediaOptions) { o.noSize = true } }

// WithFilename sends a Content-Disposition filename on download.
func WithFilename(name string) MediaOption { return func(o *mediaOptions) { o.filename = name } }

// AddMedia makes id resolvable to content of type mimeType. Generated
// content is read once here, to compute its digest.
func (g *MediaAPI) AddMedia(id string, content Content, mimeType string, opts ...MediaOption) MediaInfo {
	var o mediaOptions
	for _, opt := range opts {
		opt(&o)
	}
	sum := content.SHA256()
	raw, _ := hex.DecodeString(sum)
	if o.wrongSum {
		alt := sha256.Sum256(append([]byte("not the content:"), raw...))
		raw = alt[:]
	}
	var declared string
	switch {
	case o.noSum:
	case o.checksum == ChecksumBase64:
		declared = base64.StdEncoding.EncodeToString(raw)
	case o.checksum == ChecksumBase64Raw:
		declared = base64.RawStdEncoding.EncodeToString(raw)
	case o.checksum == ChecksumBase64URL:
		declared = base64.URLEncoding.EncodeToString(raw)
	case o.checksum == ChecksumBase64URLRaw:
		declared = base64.RawURLEncoding.EncodeToString(raw)
	case o.checksum == ChecksumHexUpper:
		declared = strings.ToUpper(hex.EncodeToString(raw))
	default:
		declared = hex.EncodeToString(raw)
	}
	info := MediaInfo{ID: id, MimeType: mimeType, Size: content.Size(), SHA256: sum, DeclaredSHA256: declared}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.media[id] = &fakeMedia{
		info: info, content: content, sizeNumber: o.sizeNumber, omitSize: o.noSize,
		declaredSum: declared, filename: o.filename,
	}
	return info
}

// RemoveMedia forgets id, as Meta does when media expires or is deleted.
func (g *MediaAPI) RemoveMedia(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.media, id)
}

// Resolves counts media lookups (GET /{media-id}), answered or not.
func (g *MediaAPI) Resolves() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.nResolve
}

// Downloads counts download requests, answered or not.
func (g *MediaAPI) Downloads() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.nDownload
}

// ResolvesOf counts lookups of one media ID.
func (g *MediaAPI) ResolvesOf(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resolves[id]
}

// DownloadsOf counts download requests naming one media ID.
func (g *MediaAPI) DownloadsOf(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.downloads[id]
}

const downloadPath = "/whatsapp_business/attachments/"

func (g *MediaAPI) now() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.clock().Add(g.offset)
}

func (g *MediaAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == downloadPath {
		g.serveDownload(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, g.prefix+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		graphError(w, http.StatusBadRequest, "GraphMethodException", 100, 0, "Unknown path components: "+r.URL.Path)
		return
	}
	switch r.Method {
	case http.MethodGet:
		g.serveResolve(w, r, rest)
	case http.MethodDelete:
		if !g.authorized(w, r) {
			return
		}
		g.mu.Lock()
		_, found := g.media[rest]
		delete(g.media, rest)
		g.mu.Unlock()
		if !found {
			unknownObject(w, rest)
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	default:
		graphError(w, http.StatusBadRequest, "GraphMethodException", 100, 0, "Unsupported request method")
	}
}

func (g *MediaAPI) serveResolve(w http.ResponseWriter, r *http.Request, id string) {
	g.mu.Lock()
	g.nResolve++
	g.resolves[id]++
	m := g.media[id]
	hook := g.onResolve
	scripted, hasErr := g.errors[id]
	g.mu.Unlock()

	if f, ok := g.nextFailure(Resolve); ok {
		resolveFailure(w, f)
		return
	}
	if !g.authorized(w, r) {
		return
	}
	if hasErr {
		metaError(w, scripted)
		return
	}
	if m == nil {
		unknownObject(w, id)
		return
	}
	body := map[string]any{
		"messaging_product": "whatsapp",
		"url":               g.signedURL(id, g.now().Add(g.ttl)),
		"mime_type":         m.info.MimeType,
		"id":                id,
	}
	if m.declaredSum != "" {
		body["sha256"] = m.declaredSum
	}
	if !m.omitSize && m.info.Size >= 0 {
		if m.sizeNumber {
			body["file_size"] = m.info.Size
		} else {
			body["file_size"] = strconv.FormatInt(m.info.Size, 10)
		}
	}
	if hook != nil {
		hook(id)
	}
	writeJSON(w, http.StatusOK, body)
}

// signedURL mimics Meta's lookaside URLs: the media ID, an expiry and a MAC
// over both, so a test cannot stretch or forge one.
func (g *MediaAPI) signedURL(id string, exp time.Time) string {
	ext := strconv.FormatInt(exp.Unix(), 10)
	q := url.Values{"mid": {id}, "ext": {ext}, "hash": {g.sign(id, ext)}}
	return g.downloadBase() + downloadPath + "?" + q.Encode()
}

func (g *MediaAPI) sign(id, ext string) string {
	mac := hmac.New(sha256.New, g.key)
	fmt.Fprintf(mac, "%s\x00%s", id, ext)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (g *MediaAPI) serveDownload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, ext, hash := q.Get("mid"), q.Get("ext"), q.Get("hash")
	g.mu.Lock()
	g.nDownload++
	g.downloads[id]++
	m := g.media[id]
	g.mu.Unlock()

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if f, ok := g.nextFailure(Download); ok {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		http.Error(w, http.StatusText(f.Status), f.Status)
		return
	}
	if !g.authorized(w, r) {
		return
	}
	if !hmac.Equal([]byte(hash), []byte(g.sign(id, ext))) {
		http.Error(w, "URL signature mismatch", http.StatusForbidden)
		return
	}
	exp, _ := strconv.ParseInt(ext, 10, 64)
	if !g.now().Before(time.Unix(exp, 0)) {
		http.Error(w, "URL signature expired", g.expiredStatus)
		return
	}
	if m == nil {
		http.Error(w, "media not found", http.StatusNotFound)
		return
	}
	if m.info.MimeType != "" {
		w.Header().Set("Content-Type", m.info.MimeType)
	}
	if m.filename != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": m.filename}))
	}
	if m.info.Size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(m.info.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = io.Copy(w, m.content.Open())
	}
}

// resolveFailure answers a scripted lookup failure the way Graph does:
// throttling as code 4 ("Application request limit reached"), a 503 as the
// transient code 2, anything else as code 1.
func resolveFailure(w http.ResponseWriter, f Failure) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	switch {
	case f.Status == http.StatusTooManyRequests:
		graphError(w, f.Status, "OAuthException", 4, 0, "(#4) Application request limit reached")
	case f.Status == http.StatusServiceUnavailable:
		writeJSON(w, f.Status, map[string]any{"error": map[string]any{
			"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2,
			"is_transient": true, "fbtrace_id": fbtraceID(),
		}})
	default:
		graphError(w, f.Status, "OAuthException", 1, 0, "An unknown error occurred")
	}
}

func metaError(w http.ResponseWriter, e MetaError) {
	status, typ := e.Status, e.Type
	if status == 0 {
		status = http.StatusBadRequest
	}
	if typ == "" {
		typ = "OAuthException"
	}
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	body := map[string]any{"message": e.Message, "type": typ, "code": e.Code, "fbtrace_id": fbtraceID()}
	if e.Subcode != 0 {
		body["error_subcode"] = e.Subcode
	}
	if e.Details != "" {
		body["error_data"] = map[string]any{"messaging_product": "whatsapp", "details": e.Details}
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func unknownObject(w http.ResponseWriter, id string) {
	graphError(w, http.StatusBadRequest, "GraphMethodException", 100, 33,
		"Unsupported get request. Object with ID '"+id+"' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")
}

func graphError(w http.ResponseWriter, status int, typ string, code, subcode int, msg string) {
	e := map[string]any{"message": msg, "type": typ, "code": code, "fbtrace_id": fbtraceID()}
	if subcode != 0 {
		e["error_subcode"] = subcode
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+msg+`"`)
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func fbtraceID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
