package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chatvault/chatvault/internal/mediatest"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
	"github.com/chatvault/chatvault/internal/testenv"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestMediaLifecycle runs archive → get → content → tag → list → delete on
// both storage backends: a local folder and a real S3 server.
func TestMediaLifecycle(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			store := ""
			if backend == "s3" {
				store = testenv.S3(t)
			}
			e := newEnv(t, envOptions{storage: store})
			voice := mediatest.OggOpus(40_000, 1)
			u := e.serveFile("/voice.ogg", voice, "audio/ogg; codecs=opus")

			r := e.archive(map[string]any{
				"customer_id": "wa:4915112345678",
				"source":      urlSource(u),
				"message":     map[string]any{"id": "wamid.HBgL", "from": "4915112345678", "timestamp": "1732520000", "caption": "my voice note"},
				"tags":        []string{" Voice-Note ", "LEAD"},
				"metadata":    map[string]string{"hubspot_contact_id": "901"},
			})
			mustStatus(t, r, http.StatusCreated)
			m := r.JSON(t)
			id := m["id"].(string)
			if m["sha256"] != sha(voice) || m["size_bytes"].(float64) != float64(len(voice)) || m["kind"] != "audio" || m["mime_type"] != "audio/ogg" {
				t.Fatalf("record does not describe the file: %v", m)
			}
			if got := fmt.Sprint(m["tags"]); got != "[lead voice-note]" {
				t.Errorf("tags %s, want normalised and sorted [lead voice-note]", got)
			}
			if r.Header.Get("Location") != "/v1/media/"+id {
				t.Errorf("Location %q", r.Header.Get("Location"))
			}
			crm := m["crm_fields"].(map[string]any)
			if crm["tags"] != "lead,voice-note" || crm["type"] != "audio" || crm["received_at"] != "2024-11-25T07:33:20Z" {
				t.Errorf("crm_fields %v", crm)
			}

			// Get, and the signed content URL works without a key.
			g := e.do("GET", "/v1/media/"+id, keyAcme, nil)
			mustStatus(t, g, 200)
			content := e.do("GET", g.JSON(t)["content_url"].(string), "", nil)
			mustStatus(t, content, 200)
			if !bytes.Equal(content.Body, voice) || content.Header.Get("Content-Type") != "audio/ogg" {
				t.Fatalf("content differs from the original (type %q)", content.Header.Get("Content-Type"))
			}
			part := e.do("GET", "/v1/media/"+id+"/content", keyAcme, nil, "Range", "bytes=100-199")
			mustStatus(t, part, http.StatusPartialContent)
			if !bytes.Equal(part.Body, voice[100:200]) || part.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(voice)) {
				t.Fatalf("range answer wrong: %q", part.Header.Get("Content-Range"))
			}
			tail := e.do("GET", "/v1/media/"+id+"/content", keyAcme, nil, "Range", "bytes=-10")
			if !bytes.Equal(tail.Body, voice[len(voice)-10:]) {
				t.Fatal("suffix range wrong")
			}
			bad := e.do("GET", "/v1/media/"+id+"/content", keyAcme, nil, "Range", fmt.Sprintf("bytes=%d-", len(voice)))
			mustStatus(t, bad, http.StatusRequestedRangeNotSatisfiable)

			// Tag and list.
			tagged := e.do("POST", "/v1/media/"+id+"/tags", keyAcme, map[string]any{"add": []string{"VIP"}, "remove": []string{"lead"}})
			mustStatus(t, tagged, 200)
			if got := fmt.Sprint(tagged.JSON(t)["tags"]); got != "[vip voice-note]" {
				t.Errorf("tags after update %s", got)
			}
			list := e.do("GET", "/v1/customers/wa:4915112345678/media?tag=VIP&kind=audio", keyAcme, nil)
			mustStatus(t, list, 200)
			if data := list.JSON(t)["data"].([]any); len(data) != 1 {
				t.Fatalf("list gave %d records", len(data))
			}

			// Delete removes the record, its document and its blob.
			mustStatus(t, e.do("DELETE", "/v1/media/"+id, keyAcme, nil), http.StatusNoContent)
			mustStatus(t, e.do("GET", "/v1/media/"+id, keyAcme, nil), http.StatusNotFound)
			mustStatus(t, e.do("GET", "/v1/media/"+id+"/content", keyAcme, nil), http.StatusNotFound)
			if data := e.do("GET", "/v1/customers/wa:4915112345678/media", keyAcme, nil).JSON(t)["data"].([]any); len(data) != 0 {
				t.Fatalf("deleted media still listed")
			}
			assertNoObjects(t, e)
		})
	}
}

