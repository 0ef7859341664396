package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/mediatest"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
	"github.com/chatvault/chatvault/internal/testenv"
)

// metaMessage is one media message in Meta's webhook shape.
func metaMessage(from, wamid, typ, mediaID string, fields map[string]any) map[string]any {
	obj := map[string]any{"id": mediaID}
	for k, v := range fields {
		obj[k] = v
	}
	return map[string]any{"from": from, "id": wamid, "timestamp": "1732520000", "type": typ, typ: obj}
}

// metaPayload wraps messages as Meta's webhook does.
func metaPayload(contacts []map[string]any, messages ...map[string]any) []byte {
	body, _ := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id": "102290129340398",
			"changes": []any{map[string]any{
				"field": "messages",
				"value": map[string]any{
					"messaging_product": "whatsapp",
					"metadata":          map[string]any{"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
					"contacts":          contacts,
					"messages":          messages,
				},
			}},
		}},
	})
	return body
}

func contact(waID, name string) map[string]any {
	return map[string]any{"profile": map[string]any{"name": name}, "wa_id": waID}
}

func metaSign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(metaAppSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// postMeta delivers a payload as Meta does: raw JSON with the signature.
func (e *env) postMeta(body []byte, sig string) response {
	e.t.Helper()
	h := []string{}
	if sig != "" {
		h = append(h, "X-Hub-Signature-256", sig)
	}
	return e.do("POST", "/v1/webhooks/whatsapp/acme", "", body, h...)
}

// waitList polls a customer's media until want records are listed.
func (e *env) waitList(customer string, want int) []map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := e.do("GET", "/v1/customers/"+url.PathEscape(customer)+"/media?limit=200", keyAcme, nil)
		var out []map[string]any
		for _, d := range r.JSON(e.t)["data"].([]any) {
			out = append(out, d.(map[string]any))
		}
		if len(out) >= want || time.Now().After(deadline) {
			if len(out) != want {
				e.t.Fatalf("customer %s has %d media, want %d", customer, len(out), want)
			}
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetaWebhookArchivesEveryKind: one delivery with each media type is
// acknowledged at once and archived by the workers, tagged by the rules.
func TestMetaWebhookArchivesEveryKind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	voice := mediatest.OggOpus(12_000, 30)
	e.graph.AddMedia("1001", sourcetest.Bytes(voice), "audio/ogg", sourcetest.WithChecksum(sourcetest.ChecksumBase64))
	e.graph.AddMedia("1002", sourcetest.Bytes(mediatest.PNG(20, 20)), "image/jpeg")
	e.graph.AddMedia("1003", sourcetest.Bytes(mediatest.PDF(5000, 31)), "application/pdf")
	e.graph.AddMedia("1004", sourcetest.Bytes(mediatest.PNG(16, 16)), "image/webp")
	e.graph.AddMedia("1005", sourcetest.Bytes(mediatest.MP4(9000, 32)), "video/mp4")
	vsum := sha256.Sum256(voice)
	from := "4915112345678"
	body := metaPayload([]map[string]any{contact(from, "Erika")},
		metaMessage(from, "wamid.A1", "audio", "1001", map[string]any{"mime_type": "audio/ogg; codecs=opus", "sha256": base64.StdEncoding.EncodeToString(vsum[:]), "voice": true}),
		metaMessage(from, "wamid.A2", "image", "1002", map[string]any{"mime_type": "image/jpeg", "caption": "Rechnung März"}),
		metaMessage(from, "wamid.A3", "document", "1003", map[string]any{"mime_type": "application/pdf", "filename": "invoice-42.pdf", "caption": "invoice"}),
		metaMessage(from, "wamid.A4", "sticker", "1004", map[string]any{"mime_type": "image/webp", "animated": false}),
		metaMessage(from, "wamid.A5", "video", "1005", map[string]any{"mime_type": "video/mp4"}),
	)
	r := e.postMeta(body, metaSign(body))
	mustStatus(t, r, 200)
	if ack := r.JSON(t); ack["queued"].(float64) != 5 {
		t.Fatalf("ack %v", ack)
	}
	got := map[string]map[string]any{}
	for _, m := range e.waitList("wa:"+from, 5) {
		got[m["source"].(map[string]any)["message_id"].(string)] = m
	}
	check := func(wamid, kind, tags string) {
		m := got[wamid]
		if m == nil {
			t.Fatalf("%s not archived", wamid)
		}
		if m["kind"] != kind || fmt.Sprint(m["tags"]) != tags {
			t.Errorf("%s: kind %v tags %v, want %s %s", wamid, m["kind"], m["tags"], kind, tags)
		}
	}
	check("wamid.A1", "audio", "[voice-note]")
	check("wamid.A2", "image", "[invoice visual]")
	check("wamid.A3", "document", "[invoice]")
	check("wamid.A4", "sticker", "[]")
	check("wamid.A5", "video", "[visual]")
	if got["wamid.A1"]["sha256"] != hex.EncodeToString(vsum[:]) {
		t.Error("voice note checksum")
	}
	if got["wamid.A3"]["filename"] != "invoice-42.pdf" || got["wamid.A2"]["caption"] != "Rechnung März" {
		t.Error("filename or caption lost")
	}
	if got["wamid.A1"]["source"].(map[string]any)["from"] != from {
		t.Error("sender lost")
	}
}

// TestMetaWebhookExactlyOnce: Meta retries the same delivery many times,
// some at once; one record results per media.
func TestMetaWebhookExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.graph.AddMedia("2001", sourcetest.Bytes(mediatest.OggOpus(8000, 33)), "audio/ogg")
	body := metaPayload([]map[string]any{contact("4911", "A")}, metaMessage("4911", "wamid.B1", "audio", "2001", map[string]any{"mime_type": "audio/ogg", "voice": true}))
	sig := metaSign(body)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mustStatus(t, e.postMeta(body, sig), 200)
		}()
	}
	wg.Wait()
	e.waitList("wa:4911", 1)
	time.Sleep(200 * time.Millisecond) // let any stray job finish before the recount
	e.waitList("wa:4911", 1)
	if n := e.graph.DownloadsOf("2001"); n != 1 {
		t.Errorf("downloaded %d times", n)
	}
}

