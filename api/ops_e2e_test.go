package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/mediatest"
)

func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.do("GET", "/healthz", "", nil), 200)
	ready := e.do("GET", "/readyz", "", nil)
	mustStatus(t, ready, 200)
	if checks := ready.JSON(t)["checks"].(map[string]any); checks["redis"] != "ok" || checks["storage"] != "ok" {
		t.Fatalf("readyz checks %v", checks)
	}
	spec := e.do("GET", "/openapi.yaml", "", nil)
	mustStatus(t, spec, 200)
	if !strings.Contains(string(spec.Body), "openapi: 3.1") {
		t.Fatal("/openapi.yaml is not the contract")
	}
	mustStatus(t, e.do("GET", "/schemas/media.json", "", nil), 200)
	mustStatus(t, e.do("GET", "/schemas/nope.json", "", nil), 404)

	voice := mediatest.OggOpus(2048, 20)
	u := e.serveFile("/m.ogg", voice, "audio/ogg")
	mustStatus(t, e.archive(map[string]any{"customer_id": "c", "source": urlSource(u)}), 201)
	metrics := e.do("GET", "/metrics", "", nil)
	mustStatus(t, metrics, 200)
	for _, want := range []string{
		`chatvault_http_requests_total{method="POST",route="/v1/media",status="201"} 1`,
		fmt.Sprintf("chatvault_archived_bytes_total %d", len(voice)),
		"chatvault_http_request_duration_seconds_bucket",
		`chatvault_archives_total{result="created"} 1`,
	} {
		if !strings.Contains(string(metrics.Body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestIdempotencyKey: replay, 409 while in flight, 422 on another body.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	u := e.serveFile("/a.ogg", mediatest.OggOpus(4096, 21), "audio/ogg")
	body := map[string]any{"customer_id": "c", "source": urlSource(u)}
	first := e.archive(body, "Idempotency-Key", "zap-123")
	mustStatus(t, first, 201)
	again := e.archive(body, "Idempotency-Key", "zap-123")
	mustStatus(t, again, 201)
	if again.Header.Get("Idempotent-Replayed") != "true" || again.JSON(t)["id"] != first.JSON(t)["id"] {
		t.Fatalf("not a replay: %v %s", again.Header, again.Body)
	}
	if again.Header.Get("Location") != first.Header.Get("Location") {
		t.Error("replay lost the Location header")
	}
	other := e.archive(map[string]any{"customer_id": "other", "source": urlSource(u)}, "Idempotency-Key", "zap-123")
	mustStatus(t, other, http.StatusUnprocessableEntity)

	// A slow upstream keeps the first request in flight.
	release := make(chan struct{})
	started := make(chan struct{})
	e.origin.Handle("/slow.ogg", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/ogg")
		w.WriteHeader(200)
		w.Write(mediatest.OggOpus(4096, 22))
		w.(http.Flusher).Flush()
		close(started)
		<-release
	}))
	slow := map[string]any{"customer_id": "c", "source": urlSource(e.origin.URL + "/slow.ogg")}
	var wg sync.WaitGroup
	wg.Add(1)
	var firstSlow response
	go func() {
		defer wg.Done()
		firstSlow = e.archive(slow, "Idempotency-Key", "slow-1")
	}()
	<-started
	mustStatus(t, e.archive(slow, "Idempotency-Key", "slow-1"), http.StatusConflict)
	close(release)
	wg.Wait()
	mustStatus(t, firstSlow, 201)
	mustStatus(t, e.archive(slow, "Idempotency-Key", "slow-1"), 201)

	// Tags take keys too.
	id := first.JSON(t)["id"].(string)
	tag := map[string]any{"add": []string{"x"}}
	mustStatus(t, e.do("POST", "/v1/media/"+id+"/tags", keyAcme, tag, "Idempotency-Key", "tag-1"), 200)
	r := e.do("POST", "/v1/media/"+id+"/tags", keyAcme, tag, "Idempotency-Key", "tag-1")
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("tag replay not marked")
	}
}