// assertNoObjects fails when storage holds anything for acme.
func assertNoObjects(t *testing.T, e *env) {
	t.Helper()
	if keys := e.objects(); len(keys) != 0 {
		t.Fatalf("storage still holds %v", keys)
	}
}

func (e *env) objects() []string {
	e.t.Helper()
	var keys []string
	if err := e.app.Blobs().List(context.Background(), "tenants/", func(k string) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return keys
}

func countOriginals(keys []string) int {
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/original") {
			n++
		}
	}
	return n
}

// TestWhatsAppCloud archives by Meta media ID through the Graph stand-in,
// with its quirks: base64 or hex checksums, sizes as strings, expiring URLs.
func TestWhatsAppCloud(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	voice := mediatest.OggOpus(20_000, 2)
	e.graph.AddMedia("1037543291543636", sourcetest.Bytes(voice), "audio/ogg", sourcetest.WithChecksum(sourcetest.ChecksumBase64))
	img := mediatest.PNG(64, 48)
	e.graph.AddMedia("2037543291543637", sourcetest.Bytes(img), "image/png", sourcetest.WithFileSizeNumber())

	for _, id := range []string{"1037543291543636", "2037543291543637"} {
		r := e.archive(map[string]any{"customer_id": "wa:4915112345678", "source": map[string]any{"type": "whatsapp_cloud", "media_id": id}})
		mustStatus(t, r, http.StatusCreated)
	}
	// Provider retries hours later return the same record, without a download.
	before := e.graph.Downloads()
	again := e.archive(map[string]any{"customer_id": "wa:4915112345678", "source": map[string]any{"type": "whatsapp_cloud", "media_id": "1037543291543636"}})
	mustStatus(t, again, http.StatusOK)
	if e.graph.Downloads() != before {
		t.Error("a duplicate archive downloaded the media again")
	}
	if again.JSON(t)["sha256"] != sha(voice) {
		t.Error("dedupe returned another record")
	}

	// The download URL expires between resolve and download: re-resolve once.
	late := mediatest.MP4(30_000, 3)
	e.graph.AddMedia("3037543291543638", sourcetest.Bytes(late), "video/mp4")
	e.graph.OnResolve(func(id string) {
		if id == "3037543291543638" && e.graph.ResolvesOf(id) == 1 {
			e.graph.Advance(6 * 60e9) // past the 5-minute URL lifetime
		}
	})
	r := e.archive(map[string]any{"customer_id": "wa:1", "source": map[string]any{"type": "whatsapp_cloud", "media_id": "3037543291543638"}})
	mustStatus(t, r, http.StatusCreated)
	if e.graph.ResolvesOf("3037543291543638") != 2 {
		t.Errorf("resolved %d times, want 2", e.graph.ResolvesOf("3037543291543638"))
	}

	// A checksum that does not match the bytes is refused, and nothing stays.
	n := countOriginals(e.objects())
	e.graph.AddMedia("4037543291543639", sourcetest.Bytes(mediatest.OggOpus(5000, 4)), "audio/ogg", sourcetest.WithWrongChecksum())
	bad := e.archive(map[string]any{"customer_id": "wa:1", "source": map[string]any{"type": "whatsapp_cloud", "media_id": "4037543291543639"}})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if countOriginals(e.objects()) != n {
		t.Error("a refused archive left an object in storage")
	}
	// An unknown media ID is a clear client error.
	unknown := e.archive(map[string]any{"customer_id": "wa:1", "source": map[string]any{"type": "whatsapp_cloud", "media_id": "999"}})
	if unknown.Status < 400 || unknown.Status >= 500 && unknown.Status != http.StatusBadGateway {
		t.Errorf("unknown media ID gave %d", unknown.Status)
	}
}