// TestMetaWebhookBurst: messages from many customers at once are all archived.
func TestMetaWebhookBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("30%02d", i)
		waID := fmt.Sprintf("49170%04d", i)
		e.graph.AddMedia(id, sourcetest.Bytes(mediatest.OggOpus(4000, uint64(100+i))), "audio/ogg")
		body := metaPayload([]map[string]any{contact(waID, "C")}, metaMessage(waID, "wamid.C"+id, "audio", id, map[string]any{"mime_type": "audio/ogg"}))
		wg.Add(1)
		go func() {
			defer wg.Done()
			mustStatus(t, e.postMeta(body, metaSign(body)), 200)
		}()
	}
	wg.Wait()
	for i := 0; i < 40; i++ {
		e.waitList(fmt.Sprintf("wa:49170%04d", i), 1)
	}
}

// TestMetaWebhookChecks: the handshake, signatures, and what is ignored.
func TestMetaWebhookChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ok := e.do("GET", "/v1/webhooks/whatsapp/acme?hub.mode=subscribe&hub.verify_token="+metaVerifyToken+"&hub.challenge=1158201444", "", nil)
	mustStatus(t, ok, 200)
	if string(ok.Body) != "1158201444" {
		t.Fatalf("challenge answer %q", ok.Body)
	}
	mustStatus(t, e.do("GET", "/v1/webhooks/whatsapp/acme?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", "", nil), 403)
	mustStatus(t, e.do("GET", "/v1/webhooks/whatsapp/nobody?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1", "", nil), 404)

	e.graph.AddMedia("4001", sourcetest.Bytes(mediatest.OggOpus(100, 34)), "audio/ogg")
	body := metaPayload([]map[string]any{contact("4922", "D")}, metaMessage("4922", "wamid.D1", "audio", "4001", map[string]any{"mime_type": "audio/ogg"}))
	mustStatus(t, e.postMeta(body, ""), 401)
	mustStatus(t, e.postMeta(body, "sha256="+strings.Repeat("0", 64)), 403)
	tampered := []byte(strings.Replace(string(body), "4922", "4923", 1))
	mustStatus(t, e.postMeta(tampered, metaSign(body)), 403)
	mustStatus(t, e.do("POST", "/v1/webhooks/whatsapp/globex", "", body, "X-Hub-Signature-256", metaSign(body)), 404) // not configured

	statuses := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"2"},"statuses":[{"id":"wamid.X","status":"delivered","timestamp":"1732520000","recipient_id":"4922"}]}}]}]}`)
	r := e.postMeta(statuses, metaSign(statuses))
	mustStatus(t, r, 200)
	if ack := r.JSON(t); ack["queued"].(float64) != 0 || ack["ignored"].(float64) != 1 {
		t.Fatalf("status update ack %v", ack)
	}
	text := metaPayload([]map[string]any{contact("4922", "D")}, map[string]any{"from": "4922", "id": "wamid.T", "timestamp": "1732520000", "type": "text", "text": map[string]any{"body": "hi"}})
	r = e.postMeta(text, metaSign(text))
	mustStatus(t, r, 200)
	if r.JSON(t)["queued"].(float64) != 0 {
		t.Fatal("a text message was queued")
	}
	bad := []byte(`{"object":`)
	mustStatus(t, e.postMeta(bad, metaSign(bad)), 400)
	if data := e.do("GET", "/v1/customers/wa:4922/media", keyAcme, nil).JSON(t)["data"].([]any); len(data) != 0 {
		t.Fatal("a refused delivery was archived")
	}
}

// twilioSign signs as Twilio does: base64 HMAC-SHA1 of the URL followed by
// the sorted parameter names and values.
func twilioSign(fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, v := range form[k] {
			b.WriteString(k + v)
		}
	}
	mac := hmac.New(sha1.New, []byte(twilioAuthToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TestTwilioWebhook: a WhatsApp message with two media through Twilio.
func TestTwilioWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	u1, _ := e.twilio.AddMedia(sourcetest.Bytes(mediatest.PNG(10, 10)), "image/png")
	u2, _ := e.twilio.AddMedia(sourcetest.Bytes(mediatest.OggOpus(3000, 35)), "audio/ogg")
	form := url.Values{
		"MessageSid": {sourcetest.NewSID("MM")}, "AccountSid": {twilioAccount},
		"From": {"whatsapp:+14155238886"}, "To": {"whatsapp:+15005550006"}, "WaId": {"14155238886"},
		"ProfileName": {"Sam"}, "Body": {"see invoice"}, "NumMedia": {"2"},
		"MediaUrl0": {u1}, "MediaContentType0": {"image/png"}, "MediaUrl1": {u2}, "MediaContentType1": {"audio/ogg"},
	}
	target := e.srv.URL + "/v1/webhooks/twilio/acme"
	send := func(sig string) *http.Response {
		req, _ := http.NewRequest("POST", target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			req.Header.Set("X-Twilio-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.checkContract(req, []byte(form.Encode()), resp, body)
		return resp
	}
	if r := send(""); r.StatusCode != 401 {
		t.Fatalf("unsigned: %d", r.StatusCode)
	}
	if r := send(twilioSign(target+"?x=1", form)); r.StatusCode != 403 {
		t.Fatalf("wrongly signed: %d", r.StatusCode)
	}
	r := send(twilioSign(target, form))
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
		t.Fatalf("signed: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	send(twilioSign(target, form)) // Twilio retries: no duplicate
	got := e.waitList("wa:14155238886", 2)
	for _, m := range got {
		if m["source"].(map[string]any)["type"] != "twilio" {
			t.Errorf("source %v", m["source"])
		}
	}
	if e.twilio.CDNSawAuthorization() {
		t.Fatal("Twilio credentials reached the CDN")
	}
}

// TestDialog360Webhook: 360dialog sends Meta's shape, protected by a token.
func TestDialog360Webhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.d360.AddMedia("5001", sourcetest.Bytes(mediatest.PDF(2000, 36)), "application/pdf")
	body := metaPayload([]map[string]any{contact("4933", "E")}, metaMessage("4933", "wamid.E1", "document", "5001", map[string]any{"mime_type": "application/pdf", "filename": "a.pdf"}))
	mustStatus(t, e.do("POST", "/v1/webhooks/dialog360/acme", "", body), 401)
	mustStatus(t, e.do("POST", "/v1/webhooks/dialog360/acme?token=wrong", "", body), 403)
	mustStatus(t, e.do("POST", "/v1/webhooks/dialog360/acme?token="+dialog360Webhook, "", body), 200)
	mustStatus(t, e.do("POST", "/v1/webhooks/dialog360/acme", "", body, "X-Chatvault-Token", dialog360Webhook), 200)
	m := e.waitList("wa:4933", 1)[0]
	if m["source"].(map[string]any)["type"] != "dialog360" || m["filename"] != "a.pdf" {
		t.Fatalf("record %v", m)
	}
}

// waitJob polls a job until it leaves the queue.
func (e *env) waitJob(key, id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := e.do("GET", "/v1/jobs/"+id, key, nil)
		mustStatus(e.t, r, 200)
		j := r.JSON(e.t)
		if s := j["state"]; s == "succeeded" || s == "failed" || time.Now().After(deadline) {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAsyncArchiveAndDeadLetters: Prefer: respond-async answers 202 with a
// job; a job that cannot succeed lands in the dead letters, which an admin
// can list and retry.
func TestAsyncArchiveAndDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	u := e.serveFile("/v.ogg", mediatest.OggOpus(5000, 37), "audio/ogg")
	r := e.archive(map[string]any{"customer_id": "c", "source": urlSource(u)}, "Prefer", "respond-async")
	mustStatus(t, r, http.StatusAccepted)
	if r.Header.Get("Preference-Applied") != "respond-async" || !strings.HasPrefix(r.Header.Get("Location"), "/v1/jobs/job_") {
		t.Fatalf("headers %v", r.Header)
	}
	job := e.waitJob(keyAcme, r.JSON(t)["id"].(string))
	if job["state"] != "succeeded" {
		t.Fatalf("job %v", job)
	}
	res := job["result"].(map[string]any)
	if res["created"] != true || res["media"].(map[string]any)["id"] != res["media_id"] {
		t.Fatalf("result %v", res)
	}
	mustStatus(t, e.do("GET", "/v1/jobs/"+job["id"].(string), keyGlobex, nil), 404)

	// Invalid input is refused before queueing.
	mustStatus(t, e.archive(map[string]any{"customer_id": "c", "source": map[string]any{"type": "url", "url": u, "sha256": "nope"}}, "Prefer", "respond-async"), 400)

	// Content that is refused fails the job for good.
	exe := e.serveFile("/e.ogg", mediatest.ELF(3000, 38), "audio/ogg")
	r = e.archive(map[string]any{"customer_id": "c", "source": urlSource(exe)}, "Prefer", "respond-async")
	mustStatus(t, r, http.StatusAccepted)
	failed := e.waitJob(keyAcme, r.JSON(t)["id"].(string))
	if failed["state"] != "failed" || failed["error"].(map[string]any)["status"].(float64) != 415 {
		t.Fatalf("failed job %v", failed)
	}
	mustStatus(t, e.do("GET", "/v1/admin/dead-letters", keyAcme, nil), http.StatusForbidden)
	dl := e.do("GET", "/v1/admin/dead-letters?limit=10", keyAcmeAdmin, nil)
	mustStatus(t, dl, 200)
	data := dl.JSON(t)["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["job_id"] != failed["id"] {
		t.Fatalf("dead letters %s", dl.Body)
	}
	entry := data[0].(map[string]any)["entry_id"].(string)
	mustStatus(t, e.do("POST", "/v1/admin/dead-letters/"+entry+"/retry", keyGlobex, nil), 404)
	retried := e.do("POST", "/v1/admin/dead-letters/"+entry+"/retry", keyAcmeAdmin, nil)
	mustStatus(t, retried, http.StatusAccepted)
	if again := e.waitJob(keyAcme, retried.JSON(t)["id"].(string)); again["state"] != "failed" {
		t.Fatalf("retried job %v", again)
	}
}

// TestWorkerDiesMidBurst: a worker takes half of a burst and dies without
// finishing any of it. The surviving workers reclaim its jobs after the
// visibility timeout, and every media ends up archived exactly once.
func TestWorkerDiesMidBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noWorkers: true, visibility: "1s"})
	const n = 20
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("60%02d", i)
		e.graph.AddMedia(id, sourcetest.Bytes(mediatest.OggOpus(6000, uint64(200+i))), "audio/ogg")
		body := metaPayload([]map[string]any{contact("4955", "F")}, metaMessage("4955", "wamid.F"+id, "audio", id, map[string]any{"mime_type": "audio/ogg"}))
		mustStatus(t, e.postMeta(body, metaSign(body)), 200)
	}

	// The doomed worker: it joins the consumer group, takes jobs, and is
	// never heard of again (as after a SIGKILL or a lost node).
	rdb, _ := testenv.Redis(t)
	ctx := context.Background()
	stream := e.prefix + "{q:jobs}:stream"
	if err := rdb.XGroupCreateMkStream(ctx, stream, "workers", "0").Err(); err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		t.Fatal(err)
	}
	taken, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: "doomed", Streams: []string{stream, ">"}, Count: n / 2}).Result()
	if err != nil || len(taken[0].Messages) != n/2 {
		t.Fatalf("the doomed worker took %v: %v", taken, err)
	}

	e.startWorkers(4)
	got := e.waitList("wa:4955", n)
	seen := map[string]bool{}
	for _, m := range got {
		seen[m["source"].(map[string]any)["media_id"].(string)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct media archived, want %d", len(seen), n)
	}
	if c := countOriginals(e.objects()); c != n {
		t.Fatalf("%d originals stored, want %d", c, n)
	}
	pending, err := rdb.XPending(ctx, stream, "workers").Result()
	if err != nil || pending.Count != 0 {
		t.Fatalf("jobs still pending: %+v %v", pending, err)
	}
}
