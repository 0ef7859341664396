package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/events"
	"github.com/chatvault/chatvault/internal/mediatest"
)

// receiver collects signed deliveries on the allowlisted origin.
type receiver struct {
	mu     sync.Mutex
	got    []hookDelivery
	status int
}

type hookDelivery struct {
	header http.Header
	body   []byte
	event  map[string]any
}

func (e *env) receiver(path string) *receiver {
	r := &receiver{status: 200}
	e.origin.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		r.mu.Lock()
		r.got = append(r.got, hookDelivery{header: req.Header.Clone(), body: body, event: ev})
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	return r
}

// wait returns the first hookDelivery of an event type, waiting for it.
func (r *receiver) wait(t *testing.T, typ string) hookDelivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, d := range r.got {
			if d.event["type"] == typ {
				r.mu.Unlock()
				return d
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s hookDelivery arrived", typ)
	return hookDelivery{}
}

func (r *receiver) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, d := range r.got {
		if d.event["type"] == typ {
			n++
		}
	}
	return n
}

// TestHooksDeliverSignedEvents: a REST hook subscription receives signed
// deliveries of exactly the events it asked for, and the feed has them too.
func TestHooksDeliverSignedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rcv := e.receiver("/zap-hook")
	created := e.do("POST", "/v1/hooks", keyAcmeAdmin, map[string]any{
		"url": e.origin.URL + "/zap-hook", "events": []string{"media.archived", "media.tagged", "media.deleted"},
		"filters": map[string]any{"customer_id": "c-hook"},
	})
	mustStatus(t, created, http.StatusCreated)
	hook := created.JSON(t)
	secret := hook["secret"].(string)

	u := e.serveFile("/h.ogg", mediatest.OggOpus(3000, 40), "audio/ogg")
	m := e.archive(map[string]any{"customer_id": "c-hook", "source": urlSource(u)}).JSON(t)
	d := rcv.wait(t, "media.archived")
	if !events.VerifySignature(secret, d.header.Get("Chatvault-Signature"), d.body, time.Now(), 5*time.Minute) {
		t.Fatalf("signature %q does not verify", d.header.Get("Chatvault-Signature"))
	}
	if d.header.Get("Chatvault-Event-Id") != d.event["id"] || d.header.Get("Chatvault-Event-Type") != "media.archived" {
		t.Fatalf("headers %v", d.header)
	}
	if got := d.event["data"].(map[string]any)["media"].(map[string]any); got["id"] != m["id"] || got["crm_fields"] == nil {
		t.Fatalf("delivered media %v", got)
	}
	// Another customer's media is filtered out.
	other := e.serveFile("/o.ogg", mediatest.OggOpus(3000, 41), "audio/ogg")
	mustStatus(t, e.archive(map[string]any{"customer_id": "someone-else", "source": urlSource(other)}), 201)

	mustStatus(t, e.do("POST", "/v1/media/"+m["id"].(string)+"/tags", keyAcme, map[string]any{"add": []string{"vip"}}), 200)
	tagged := rcv.wait(t, "media.tagged")
	if added := tagged.event["data"].(map[string]any)["added"]; len(added.([]any)) != 1 {
		t.Fatalf("tagged event %v", tagged.event)
	}

	// The polling feed has the same event, with the same ID.
	feed := e.do("GET", "/v1/events?type=media.archived&customer_id=c-hook", keyAcme, nil)
	mustStatus(t, feed, 200)
	data := feed.JSON(t)["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["id"] != d.event["id"] {
		t.Fatalf("feed %s", feed.Body)
	}
	if all := e.do("GET", "/v1/events?type=media.archived", keyAcme, nil).JSON(t)["data"].([]any); len(all) != 2 {
		t.Fatalf("unfiltered feed has %d events", len(all))
	}
	mustStatus(t, e.do("GET", "/v1/events", keyAcme, nil), 400)

	// Listing never shows the secret.
	list := e.do("GET", "/v1/hooks", keyAcmeAdmin, nil)
	mustStatus(t, list, 200)
	if h := list.JSON(t)["data"].([]any)[0].(map[string]any); h["secret"] != nil || h["id"] != hook["id"] {
		t.Fatalf("listed hook %v", h)
	}
	if rcv.count("media.archived") != 1 {
		t.Fatalf("%d archived deliveries, want 1 (filtered)", rcv.count("media.archived"))
	}

	// A 410 from the receiver unsubscribes, as Zapier does.
	rcv.mu.Lock()
	rcv.status = http.StatusGone
	rcv.mu.Unlock()
	mustStatus(t, e.do("DELETE", "/v1/media/"+m["id"].(string), keyAcme, nil), 204)
	rcv.wait(t, "media.deleted")
	deadline := time.Now().Add(10 * time.Second)
	for {
		hooks := e.do("GET", "/v1/hooks", keyAcmeAdmin, nil).JSON(t)["data"].([]any)
		if len(hooks) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a 410 did not remove the subscription")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustStatus(t, e.do("DELETE", "/v1/hooks/"+hook["id"].(string), keyAcmeAdmin, nil), 404)
}