// TestConcurrentDuplicates fires the same archive 12 times at once: exactly
// one object is stored and every caller gets the same record.
func TestConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.graph.AddMedia("5037543291543640", sourcetest.Bytes(mediatest.MP4(200_000, 5)), "video/mp4")
	u := e.serveFile("/doc.pdf", mediatest.PDF(100_000, 6), "application/pdf")
	for _, src := range []map[string]any{
		{"type": "whatsapp_cloud", "media_id": "5037543291543640"},
		urlSource(u),
	} {
		var wg sync.WaitGroup
		ids := make(chan string, 12)
		statuses := make(chan int, 12)
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.archive(map[string]any{"customer_id": "c-dup", "source": src})
				statuses <- r.Status
				if r.Status < 300 {
					ids <- r.JSON(t)["id"].(string)
				}
			}()
		}
		wg.Wait()
		close(ids)
		close(statuses)
		created := 0
		for s := range statuses {
			if s == http.StatusCreated {
				created++
			} else if s != http.StatusOK {
				t.Errorf("status %d", s)
			}
		}
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if created != 1 || len(seen) != 1 {
			t.Fatalf("%v: %d created, %d distinct IDs; want 1 and 1", src["type"], created, len(seen))
		}
	}
	if n := countOriginals(e.objects()); n != 2 {
		t.Fatalf("storage holds %d originals, want 2", n)
	}
}

// TestTenantIsolation: another tenant's IDs are 404, never 403.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	u := e.serveFile("/a.png", mediatest.PNG(8, 8), "image/png")
	r := e.archive(map[string]any{"customer_id": "shared-customer", "source": urlSource(u)})
	mustStatus(t, r, http.StatusCreated)
	m := r.JSON(t)
	id := m["id"].(string)

	mustStatus(t, e.do("GET", "/v1/media/"+id, keyGlobex, nil), 404)
	mustStatus(t, e.do("GET", "/v1/media/"+id+"/content", keyGlobex, nil), 404)
	mustStatus(t, e.do("POST", "/v1/media/"+id+"/tags", keyGlobex, map[string]any{"add": []string{"x"}}), 404)
	mustStatus(t, e.do("DELETE", "/v1/media/"+id, keyGlobex, nil), 404)
	if data := e.do("GET", "/v1/customers/shared-customer/media", keyGlobex, nil).JSON(t)["data"].([]any); len(data) != 0 {
		t.Fatal("globex sees acme's customer media")
	}
	// Globex archiving the same URL gets its own record, not acme's.
	own := e.do("POST", "/v1/media", keyGlobex, map[string]any{"customer_id": "shared-customer", "source": urlSource(u)})
	mustStatus(t, own, http.StatusCreated)
	if own.JSON(t)["id"] == id {
		t.Fatal("dedupe crossed tenants")
	}
	// A signed URL re-pointed at another tenant fails its signature.
	cu, _ := url.Parse(m["content_url"].(string))
	q := cu.Query()
	q.Set("tenant", "globex")
	cu.RawQuery = q.Encode()
	mustStatus(t, e.do("GET", cu.String(), "", nil), http.StatusForbidden)
	// And one for another media ID too.
	cu2, _ := url.Parse(m["content_url"].(string))
	cu2.Path = "/v1/media/" + own.JSON(t)["id"].(string) + "/content"
	mustStatus(t, e.do("GET", cu2.String(), "", nil), http.StatusForbidden)
	// Acme's record is untouched.
	mustStatus(t, e.do("GET", "/v1/media/"+id, keyAcme, nil), 200)
}

