package make_test

// The live test runs the app's requests against the real service, started
// in-process as api/harness_test.go starts it: real Redis (internal/testenv),
// a file store, a loopback origin serving real media bytes, queue workers
// for webhook deliveries, and a loopback receiver standing in for Make's
// webhook URL. Every request the app sends and every answer it gets is also
// checked against openapi.yaml.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/app"
	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/config"
	"github.com/chatvault/chatvault/internal/mediatest"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
	"github.com/chatvault/chatvault/internal/testenv"
)

const (
	keyMake = "cvk_test_make_acme"
	keyTiny = "cvk_test_make_tiny"
)

// service is one running chatvault with its stand-ins.
type service struct {
	URL      string
	origin   *sourcetest.Origin
	receiver *receiver
}

// delivery is one webhook call the receiver got.
type delivery struct {
	Header http.Header
	Body   []byte
}

// receiver stands in for a Make webhook URL.
type receiver struct {
	srv *httptest.Server
	got chan delivery
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: make(chan delivery, 16)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if req.Method == http.MethodPost {
			r.got <- delivery{Header: req.Header.Clone(), Body: body}
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("Accepted"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) hostPort() string { return r.srv.Listener.Addr().String() }

// wait returns the next delivery, or fails after d.
func (r *receiver) wait(t *testing.T, d time.Duration) delivery {
	t.Helper()
	select {
	case got := <-r.got:
		return got
	case <-time.After(d):
		t.Fatalf("the webhook receiver got nothing within %s", d)
		return delivery{}
	}
}

func newService(t *testing.T) *service {
	t.Helper()
	_, prefix := testenv.Redis(t)
	s := &service{origin: sourcetest.NewOrigin(t), receiver: newReceiver(t)}
	yaml := fmt.Sprintf(`tenants:
  - id: acme
    api_keys:
      - {id: make, hash: %q, scopes: [media:write, media:read, media:tag, hooks:manage]}
    url_allowlist: [%q, %q]
  - id: tiny
    api_keys:
      - {id: make, hash: %q, scopes: [media:read]}
    rate_limit: {key: "2/1h", key_burst: 2, tenant: "100/1m", tenant_burst: 100}
`, auth.HashKey(keyMake), s.origin.HostPort(), s.receiver.hostPort(), auth.HashKey(keyTiny))
	cfgPath := filepath.Join(t.TempDir(), "chatvault.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"REDIS_URL":                testenv.RedisURL(),
		"CHATVAULT_REDIS_PREFIX":   prefix,
		"STORAGE_URL":              testenv.FileStore(t),
		"CHATVAULT_CONFIG":         cfgPath,
		"CHATVAULT_SIGNING_SECRET": "test-signing-secret",
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := app.Build(context.Background(), cfg, log, app.Contract{Spec: spec, Schemas: os.DirFS(schemasDir)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.RunWorkers(ctx, 2, log) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("workers: %v", err)
		}
		a.Close()
	})
	s.URL = srv.URL
	return s
}

// contractObserver checks every request the app sends and every answer it
// gets against openapi.yaml.
func contractObserver(t *testing.T) exchange {
	check := loadChecker(t)
	return func(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
		t.Helper()
		if err := check.CheckRequest(req, reqBody); err != nil {
			t.Errorf("the app sent %s %s, which openapi.yaml does not allow: %v\nbody: %.600s", req.Method, req.URL.Path, err, reqBody)
		}
		if err := check.CheckResponse(req, status, header, body); err != nil {
			t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %.600s", req.Method, req.URL.Path, status, err, body)
		}
	}
}

func mustOK(t *testing.T, what string, r makeResult) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("%s: %v (status %d, body %.600s)", what, r.Err, r.Status, r.RawBody)
	}
}