// TestHookManagement: scopes, validation, the SSRF guard on targets, delete.
func TestHookManagement(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	body := map[string]any{"url": e.origin.URL + "/x", "events": []string{"media.archived"}}
	mustStatus(t, e.do("POST", "/v1/hooks", keyAcme, body), http.StatusForbidden)
	mustStatus(t, e.do("POST", "/v1/hooks", keyAcmeAdmin, map[string]any{"url": "http://169.254.169.254/latest", "events": []string{"media.archived"}}), 400)
	mustStatus(t, e.do("POST", "/v1/hooks", keyAcmeAdmin, map[string]any{"url": e.origin.URL + "/x", "events": []string{"media.exploded"}}), 400)
	mustStatus(t, e.do("POST", "/v1/hooks", keyAcmeAdmin, map[string]any{"url": e.origin.URL + "/x", "events": []string{}}), 400)
	h := e.do("POST", "/v1/hooks", keyAcmeAdmin, body)
	mustStatus(t, h, 201)
	id := h.JSON(t)["id"].(string)
	mustStatus(t, e.do("DELETE", "/v1/hooks/"+id, keyGlobex, nil), 404)
	mustStatus(t, e.do("DELETE", "/v1/hooks/"+id, keyAcmeAdmin, nil), 204)
	mustStatus(t, e.do("DELETE", "/v1/hooks/"+id, keyAcmeAdmin, nil), 404)
}

// TestMeAndTags serve connection tests and tag pickers.
func TestMeAndTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	me := e.do("GET", "/v1/me", keyAcmeRead, nil)
	mustStatus(t, me, 200)
	if m := me.JSON(t); m["tenant_id"] != "acme" || m["key_id"] != "read" {
		t.Fatalf("me %v", m)
	}
	for i, tags := range [][]string{{"vip", "lead"}, {"vip"}} {
		u := e.serveFile("/t"+string(rune('a'+i))+".ogg", mediatest.OggOpus(500, uint64(50+i)), "audio/ogg")
		mustStatus(t, e.archive(map[string]any{"customer_id": "c", "source": urlSource(u), "tags": tags}), 201)
	}
	tags := e.do("GET", "/v1/tags", keyAcme, nil)
	mustStatus(t, tags, 200)
	data := tags.JSON(t)["data"].([]any)
	if len(data) != 2 || data[0].(map[string]any)["tag"] != "vip" || data[0].(map[string]any)["count"].(float64) != 2 {
		t.Fatalf("tags %s", tags.Body)
	}
}

// TestFailedArchiveRaisesEvent: a job that fails for good raises media.failed.
func TestFailedArchiveRaisesEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	exe := e.serveFile("/bad.ogg", mediatest.ELF(2000, 42), "audio/ogg")
	r := e.archive(map[string]any{"customer_id": "c-fail", "source": urlSource(exe)}, "Prefer", "respond-async")
	mustStatus(t, r, http.StatusAccepted)
	job := e.waitJob(keyAcme, r.JSON(t)["id"].(string))
	if job["state"] != "failed" {
		t.Fatalf("job %v", job)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		feed := e.do("GET", "/v1/events?type=media.failed", keyAcme, nil).JSON(t)["data"].([]any)
		if len(feed) == 1 {
			data := feed[0].(map[string]any)["data"].(map[string]any)
			if data["job_id"] != job["id"] || data["customer_id"] != "c-fail" || data["error"].(map[string]any)["status"].(float64) != 415 {
				t.Fatalf("failed event %v", data)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no media.failed event")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
