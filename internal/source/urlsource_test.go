package source

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
)

func TestURLFetch(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	content := sourcetest.Generated(3*sourcetest.MiB+17, 7)
	sum := content.SHA256()
	raw, _ := hex.DecodeString(sum)
	origin.Serve("/files/report", content, "Application/PDF; charset=binary",
		"Content-Disposition", `attachment; filename="ignored.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`,
		"Repr-Digest", "sha-512=:AAAA:, sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	origin.Serve("/files/photo.jpg", sourcetest.Bytes([]byte("jpeg")), "image/jpeg")
	origin.Serve("/files/", sourcetest.Stream(-1, func() io.Reader { return strings.NewReader(strings.Repeat("chunked\n", 4096)) }), "")
	origin.Redirect("/moved", "/files/photo.jpg")

	f := newTestFetcher(t, tenants{"t": {Allowlist: []string{origin.HostPort()}}})
	fetch := func(path string) *Result {
		t.Helper()
		r, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: origin.URL + path})
		if err != nil {
			t.Fatalf("Fetch %s: %v", path, err)
		}
		return r
	}

	r := fetch("/files/report#page=2")
	if r.MimeType != "application/pdf" || r.Size != content.Size() || r.SHA256 != sum || r.Filename != "résumé.pdf" {
		t.Errorf("got mime %q size %d sha %q filename %q", r.MimeType, r.Size, r.SHA256, r.Filename)
	}
	if want := "url:" + origin.URL + "/files/report"; r.Identity != want {
		t.Errorf("identity %q, want %q", r.Identity, want)
	}
	if n, got := readAll(t, r); n != content.Size() || got != sum {
		t.Errorf("body: %d bytes, sha %s; want %d, %s", n, got, content.Size(), sum)
	}

	r = fetch("/moved")
	if r.Filename != "photo.jpg" || r.MimeType != "image/jpeg" || r.SHA256 != "" || r.Size != 4 {
		t.Errorf("after redirect: filename %q mime %q sha %q size %d", r.Filename, r.MimeType, r.SHA256, r.Size)
	}
	if want := "url:" + origin.URL + "/moved"; r.Identity != want {
		t.Errorf("identity %q, want the requested URL %q", r.Identity, want)
	}
	readAll(t, r)

	r = fetch("/files/")
	if r.Filename != "" {
		t.Errorf("filename %q", r.Filename)
	}
	if r.Size != -1 || r.MimeType != "text/plain" {
		t.Errorf("chunked: size %d mime %q, want -1 and the sniffed text/plain", r.Size, r.MimeType)
	}
	readAll(t, r)

	for _, req := range origin.Requests() {
		if got := req.Header.Get("Accept-Encoding"); got != "identity" {
			t.Errorf("%s: Accept-Encoding %q, want identity", req.Path, got)
		}
		if got := req.Header.Get("User-Agent"); got != DefaultUserAgent {
			t.Errorf("%s: User-Agent %q", req.Path, got)
		}
	}
}