func only(t *testing.T, what string, r makeResult) map[string]any {
	t.Helper()
	mustOK(t, what, r)
	if len(r.Outputs) != 1 {
		t.Fatalf("%s: %d bundles, want 1", what, len(r.Outputs))
	}
	m, ok := r.Outputs[0].(map[string]any)
	if !ok {
		t.Fatalf("%s: the bundle is %T, want an object", what, r.Outputs[0])
	}
	return m
}

var idemKeyPattern = regexp.MustCompile(`^make-[0-9a-f]{64}$`)

func TestLive(t *testing.T) {
	a := loadApp(t)
	s := newService(t)
	check := loadChecker(t)
	mk := newRunner(t, a, s.URL, keyMake, contractObserver(t))

	voice := s.origin.URL + "/voice.ogg"
	s.origin.Serve("/voice.ogg", sourcetest.Bytes(mediatest.OggOpus(4000, 1)), "audio/ogg")
	archiveParams := map[string]any{
		"customerId":  "wa:4915112345678",
		"sourceType":  "url",
		"url":         voice,
		"kind":        "audio",
		"messageId":   "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
		"messageFrom": "4915112345678",
		"caption":     "my order",
		"tags":        []any{"Voice-Note"},
		"metadata":    []any{map[string]any{"key": "hubspot_contact_id", "value": "901"}},
	}
	var mediaID string

	t.Run("connection", func(t *testing.T) {
		mk := mk.in(t)
		r := mk.testConnection()
		mustOK(t, "connection test", r)
		if got := text(r.Metadata["value"]); got != "acme / make" {
			t.Errorf("connection label = %q, want %q", got, "acme / make")
		}
		bad := newRunner(t, a, s.URL, "cvk_wrong", contractObserver(t)).testConnection()
		if bad.Err == nil || bad.Status != http.StatusUnauthorized {
			t.Fatalf("a wrong key passed the connection test: %+v", bad)
		}
		if !strings.HasPrefix(bad.Err.Message, "[401] ") {
			t.Errorf("connection error message = %q, want it to start with [401]", bad.Err.Message)
		}
	})

	t.Run("archiveMedia", func(t *testing.T) {
		mk := mk.in(t)
		first := mk.module("archiveMedia", archiveParams)
		rec := only(t, "archive", first)
		if first.Status != http.StatusCreated {
			t.Errorf("first archive: status %d, want 201", first.Status)
		}
		mediaID = text(rec["id"])
		if !strings.HasPrefix(mediaID, "med_") {
			t.Fatalf("archive returned id %q", mediaID)
		}
		crm := asMap(rec["crm_fields"])
		if crm["type"] != "audio" || crm["tags"] != "voice-note" || crm["url"] == "" || crm["received_at"] == "" {
			t.Errorf("crm_fields = %v", crm)
		}
		if md := asMap(rec["metadata"]); md["hubspot_contact_id"] != "901" {
			t.Errorf("metadata = %v, want hubspot_contact_id 901 (sent as a key/value array)", md)
		}
		key := first.Sent[0].Header.Get("Idempotency-Key")
		if !idemKeyPattern.MatchString(key) {
			t.Errorf("Idempotency-Key = %q, want make- and a SHA-256", key)
		}

		// A rerun of the same bundle (Make retrying, or a user rerunning an
		// incomplete execution) sends the same key and gets the stored answer.
		again := mk.module("archiveMedia", archiveParams)
		rec2 := only(t, "archive again", again)
		if k := again.Sent[0].Header.Get("Idempotency-Key"); k != key {
			t.Errorf("the same inputs gave another Idempotency-Key: %q, then %q", key, k)
		}
		if rec2["id"] != mediaID || again.Header.Get("Idempotent-Replayed") != "true" || again.Status != http.StatusCreated {
			t.Errorf("repeat: id %v, status %d, Idempotent-Replayed %q; want %s, 201 replayed", rec2["id"], again.Status, again.Header.Get("Idempotent-Replayed"), mediaID)
		}

		// Other inputs give another key; the source is the same, so the
		// service's own dedupe answers with the existing record.
		other := map[string]any{}
		for k, v := range archiveParams {
			other[k] = v
		}
		other["caption"] = "my order, second try"
		third := mk.module("archiveMedia", other)
		rec3 := only(t, "archive with another caption", third)
		if third.Sent[0].Header.Get("Idempotency-Key") == key {
			t.Error("different inputs gave the same Idempotency-Key")
		}
		if rec3["id"] != mediaID || third.Status != http.StatusOK {
			t.Errorf("same source again: id %v, status %d; want %s and 200", rec3["id"], third.Status, mediaID)
		}
	})

	t.Run("tagMedia", func(t *testing.T) {
		mk := mk.in(t)
		if mediaID == "" {
			t.Skip("archiveMedia failed")
		}
		r := mk.module("tagMedia", map[string]any{"mediaId": mediaID, "add": []any{"VIP", "follow-up"}, "remove": []any{"voice-note"}})
		rec := only(t, "tag", r)
		if got := fmt.Sprint(rec["tags"]); got != "[follow-up vip]" {
			t.Errorf("tags = %s, want [follow-up vip]", got)
		}
		if got := asMap(rec["crm_fields"])["tags"]; got != "follow-up,vip" {
			t.Errorf("crm_fields.tags = %v", got)
		}
		missing := mk.module("tagMedia", map[string]any{"mediaId": "med_01JD8X3QK2V7M9TW4R6YB5N0CE", "add": []any{"vip"}})
		if missing.Err == nil || missing.Err.Type != "DataError" || !strings.HasPrefix(missing.Err.Message, "[404] ") {
			t.Errorf("tagging an unknown media: %+v, want a DataError [404]", missing.Err)
		}
	})

	t.Run("listTags", func(t *testing.T) {
		mk := mk.in(t)
		if mediaID == "" {
			t.Skip("archiveMedia failed")
		}
		r := mk.rpc("listTags", nil)
		mustOK(t, "listTags", r)
		found := false
		for _, o := range r.Outputs {
			m := asMap(o)
			if m["label"] == "vip" && m["value"] == "vip" {
				found = true
			}
		}
		if !found {
			t.Errorf("listTags options = %v, want {label: vip, value: vip} among them", r.Outputs)
		}
	})

	t.Run("listCustomerMedia", func(t *testing.T) {
		mk := mk.in(t)
		customer := "hubspot:90210"
		base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
		var ids []string // newest first
		for i := 0; i < 5; i++ {
			path := fmt.Sprintf("/notes/%d.ogg", i)
			s.origin.Serve(path, sourcetest.Bytes(mediatest.OggOpus(1500, uint64(100+i))), "audio/ogg")
			kind := "audio"
			if i == 2 {
				path = "/notes/invoice.pdf"
				s.origin.Serve(path, sourcetest.Bytes(mediatest.PDF(1500, 7)), "application/pdf")
				kind = "document"
			}
			rec := only(t, "archive "+path, mk.module("archiveMedia", map[string]any{
				"customerId":       customer,
				"sourceType":       "url",
				"url":              s.origin.URL + path,
				"kind":             kind,
				"messageTimestamp": base.Add(time.Duration(i) * time.Hour).Format("2006-01-02T15:04:05.000Z"),
			}))
			ids = append([]string{text(rec["id"])}, ids...)
		}

		all := mk.module("listCustomerMedia", map[string]any{"customerId": customer, "limit": 50.0, "pageSize": 2.0})
		mustOK(t, "list", all)
		if got := bundleIDs(all.Outputs); !slices.Equal(got, ids) {
			t.Errorf("list = %v, want %v (newest first)", got, ids)
		}
		if len(all.Sent) != 3 {
			t.Errorf("5 records in pages of 2 took %d requests, want 3", len(all.Sent))
		}
		for i, req := range all.Sent {
			cursor := req.URL.Query().Get("cursor")
			if (i == 0) != (cursor == "") {
				t.Errorf("request %d: cursor %q", i+1, cursor)
			}
			if req.URL.Query().Get("limit") != "2" {
				t.Errorf("request %d: page size %q, want 2", i+1, req.URL.Query().Get("limit"))
			}
		}

		capped := mk.module("listCustomerMedia", map[string]any{"customerId": customer, "limit": 3.0, "pageSize": 2.0})
		mustOK(t, "list with a limit", capped)
		if got := bundleIDs(capped.Outputs); !slices.Equal(got, ids[:3]) || len(capped.Sent) != 2 {
			t.Errorf("limit 3: %v in %d requests, want %v in 2", got, len(capped.Sent), ids[:3])
		}

		for _, o := range all.Outputs {
			if err := check.CheckSchema("media.json", mustJSON(t, o)); err != nil {
				t.Errorf("a bundle is not a Media record: %v", err)
			}
		}
	})

	// Kind, since and until filter on source.received_at, and the list is
	// newest first by it (openapi.yaml, listCustomerMedia). The media are
	// archived in another order than they were received, so a list by
	// archive time would show.
	t.Run("listCustomerMedia_receivedAt", func(t *testing.T) {
		mk := mk.in(t)
		customer := "wa:4930123456"
		base := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
		hours := []int{3, 1, 4, 2, 0} // received at base + hours, archived in this order
		byHour := map[int]string{}
		for i, h := range hours {
			path := fmt.Sprintf("/received/%d.ogg", h)
			kind := "audio"
			content := mediatest.OggOpus(1500, uint64(200+i))
			if h == 2 {
				path, kind, content = "/received/2.pdf", "document", mediatest.PDF(1500, 9)
			}
			s.origin.Serve(path, sourcetest.Bytes(content), "")
			rec := only(t, "archive "+path, mk.module("archiveMedia", map[string]any{
				"customerId":       customer,
				"sourceType":       "url",
				"url":              s.origin.URL + path,
				"kind":             kind,
				"messageTimestamp": base.Add(time.Duration(h) * time.Hour).Format("2006-01-02T15:04:05.000Z"),
			}))
			byHour[h] = text(rec["id"])
		}
		want := []string{byHour[4], byHour[3], byHour[2], byHour[1], byHour[0]}
		all := mk.module("listCustomerMedia", map[string]any{"customerId": customer, "limit": 50.0, "pageSize": 2.0})
		mustOK(t, "list", all)
		if got := bundleIDs(all.Outputs); !slices.Equal(got, want) {
			t.Errorf("list = %v, want %v (newest received first)", got, want)
		}
		audio := mk.module("listCustomerMedia", map[string]any{
			"customerId": customer, "kind": "audio", "limit": 50.0,
			"since": base.Add(time.Hour).Format(time.RFC3339), "until": base.Add(4 * time.Hour).Format(time.RFC3339),
		})
		mustOK(t, "list filtered", audio)
		// Audio received from hour 1 (inclusive) to hour 4 (exclusive):
		// hours 3 and 1; hour 2 is the document.
		if got := bundleIDs(audio.Outputs); !slices.Equal(got, []string{byHour[3], byHour[1]}) {
			t.Errorf("audio received in [1h, 4h) = %v, want %v", got, []string{byHour[3], byHour[1]})
		}
	})

	t.Run("watchNewMedia", func(t *testing.T) {
		mk := mk.in(t)
		hookParams := map[string]any{"kind": "audio"}
		attached := mk.attach("newMedia", s.receiver.srv.URL+"/make/hook-7f3a", hookParams)
		mustOK(t, "attach", attached)
		hookID := text(attached.Data["externalHookId"])
		if !strings.HasPrefix(hookID, "hook_") {
			t.Fatalf("attach stored %v, want the hook ID", attached.Data)
		}
		secret := text(asMap(attached.Body)["secret"])

		s.origin.Serve("/new.ogg", sourcetest.Bytes(mediatest.OggOpus(2500, 42)), "audio/ogg")
		rec := only(t, "archive for the trigger", mk.module("archiveMedia", map[string]any{
			"customerId": "wa:4917000000042", "sourceType": "url", "url": s.origin.URL + "/new.ogg",
		}))

		got := s.receiver.wait(t, 30*time.Second)
		if et := got.Header.Get("Chatvault-Event-Type"); et != "media.archived" {
			t.Errorf("delivery event type %q", et)
		}
		if secret != "" && !validSignature(secret, got.Header.Get("Chatvault-Signature"), got.Body) {
			t.Errorf("delivery signature %q does not verify with the hook's secret", got.Header.Get("Chatvault-Signature"))
		}
		if err := check.CheckSchema("event.json", got.Body); err != nil {
			t.Errorf("the delivery is not an event of schemas/event.json: %v", err)
		}
		bundle := asMap(incoming(t, a, "newMedia", got.Body, got.Header))
		if bundle["id"] != rec["id"] {
			t.Fatalf("the trigger's bundle is %v, want the media %v", bundle["id"], rec["id"])
		}
		if err := check.CheckSchema("media.json", mustJSON(t, bundle)); err != nil {
			t.Errorf("the trigger's bundle is not a Media record: %v", err)
		}

		detached := mk.detach("newMedia", hookParams, attached.Data)
		mustOK(t, "detach", detached)
		if detached.Status != http.StatusNoContent {
			t.Errorf("detach: status %d, want 204", detached.Status)
		}
		again := mk.detach("newMedia", hookParams, attached.Data)
		if again.Err == nil || again.Status != http.StatusNotFound {
			t.Errorf("detaching twice: status %d, error %v; want 404", again.Status, again.Err)
		}
	})

	// Watch Processed Media fires once processing has probed a record and
	// made its renditions: for a real voice note with the playable MP3, for
	// bytes ffprobe cannot read with the failure.
	t.Run("watchProcessedMedia", func(t *testing.T) {
		needFFmpeg(t)
		mk := mk.in(t)
		customer := "wa:4917000000077"
		hookParams := map[string]any{"customerId": customer, "kind": "audio"}
		attached := mk.attach("processedMedia", s.receiver.srv.URL+"/make/hook-processed", hookParams)
		mustOK(t, "attach", attached)
		if events := asMap(attached.Body)["events"]; fmt.Sprint(events) != "[media.processed]" {
			t.Errorf("the hook subscribes to %v, want [media.processed]", events)
		}
		secret := text(asMap(attached.Body)["secret"])

		// receive waits for the next delivery and turns it into the trigger's bundle.
		receive := func(what string) map[string]any {
			t.Helper()
			got := s.receiver.wait(t, 2*time.Minute)
			if et := got.Header.Get("Chatvault-Event-Type"); et != "media.processed" {
				t.Fatalf("%s: delivery event type %q, want media.processed", what, et)
			}
			if secret != "" && !validSignature(secret, got.Header.Get("Chatvault-Signature"), got.Body) {
				t.Errorf("%s: the delivery signature does not verify", what)
			}
			if err := check.CheckSchema("event.json", got.Body); err != nil {
				t.Errorf("%s: the delivery is not an event of schemas/event.json: %v", what, err)
			}
			bundle := asMap(incoming(t, a, "processedMedia", got.Body, got.Header))
			if err := check.CheckSchema("media.json", mustJSON(t, bundle)); err != nil {
				t.Errorf("%s: the trigger's bundle is not a Media record: %v", what, err)
			}
			return bundle
		}

		s.origin.Serve("/processed/voice.ogg", sourcetest.Bytes(mediatest.Make(t, mediatest.VoiceNote)), "audio/ogg")
		rec := only(t, "archive a real voice note", mk.module("archiveMedia", map[string]any{
			"customerId": customer, "sourceType": "url", "url": s.origin.URL + "/processed/voice.ogg",
		}))
		if state := asMap(rec["processing"])["state"]; state != "pending" {
			t.Errorf("processing on archive = %v, want pending", state)
		}
		done := receive("voice note")
		if done["id"] != rec["id"] {
			t.Fatalf("the bundle is the media %v, want %v", done["id"], rec["id"])
		}
		if p := asMap(done["processing"]); p["state"] != "done" {
			t.Fatalf("processing = %v, want done", p)
		}
		if ms, _ := done["duration_ms"].(float64); ms < 9500 || ms > 10500 || done["audio_codec"] != "opus" {
			t.Errorf("duration_ms %v, audio_codec %v; want about 10000 and opus", done["duration_ms"], done["audio_codec"])
		}
		renditions, _ := done["renditions"].([]any)
		if len(renditions) != 1 || asMap(renditions[0])["name"] != "mp3" || asMap(renditions[0])["mime_type"] != "audio/mpeg" {
			t.Fatalf("renditions = %v, want one mp3", renditions)
		}
		crm := asMap(done["crm_fields"])
		if crm["duration"] != "10.0" {
			t.Errorf("crm_fields.duration = %v, want 10.0", crm["duration"])
		}
		playable := text(crm["playable_url"])
		if !strings.Contains(playable, "rendition=mp3") {
			t.Fatalf("crm_fields.playable_url = %q, want the mp3 rendition's", playable)
		}
		// What a CRM does with the link: fetch it without a key. Events are
		// rendered with the service's public URL, which this in-process
		// service does not have, so the same path and query go to it.
		u, err := url.Parse(playable)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(s.URL + u.RequestURI())
		if err != nil {
			t.Fatal(err)
		}
		mp3, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/mpeg" || len(mp3) == 0 {
			t.Errorf("GET playable_url: %d %q, %d bytes; want 200 audio/mpeg", resp.StatusCode, resp.Header.Get("Content-Type"), len(mp3))
		}
		if sum := sha256.Sum256(mp3); hex.EncodeToString(sum[:]) != asMap(renditions[0])["sha256"] {
			t.Errorf("the playable URL's bytes are not the mp3 rendition's (sha256)")
		}

		// Bytes that only look like Ogg: the probe fails, and the trigger
		// fires with the failure.
		s.origin.Serve("/processed/broken.ogg", sourcetest.Bytes(mediatest.OggOpus(3000, 77)), "audio/ogg")
		broken := only(t, "archive a broken voice note", mk.module("archiveMedia", map[string]any{
			"customerId": customer, "sourceType": "url", "url": s.origin.URL + "/processed/broken.ogg",
		}))
		failed := receive("broken voice note")
		p := asMap(failed["processing"])
		if failed["id"] != broken["id"] || p["state"] != "failed" || len(p["failures"].([]any)) == 0 {
			t.Errorf("broken voice note: id %v, processing %v; want %v failed with failures", failed["id"], p, broken["id"])
		}
		if crm := asMap(failed["crm_fields"]); crm["playable_url"] != "" {
			t.Errorf("broken voice note: crm_fields.playable_url = %v, want empty", crm["playable_url"])
		}

		detached := mk.detach("processedMedia", hookParams, attached.Data)
		mustOK(t, "detach", detached)
		if detached.Status != http.StatusNoContent {
			t.Errorf("detach: status %d, want 204", detached.Status)
		}
	})

	t.Run("errors", func(t *testing.T) {
		// A wrong key is the caller's mistake: a DataError with the
		// service's detail.
		bad := newRunner(t, a, s.URL, "cvk_wrong", contractObserver(t)).rpc("listTags", nil)
		if bad.Err == nil || bad.Err.Type != "DataError" || !strings.HasPrefix(bad.Err.Message, "[401] ") || len(bad.Err.Message) < len("[401] x") {
			t.Errorf("a wrong key: %+v, want a DataError [401] with a detail", bad.Err)
		}

		// The tiny tenant's key may make 2 requests an hour: the third is
		// a RateLimitError, which Make retries later instead of stopping
		// the scenario.
		tiny := newRunner(t, a, s.URL, keyTiny, contractObserver(t))
		var last makeResult
		for i := 0; i < 3; i++ {
			last = tiny.rpc("listTags", nil)
		}
		if last.Err == nil || last.Err.Type != "RateLimitError" || last.Status != http.StatusTooManyRequests {
			t.Fatalf("the third request of a 2/h key: %+v (status %d), want a RateLimitError", last.Err, last.Status)
		}
		if ra := last.Header.Get("Retry-After"); ra == "" || !strings.Contains(last.Err.Message, "Retry after "+ra+" s") {
			t.Errorf("rate limit message %q does not carry Retry-After %q", last.Err.Message, ra)
		}
	})
}