// TestAuthAndScopes covers 401 and 403.
func TestAuthAndScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	noKey := e.do("GET", "/v1/customers/c/media", "", nil)
	mustStatus(t, noKey, http.StatusUnauthorized)
	if !strings.HasPrefix(noKey.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Error("401 without WWW-Authenticate")
	}
	mustStatus(t, e.do("GET", "/v1/customers/c/media", "cvk_wrong", nil), http.StatusUnauthorized)
	mustStatus(t, e.do("POST", "/v1/media", keyAcmeRead, map[string]any{"customer_id": "c", "source": urlSource("https://example.com/a")}), http.StatusForbidden)
	mustStatus(t, e.do("GET", "/v1/customers/c/media", keyAcmeRead, nil), http.StatusOK)
	expired := fmt.Sprintf("/v1/media/med_01M88E477QFSGKFV3HME9Z8G32/content?tenant=acme&expires=1000&signature=%s", strings.Repeat("ab", 32))
	mustStatus(t, e.do("GET", expired, "", nil), http.StatusForbidden)
}

// TestHostileInputs: bad input gets a clear problem, and nothing is stored.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{limits: "{audio: 64KiB, image: 16KiB}"})
	ok := e.serveFile("/ok.ogg", mediatest.OggOpus(1000, 7), "audio/ogg")
	exe := e.serveFile("/evil.ogg", mediatest.ELF(5000, 8), "audio/ogg")
	big := e.serveFile("/big.ogg", mediatest.OggOpus(100_000, 9), "audio/ogg")
	e.origin.Serve("/chunked.ogg", sourcetest.Stream(-1, func() io.Reader { return bytes.NewReader(mediatest.OggOpus(100_000, 10)) }), "audio/ogg")
	e.origin.Handle("/drop.ogg", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "50000")
		w.Write(mediatest.OggOpus(10_000, 11))
		// The handler returns early: the client sees a truncated body.
	}))
	e.origin.Handle("/redirect", http.RedirectHandler("http://127.0.0.1:1/x", http.StatusFound))
	zip := e.serveFile("/notes.pdf", mediatest.PNG(4, 4), "application/pdf")

	cases := []struct {
		name    string
		body    any
		header  []string
		status  int
		pointer string
	}{
		{"unknown field", `{"customer_id":"c","source":{"type":"url","url":"` + ok + `"},"evil":1}`, nil, 400, "/evil"},
		{"wrong type", `{"customer_id":42,"source":{"type":"url","url":"` + ok + `"}}`, nil, 400, "/customer_id"},
		{"nested wrong type", `{"customer_id":"c","source":{"type":"url","url":"` + ok + `","file_size":"12"}}`, nil, 400, "/source/file_size"},
		{"missing source", `{"customer_id":"c"}`, nil, 400, "/source"},
		{"missing url", `{"customer_id":"c","source":{"type":"url"}}`, nil, 400, "/source/url"},
		{"bad source type", `{"customer_id":"c","source":{"type":"ftp","url":"ftp://x"}}`, nil, 400, "/source/type"},
		{"bad customer id", `{"customer_id":"../etc","source":{"type":"url","url":"` + ok + `"}}`, nil, 400, "/customer_id"},
		{"too many tags", map[string]any{"customer_id": "c", "source": urlSource(ok), "tags": strings.Split(strings.Repeat("t,", 51), ",")[:51]}, nil, 400, "/tags"},
		{"long tag", map[string]any{"customer_id": "c", "source": urlSource(ok), "tags": []string{strings.Repeat("x", 65)}}, nil, 400, "/tags/0"},
		{"malformed JSON", `{"customer_id":`, nil, 400, ""},
		{"trailing data", `{"customer_id":"c","source":{"type":"url","url":"` + ok + `"}} {}`, nil, 400, ""},
		{"body over 1 MiB", `{"customer_id":"c","source":{"type":"url","url":"` + ok + `"},"message":{"caption":"` + strings.Repeat("x", 1<<20) + `"}}`, nil, 413, ""},
		{"not JSON", "customer_id=c", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, ""},
		{"executable claiming audio", map[string]any{"customer_id": "c", "source": urlSource(exe)}, nil, 415, ""},
		{"png claiming pdf", map[string]any{"customer_id": "c", "source": urlSource(zip), "kind": "audio"}, nil, 415, ""},
		{"over the audio limit", map[string]any{"customer_id": "c", "source": urlSource(big)}, nil, 413, ""},
		{"over the limit, no Content-Length", map[string]any{"customer_id": "c", "source": urlSource(e.origin.URL + "/chunked.ogg")}, nil, 413, ""},
		{"declared size over limit", map[string]any{"customer_id": "c", "source": map[string]any{"type": "url", "url": ok, "file_size": 1 << 30}}, nil, 413, ""},
		{"checksum mismatch", map[string]any{"customer_id": "c", "source": map[string]any{"type": "url", "url": ok, "sha256": strings.Repeat("0", 64)}}, nil, 422, ""},
		{"malformed checksum", map[string]any{"customer_id": "c", "source": map[string]any{"type": "url", "url": ok, "sha256": "xyz"}}, nil, 400, "/source/sha256"},
		{"truncated upstream body", map[string]any{"customer_id": "c", "source": urlSource(e.origin.URL + "/drop.ogg")}, nil, 502, ""},
		{"metadata address", map[string]any{"customer_id": "c", "source": urlSource("http://169.254.169.254/latest/meta-data/")}, nil, 400, "/source/url"},
		{"loopback", map[string]any{"customer_id": "c", "source": urlSource("http://127.0.0.1:6379/")}, nil, 400, "/source/url"},
		{"redirect to loopback", map[string]any{"customer_id": "c", "source": urlSource(e.origin.URL + "/redirect")}, nil, 400, ""},
		{"file scheme", map[string]any{"customer_id": "c", "source": urlSource("file:///etc/passwd")}, nil, 400, "/source/url"},
		{"idempotency key too long", map[string]any{"customer_id": "c", "source": urlSource(ok)}, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/media", keyAcme, tc.body, tc.header...)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			p := r.JSON(t)
			if p["detail"] == "" || p["status"].(float64) != float64(tc.status) {
				t.Errorf("problem lacks detail or status: %s", r.Body)
			}
			if tc.pointer != "" && !strings.Contains(string(r.Body), `"pointer":"`+tc.pointer+`"`) {
				t.Errorf("no field error at %s: %s", tc.pointer, r.Body)
			}
		})
	}
	if keys := e.objects(); len(keys) != 0 {
		t.Fatalf("refused archives left objects: %v", keys)
	}

	queries := map[string]int{
		"/v1/customers/c/media?limit=500":                      400,
		"/v1/customers/c/media?limit=abc":                      400,
		"/v1/customers/c/media?cursor=not-a-cursor":            400,
		"/v1/customers/c/media?kind=spreadsheet":               400,
		"/v1/customers/c/media?since=yesterday":                400,
		"/v1/media/med_nope":                                   404,
		"/v1/media/..%2F..%2Fetc%2Fpasswd":                     404,
		"/v1/media/med_01M88E477QFSGKFV3HME9Z8G32":             404,
		"/v1/customers/c/media?tag=" + strings.Repeat("t", 65): 400,
	}
	for q, want := range queries {
		if r := e.do("GET", q, keyAcme, nil); r.Status != want {
			t.Errorf("GET %s: %d, want %d: %s", q, r.Status, want, r.Body)
		}
	}
}

// TestBase64Checksum accepts a base64 sha256 hint.
func TestBase64Checksum(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	doc := mediatest.PDF(3000, 12)
	u := e.serveFile("/d.pdf", doc, "application/pdf")
	sum := sha256.Sum256(doc)
	r := e.archive(map[string]any{"customer_id": "c", "source": map[string]any{"type": "url", "url": u, "sha256": base64.StdEncoding.EncodeToString(sum[:]), "filename": "contract.pdf"}})
	mustStatus(t, r, http.StatusCreated)
	if m := r.JSON(t); m["kind"] != "document" || m["filename"] != "contract.pdf" {
		t.Fatalf("%v", m)
	}
	// The same URL with the same checksum dedupes before downloading.
	seen := len(e.origin.Requests())
	mustStatus(t, e.archive(map[string]any{"customer_id": "c", "source": map[string]any{"type": "url", "url": u, "sha256": hex.EncodeToString(sum[:])}}), http.StatusOK)
	if len(e.origin.Requests()) != seen {
		t.Error("a hinted duplicate was downloaded again")
	}
}