// TestURLAuthBoundToHost: a tenant's URL credential reaches only its own
// host:port, never a redirect target elsewhere, and no Referer carries the
// credentialed URL on.
func TestURLAuthBoundToHost(t *testing.T) {
	a := sourcetest.NewOrigin(t)
	b := sourcetest.NewOrigin(t)
	b.Serve("/file", sourcetest.Bytes([]byte("b")), "text/plain")
	a.Serve("/file", sourcetest.Bytes([]byte("a")), "text/plain")
	a.Redirect("/cross", b.URL+"/file")
	a.Redirect("/self", "/file")
	a.Redirect("/cross-and-back", b.URL+"/back")
	b.Redirect("/back", a.URL+"/file")
	// b's credential is configured for the host name alone, i.e. port 80,
	// so it never applies to b's test port.
	f := newTestFetcher(t, tenants{"t": {
		Allowlist: []string{a.HostPort(), b.HostPort()},
		URLAuth: []HeaderRule{
			{Host: a.HostPort(), Header: "X-Api-Key", Value: "a-secret"},
			{Host: a.HostPort(), Header: "Authorization", Value: "Bearer a-token"},
			{Host: "127.0.0.1", Header: "X-Port80-Key", Value: "p80"},
			{Host: a.HostPort(), Header: "Host", Value: "smuggled.example"},
		},
	}})
	for _, path := range []string{"/cross", "/self", "/cross-and-back", "/file"} {
		r, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: a.URL + path + "?sig=abc"})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		readAll(t, r)
	}

	for _, req := range a.Requests() {
		if req.Header.Get("X-Api-Key") != "a-secret" || req.Header.Get("Authorization") != "Bearer a-token" {
			t.Errorf("a%s: credentials missing: %v", req.Path, req.Header)
		}
		if req.Header.Get("X-Port80-Key") != "" {
			t.Errorf("a%s: a port-80 rule reached another port", req.Path)
		}
		if req.Header.Get("Referer") != "" {
			t.Errorf("a%s: Referer %q", req.Path, req.Header.Get("Referer"))
		}
	}
	if len(b.Requests()) != 2 {
		t.Fatalf("b received %d requests, want 2", len(b.Requests()))
	}
	for _, req := range b.Requests() {
		for _, h := range []string{"X-Api-Key", "Authorization", "X-Port80-Key", "Referer"} {
			if v := req.Header.Get(h); v != "" {
				t.Errorf("b%s received %s: %q", req.Path, h, v)
			}
		}
	}
}

func TestURLStatusErrors(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	origin.Status("/gone", http.StatusGone)
	origin.Status("/forbidden", http.StatusForbidden)
	origin.Status("/broken", http.StatusInternalServerError)
	origin.Status("/notmodified", http.StatusNotModified)
	f := newTestFetcher(t, tenants{"t": {Allowlist: []string{origin.HostPort()}}})
	cases := []struct {
		path   string
		kind   apperr.Kind
		detail string
	}{
		{"/missing", apperr.NotFound, "404"},
		{"/gone", apperr.Gone, "410"},
		{"/forbidden", apperr.BadGateway, "url_auth"},
		{"/broken", apperr.BadGateway, "500"},
		{"/notmodified", apperr.BadGateway, "304"},
	}
	for _, c := range cases {
		_, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: origin.URL + c.path})
		e := wantKind(t, err, c.kind)
		wantDetail(t, e, c.detail)
	}
}