// TestErrorMappingOfServerErrors checks that 5xx answers, and 409 (the same
// Idempotency-Key still running, or a tag change racing another), become
// ConnectionErrors, which Make retries later, against a stand-in that fails
// on purpose.
func TestErrorMappingOfServerErrors(t *testing.T) {
	a := loadApp(t)
	for _, status := range []int{409, 500, 502, 503, 504} {
		stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:chatvault:problem:unavailable", "title": "Unavailable",
				"status": status, "detail": "storage is not answering", "instance": r.URL.Path, "request_id": "r1"})
		}))
		r := newRunner(t, a, stub.URL, keyMake, nil).rpc("listTags", nil)
		stub.Close()
		if r.Err == nil || r.Err.Type != "ConnectionError" || !strings.Contains(r.Err.Message, "storage is not answering") {
			t.Errorf("%d: %+v, want a ConnectionError with the detail", status, r.Err)
		}
	}
	// Anything else 4xx is a DataError with the detail.
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"title":"Unprocessable","detail":"sha256 does not match the fetched bytes"}`))
	}))
	defer stub.Close()
	r := newRunner(t, a, stub.URL, keyMake, nil).rpc("listTags", nil)
	if r.Err == nil || r.Err.Type != "DataError" || r.Err.Message != "[422] sha256 does not match the fetched bytes" {
		t.Errorf("422: %+v", r.Err)
	}
}

// TestBaseSanitizesTheKey checks the Base keeps the API key out of Make's
// logs.
func TestBaseSanitizesTheKey(t *testing.T) {
	a := loadApp(t)
	for where, spec := range map[string]map[string]any{
		"base":       a.Base,
		"connection": a.get("connection", "chatvault").request("communication"),
	} {
		sanitize, _ := asMap(spec["log"])["sanitize"].([]any)
		if !slices.Contains(sanitize, any("request.headers.authorization")) {
			t.Errorf("%s: log.sanitize %v does not hide request.headers.authorization", where, sanitize)
		}
	}
}

// needFFmpeg skips a test that needs media processing when ffmpeg is not
// installed (the service then runs without processing), or fails it when $CI
// is set, as internal/browsertest does with Chromium: the test command
// installs ffmpeg, so a CI run without it is broken, not incomplete.
func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not on PATH: run scripts/install-ffmpeg.sh", bin)
			}
			t.Skipf("%s is not on PATH (scripts/install-ffmpeg.sh installs it)", bin)
		}
	}
}

func bundleIDs(outputs []any) []string {
	var ids []string
	for _, o := range outputs {
		ids = append(ids, text(asMap(o)["id"]))
	}
	return ids
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validSignature checks Chatvault-Signature as docs/EVENTS.md describes it:
// t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>.
func validSignature(secret, header string, body []byte) bool {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := hex.EncodeToString(mac.Sum(nil))
	return ts != "" && hmac.Equal([]byte(sig), []byte(want))
}