// TestRateLimit: the tiny tenant's key allows 2 requests, then 429 with an
// integer Retry-After; every /v1 answer carries the RateLimit headers.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for i := 0; i < 2; i++ {
		r := e.do("GET", "/v1/customers/c/media", keyRateLimit, nil)
		mustStatus(t, r, 200)
		if r.Header.Get("RateLimit") == "" || r.Header.Get("RateLimit-Policy") == "" {
			t.Fatal("no RateLimit headers")
		}
	}
	r := e.do("GET", "/v1/customers/c/media", keyRateLimit, nil)
	mustStatus(t, r, http.StatusTooManyRequests)
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("Retry-After %q is not a positive integer", r.Header.Get("Retry-After"))
	}
	// Other tenants are unaffected.
	mustStatus(t, e.do("GET", "/v1/customers/c/media", keyGlobex, nil), 200)
}

// TestConcurrentTagging: 20 taggers at once, none loses another's tag.
func TestConcurrentTagging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	u := e.serveFile("/t.ogg", mediatest.OggOpus(1024, 23), "audio/ogg")
	id := e.archive(map[string]any{"customer_id": "c", "source": urlSource(u)}).JSON(t)["id"].(string)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", "/v1/media/"+id+"/tags", keyAcme, map[string]any{"add": []string{fmt.Sprintf("tag-%02d", i)}})
			if r.Status != 200 {
				t.Errorf("tagging %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	tags := e.do("GET", "/v1/media/"+id, keyAcme, nil).JSON(t)["tags"].([]any)
	if len(tags) != 20 {
		t.Fatalf("%d tags survived, want 20: %v", len(tags), tags)
	}
	if list := e.do("GET", "/v1/customers/c/media?tag=tag-07", keyAcme, nil).JSON(t)["data"].([]any); len(list) != 1 {
		t.Fatal("the tag index lost an entry")
	}
}

// TestListPagingAndReindex pages through a customer's media newest first,
// then rebuilds the index from storage alone and gets the same answers.
func TestListPagingAndReindex(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var ids []string
	for i := 0; i < 7; i++ {
		u := e.serveFile(fmt.Sprintf("/p%d.ogg", i), mediatest.OggOpus(512, uint64(100+i)), "audio/ogg")
		kind := map[bool]string{true: "audio", false: ""}[i%2 == 0]
		body := map[string]any{"customer_id": "wa:42", "source": urlSource(u), "tags": []string{fmt.Sprintf("n%d", i%3)}}
		if kind != "" {
			body["kind"] = kind
		}
		ids = append(ids, e.archive(body).JSON(t)["id"].(string))
		time.Sleep(2 * time.Millisecond) // distinct created_at for a strict order
	}
	pages := func() []string {
		var got []string
		cursor := ""
		for {
			r := e.do("GET", "/v1/customers/wa:42/media?limit=3&cursor="+cursor, keyAcme, nil)
			mustStatus(t, r, 200)
			m := r.JSON(t)
			for _, d := range m["data"].([]any) {
				got = append(got, d.(map[string]any)["id"].(string))
			}
			if m["next_cursor"] == nil {
				return got
			}
			cursor = m["next_cursor"].(string)
		}
	}
	want := fmt.Sprint(reverse(ids))
	if got := fmt.Sprint(pages()); got != want {
		t.Fatalf("pages %s, want newest first %s", got, want)
	}
	if n := len(e.do("GET", "/v1/customers/wa:42/media?tag=n1", keyAcme, nil).JSON(t)["data"].([]any)); n != 2 {
		t.Fatalf("tag filter gave %d", n)
	}

	n, err := e.app.Media.Reindex(context.Background())
	if err != nil || n != 7 {
		t.Fatalf("reindex: %d records, %v", n, err)
	}
	if got := fmt.Sprint(pages()); got != want {
		t.Fatalf("after reindex %s, want %s", got, want)
	}
	// Dedupe survives a reindex too.
	mustStatus(t, e.archive(map[string]any{"customer_id": "wa:42", "source": urlSource(e.origin.URL + "/p0.ogg")}), 200)
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