func TestURLCancelled(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	origin.Serve("/f", sourcetest.Bytes([]byte("x")), "text/plain")
	f := newTestFetcher(t, tenants{"t": {Allowlist: []string{origin.HostPort()}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.Fetch(ctx, "t", Request{Type: TypeURL, URL: origin.URL + "/f"})
	wantKind(t, err, apperr.BadGateway)
	if !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cause lost: %v", err)
	}
}

func TestIdentity(t *testing.T) {
	cases := map[string]string{
		"HTTP://Example.COM:80/a/b?x=1#frag":    "url:http://example.com/a/b?x=1",
		"https://example.com:443":               "url:https://example.com/",
		"https://example.com:8443/x?":           "url:https://example.com:8443/x",
		"http://example.com:443/x":              "url:http://example.com:443/x",
		"http://[2001:DB8::1]:80/Path":          "url:http://[2001:db8::1]/Path",
		"https://cdn.example.com/a%20b.jpg":     "url:https://cdn.example.com/a%20b.jpg",
		"  https://cdn.example.com/x.jpg  ":     "url:https://cdn.example.com/x.jpg",
		"https://cdn.example.com/x.jpg?b=2&a=1": "url:https://cdn.example.com/x.jpg?b=2&a=1",
	}
	for in, want := range cases {
		got, err := Identity(Request{Type: TypeURL, URL: in})
		if err != nil || got != want {
			t.Errorf("Identity(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, err := Identity(Request{Type: TypeWhatsAppCloud, MediaID: "1234567890"}); err != nil || got != "whatsapp_cloud:1234567890" {
		t.Errorf("whatsapp identity = %q, %v", got, err)
	}
	for _, req := range []Request{
		{Type: TypeURL, URL: ""},
		{Type: TypeURL, URL: "not a url"},
		{Type: TypeURL, URL: "/relative/path"},
		{Type: TypeURL, URL: "https://example.com/" + strings.Repeat("a", 5000)},
		{Type: TypeURL, URL: "http://exa mple.com/"},
		{Type: TypeWhatsAppCloud, MediaID: "../me"},
		{Type: "twilio"},
		{Type: "carrier-pigeon"},
		{},
	} {
		_, err := Identity(req)
		e := wantKind(t, err, apperr.Invalid)
		if len(e.Fields) != 1 || !strings.HasPrefix(e.Fields[0].Pointer, "/source/") {
			t.Errorf("%+v: fields %+v", req, e.Fields)
		}
	}
}

func TestNormaliseSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	want := hex.EncodeToString(sum[:])
	for _, in := range []string{
		want,
		strings.ToUpper(want),
		" " + want + "\n",
		base64.StdEncoding.EncodeToString(sum[:]),
		base64.RawStdEncoding.EncodeToString(sum[:]),
		base64.URLEncoding.EncodeToString(sum[:]),
		base64.RawURLEncoding.EncodeToString(sum[:]),
	} {
		if got := NormaliseSHA256(in); got != want {
			t.Errorf("NormaliseSHA256(%q) = %q, want %q", in, got, want)
		}
	}
	short := sha256.Sum224([]byte("x"))
	for _, in := range []string{"", "xyz", want[:63], want + "0", base64.StdEncoding.EncodeToString(short[:]), strings.Repeat("g", 64)} {
		if got := NormaliseSHA256(in); got != "" {
			t.Errorf("NormaliseSHA256(%q) = %q, want \"\"", in, got)
		}
	}
}

func TestDeclaredSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	b64, want := base64.StdEncoding.EncodeToString(sum[:]), hex.EncodeToString(sum[:])
	cases := []struct {
		name, value, want string
	}{
		{"Repr-Digest", "sha-256=:" + b64 + ":", want},
		{"Content-Digest", "sha-512=:AAAA:, SHA-256=:" + b64 + ":", want},
		{"Digest", "MD5=abc, SHA-256=" + b64, want},
		{"Repr-Digest", "sha-256=" + b64, ""}, // not a byte sequence
		{"Repr-Digest", "sha-512=:" + b64 + ":", ""},
		{"X-Checksum", b64, ""},
	}
	for _, c := range cases {
		h := http.Header{}
		h.Set(c.name, c.value)
		if got := declaredSHA256(h); got != c.want {
			t.Errorf("%s: %s → %q, want %q", c.name, c.value, got, c.want)
		}
	}
}

func TestCleanFilename(t *testing.T) {
	cases := map[string]string{
		"report.pdf":             "report.pdf",
		"../../etc/passwd":       "passwd",
		`C:\Users\me\photo.jpg`:  "photo.jpg",
		"bad\r\nname.txt":        "badname.txt",
		"..":                     "",
		"":                       "",
		strings.Repeat("é", 300): strings.Repeat("é", 127), // 255 bytes at most, whole runes
	}
	for in, want := range cases {
		if got := cleanFilename(in); got != want {
			t.Errorf("cleanFilename(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMediaType(t *testing.T) {
	cases := map[string]string{
		"":                       "",
		"Image/JPEG":             "image/jpeg",
		"audio/ogg; codecs=opus": "audio/ogg",
		"text/plain; charset=":   "text/plain",
		"nonsense":               "",
		"video/mp4;;":            "video/mp4",
	}
	for in, want := range cases {
		if got := mediaType(in); got != want {
			t.Errorf("mediaType(%q) = %q, want %q", in, got, want)
		}
	}
}
