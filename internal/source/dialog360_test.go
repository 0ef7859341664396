package source

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
)

const testD360Key = "d360-test-key"

// dialog360Tenant needs no allowlist: the 360dialog host is configuration.
func dialog360Tenant(d *sourcetest.Dialog360) Settings {
	return Settings{Dialog360: Dialog360Settings{BaseURL: d.BaseURL, APIKey: d.APIKey}}
}

func fetchD360(f *Fetcher, id string) (*Result, error) {
	return f.Fetch(context.Background(), "t", Request{Type: TypeDialog360, MediaID: id})
}

func TestDialog360Fetch(t *testing.T) {
	d := sourcetest.NewDialog360(t, testD360Key)
	f := newTestFetcher(t, tenants{"t": dialog360Tenant(d)})
	cases := []struct {
		name string
		mime string
		opts []sourcetest.MediaOption
		file string
	}{
		{"hex sum", "audio/ogg; codecs=opus", nil, ""},
		{"base64 sum, number size", "image/jpeg", []sourcetest.MediaOption{sourcetest.WithChecksum(sourcetest.ChecksumBase64), sourcetest.WithFileSizeNumber()}, ""},
		{"url-safe unpadded sum, filename", "application/pdf", []sourcetest.MediaOption{sourcetest.WithChecksum(sourcetest.ChecksumBase64URLRaw), sourcetest.WithFilename("offer.pdf")}, "offer.pdf"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "20" + strings.Repeat("7", i+5)
			info := d.AddMedia(id, sourcetest.Generated(50_000+int64(i), uint64(i)), c.mime, c.opts...)
			r, err := fetchD360(f, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Identity != "dialog360:"+id || r.SHA256 != info.SHA256 || r.Size != info.Size ||
				r.MimeType != mediaType(c.mime) || r.Filename != c.file {
				t.Errorf("got %+v, want %+v", *r, info)
			}
			if n, sum := readAll(t, r); n != info.Size || sum != info.SHA256 {
				t.Errorf("body %d bytes sha %s", n, sum)
			}
			// The download went to 360dialog's host (the fake serves
			// nothing for lookaside.fbsbx.com), with the key it demands.
			if d.ResolvesOf(id) != 1 || d.DownloadsOf(id) != 1 {
				t.Errorf("resolves %d downloads %d", d.ResolvesOf(id), d.DownloadsOf(id))
			}
		})
	}
}

func TestDialog360ExpiredURLIsResolvedAgain(t *testing.T) {
	d := sourcetest.NewDialog360(t, testD360Key)
	info := d.AddMedia("777", sourcetest.Bytes([]byte("voice")), "audio/ogg")
	var once sync.Once
	d.OnResolve(func(string) { once.Do(func() { d.Advance(5*time.Minute + time.Second) }) })
	f := newTestFetcher(t, tenants{"t": dialog360Tenant(d)})
	r, err := fetchD360(f, "777")
	if err != nil {
		t.Fatal(err)
	}
	if _, sum := readAll(t, r); sum != info.SHA256 {
		t.Error("wrong body")
	}
	if d.Resolves() != 2 || d.Downloads() != 2 {
		t.Errorf("resolves %d downloads %d, want 2 and 2", d.Resolves(), d.Downloads())
	}

	d.OnResolve(func(string) { d.Advance(time.Hour) })
	_, err = fetchD360(f, "777")
	e := wantKind(t, err, apperr.Gone)
	wantDetail(t, e, "777", "HTTP 404", "7 days after a webhook")
}

func TestDialog360Errors(t *testing.T) {
	d := sourcetest.NewDialog360(t, testD360Key)
	d.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	d.SetError("131052", sourcetest.MetaError{Code: 131052, Message: "Media download error", Details: "Unable to download the media sent by the user."})
	d.SetError("4", sourcetest.MetaError{Status: 400, Code: 130429, RetryAfter: "5"})

	f := newTestFetcher(t, tenants{"t": dialog360Tenant(d)})
	_, err := fetchD360(f, "999")
	e := wantKind(t, err, apperr.Gone)
	wantDetail(t, e, "WhatsApp media ID 999 is unknown or has expired", "WhatsApp error 100, subcode 33", "7 days after a webhook")

	_, err = fetchD360(f, "131052")
	e = wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "131052", "media download error")

	_, err = fetchD360(f, "4")
	e = wantKind(t, err, apperr.Unavailable)
	wantDetail(t, e, "360dialog rate limit", "130429")
	if e.RetryAfter != 5*time.Second {
		t.Errorf("RetryAfter %v", e.RetryAfter)
	}

	s := dialog360Tenant(d)
	s.Dialog360.APIKey = "wrong-key"
	f = newTestFetcher(t, tenants{"t": s})
	_, err = fetchD360(f, "100")
	e = wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "360dialog rejected the tenant's API key", "HTTP 401", "dialog360.api_key")
	if strings.Contains(e.Error(), "wrong-key") {
		t.Errorf("error shows the key: %v", e)
	}
	if d.DownloadsOf("100") != 0 {
		t.Error("downloaded after a refused lookup")
	}
}

func TestDialog360Backoff(t *testing.T) {
	d := sourcetest.NewDialog360(t, testD360Key, sourcetest.WithThrottled(1, "2"))
	d.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	d.FailNext(sourcetest.Download, 1, sourcetest.Failure{Status: 500})
	f, sl := newRecordingFetcher(t, tenants{"t": dialog360Tenant(d)})
	r, err := fetchD360(f, "100")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r)
	if got := sl.all(); len(got) != 2 || got[0] != 2*time.Second || got[1] != defaultBackoffBase {
		t.Errorf("slept %v, want [2s %v]", got, defaultBackoffBase)
	}
}

// TestDialog360KeyStaysWithDialog360: the key goes to the 360dialog host
// for both calls; not to Meta, and not to wherever a download redirects.
func TestDialog360KeyStaysWithDialog360(t *testing.T) {
	cdn := sourcetest.NewOrigin(t)
	cdn.Serve("/bytes", sourcetest.Bytes([]byte("jpeg")), "image/jpeg")
	proxy := sourcetest.NewOrigin(t)
	proxy.Handle("/123", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "123", "mime_type": "image/jpeg", "file_size": "4",
			"url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=123&ext=1&hash=abc",
		})
	}))
	proxy.Redirect("/whatsapp_business/attachments/", cdn.URL+"/bytes")
	f := newTestFetcher(t, tenants{"t": {
		Dialog360: Dialog360Settings{BaseURL: proxy.URL, APIKey: testD360Key},
		Allowlist: []string{cdn.HostPort()},
	}})
	r, err := fetchD360(f, "123")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := readAll(t, r); n != 4 {
		t.Errorf("read %d bytes", n)
	}
	reqs := proxy.Requests()
	if len(reqs) != 2 || reqs[1].Path != "/whatsapp_business/attachments/" {
		t.Fatalf("360dialog saw %+v", reqs)
	}
	for _, req := range reqs {
		if req.Header.Get("D360-API-KEY") != testD360Key || req.Header.Get("Authorization") != "" {
			t.Errorf("%s: headers %v", req.Path, req.Header)
		}
	}
	if got := cdn.Requests()[0].Header; got.Get("D360-API-KEY") != "" || got.Get("Referer") != "" {
		t.Errorf("redirect target got the key or a Referer: %v", got)
	}
}

func TestDialog360Config(t *testing.T) {
	f := newTestFetcher(t, tenants{"t": {}})
	_, err := fetchD360(f, "123")
	e := wantKind(t, err, apperr.Invalid)
	wantDetail(t, e, "dialog360.api_key")
	if len(e.Fields) != 1 || e.Fields[0].Pointer != "/source/type" {
		t.Errorf("fields %+v", e.Fields)
	}
	for _, base := range []string{"ftp://waba.example", "waba-v2.360dialog.io", "https://k:s@waba.example"} {
		f := newTestFetcher(t, tenants{"t": {Dialog360: Dialog360Settings{BaseURL: base, APIKey: "k"}}})
		_, err := fetchD360(f, "123")
		e := wantKind(t, err, apperr.BadGateway)
		wantDetail(t, e, "dialog360.base_url")
	}
	for _, id := range []string{"", "../x", "1/2"} {
		_, err := fetchD360(f, id)
		e := wantKind(t, err, apperr.Invalid)
		if len(e.Fields) != 1 || e.Fields[0].Pointer != "/source/media_id" {
			t.Errorf("%q: fields %+v", id, e.Fields)
		}
	}
	if got, err := Identity(Request{Type: TypeDialog360, MediaID: "1234567890"}); err != nil || got != "dialog360:1234567890" {
		t.Errorf("identity %q, %v", got, err)
	}
}
