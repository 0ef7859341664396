package contract

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	loadOnce sync.Once
	loaded   *Checker
	loadErr  error
)

// checker loads the repository's contract once for the whole package.
func checker(t *testing.T) *Checker {
	t.Helper()
	loadOnce.Do(func() {
		var spec string
		if spec, loadErr = DefaultSpecPath(); loadErr == nil {
			loaded, loadErr = Load(spec)
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

const (
	mediaID   = "med_01JD8X3QK2V7M9TW4R6YB5N0CE"
	requestID = "01JD8X3QK2V7M9TW4R6YB5N0CE"
	sha       = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// v1Headers are the headers every /v1 response carries.
func v1Headers(contentType string) http.Header {
	h := http.Header{}
	h.Set("X-Request-ID", requestID)
	h.Set("RateLimit-Policy", `"tenant";q=600;w=60`)
	h.Set("RateLimit", `"tenant";r=599;t=1`)
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return h
}

func publicHeaders(contentType string) http.Header {
	h := http.Header{}
	h.Set("X-Request-ID", requestID)
	h.Set("Content-Type", contentType)
	return h
}

// example returns examples[i] of a schemas/ file, decoded afresh so a test
// may change it.
func example(t *testing.T, file string, i int) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "schemas", file))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Examples []map[string]any `json:"examples"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if i >= len(s.Examples) {
		t.Fatalf("%s has %d examples, want index %d", file, len(s.Examples), i)
	}
	return s.Examples[i]
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func problem(status int, typ, path string) map[string]any {
	return map[string]any{
		"type":       "urn:chatvault:problem:" + typ,
		"title":      "Some title",
		"status":     status,
		"detail":     "Something went wrong.",
		"instance":   path,
		"request_id": requestID,
	}
}

type responseCase struct {
	name   string
	method string
	target string
	status int
	header http.Header
	body   []byte
}

// goodResponses is one well-formed response for every operation and most
// documented statuses.
func goodResponses(t *testing.T) []responseCase {
	t.Helper()
	media := example(t, "media.json", 0)
	list := example(t, "media-list.json", 1)

	created := v1Headers("application/json")
	created.Set("Location", "/v1/media/"+mediaID)
	replayed := v1Headers("application/json; charset=utf-8")
	replayed.Set("Location", "/v1/media/"+mediaID)
	replayed.Set("Idempotent-Replayed", "true")

	content := v1Headers("audio/ogg")
	content.Set("Content-Length", "4")
	content.Set("Accept-Ranges", "bytes")
	content.Set("ETag", `"`+sha+`"`)
	content.Set("Content-Disposition", `inline; filename="voice-note.ogg"`)
	content.Set("X-Content-Type-Options", "nosniff")
	content.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	partial := content.Clone()
	partial.Set("Content-Length", "2")
	partial.Set("Content-Range", "bytes 0-1/4")
	partial.Set("Content-Disposition", `inline; filename="caf_.ogg"; filename*=UTF-8''caf%C3%A9.ogg`)
	notModified := v1Headers("")
	notModified.Set("ETag", `"`+sha+`"`)
	unsatisfiable := v1Headers("application/problem+json")
	unsatisfiable.Set("Content-Range", "bytes */4")
	limited := v1Headers("application/problem+json")
	limited.Set("Retry-After", "12")
	notReady := publicHeaders("application/json")
	notReady.Set("Retry-After", "5")

	contentPath := "/v1/media/" + mediaID + "/content"
	signedPath := contentPath + "?expires=1732533332&signature=" + strings.Repeat("ab", 32)
	listPath := "/v1/customers/cust_4821/media"

	return []responseCase{
		{"archive created", "POST", "/v1/media", 201, created, mustJSON(t, media)},
		{"archive replayed", "POST", "/v1/media", 201, replayed, mustJSON(t, media)},
		{"archive deduplicated", "POST", "/v1/media", 200, v1Headers("application/json"), mustJSON(t, example(t, "media.json", 1))},
		{"archive invalid", "POST", "/v1/media", 400, v1Headers("application/problem+json"), mustJSON(t, example(t, "problem.json", 0))},
		{"archive gone", "POST", "/v1/media", 410, v1Headers("application/problem+json"), mustJSON(t, problem(410, "gone", "/v1/media"))},
		{"archive upstream failed", "POST", "/v1/media", 502, v1Headers("application/problem+json"), mustJSON(t, problem(502, "bad_gateway", "/v1/media"))},
		{"archive rate limited", "POST", "/v1/media", 429, limited, mustJSON(t, problem(429, "rate_limited", "/v1/media"))},
		{"archive unavailable", "POST", "/v1/media", 503, limited, mustJSON(t, problem(503, "unavailable", "/v1/media"))},
		{"get", "GET", "/v1/media/" + mediaID, 200, v1Headers("application/json"), mustJSON(t, media)},
		{"get not found", "GET", "/v1/media/nope", 404, v1Headers("application/problem+json"), mustJSON(t, problem(404, "not_found", "/v1/media/nope"))},
		{"delete", "DELETE", "/v1/media/" + mediaID, 204, v1Headers(""), nil},
		{"tag", "POST", "/v1/media/" + mediaID + "/tags", 200, v1Headers("application/json"), mustJSON(t, media)},
		{"tag unprocessable", "POST", "/v1/media/" + mediaID + "/tags", 422, v1Headers("application/problem+json"), mustJSON(t, problem(422, "unprocessable", "/v1/media/"+mediaID+"/tags"))},
		{"content", "GET", contentPath, 200, content, []byte("OggS")},
		{"content signed", "GET", signedPath, 200, content, []byte("OggS")},
		{"content range", "GET", contentPath, 206, partial, []byte("Og")},
		{"content not modified", "GET", contentPath, 304, notModified, nil},
		{"content range unsatisfiable", "GET", contentPath, 416, unsatisfiable, mustJSON(t, problem(416, "range_not_satisfiable", contentPath))},
		{"content bad signature", "GET", signedPath, 403, v1Headers("application/problem+json"), mustJSON(t, problem(403, "forbidden", contentPath))},
		{"list", "GET", listPath + "?kind=document&limit=10", 200, v1Headers("application/json"), mustJSON(t, list)},
		{"list empty", "GET", listPath, 200, v1Headers("application/json"), mustJSON(t, example(t, "media-list.json", 0))},
		{"list unauthorized", "GET", listPath, 401, v1Headers("application/problem+json"), mustJSON(t, problem(401, "unauthorized", listPath))},
		{"healthz", "GET", "/healthz", 200, publicHeaders("application/json"), []byte(`{"status":"ok"}`)},
		{"readyz", "GET", "/readyz", 200, publicHeaders("application/json"), []byte(`{"status":"ok","checks":{"redis":"ok","storage":"ok"}}`)},
		{"readyz unavailable", "GET", "/readyz", 503, notReady, []byte(`{"status":"unavailable","checks":{"redis":"ok","storage":"bucket not found"}}`)},
		{"metrics", "GET", "/metrics", 200, publicHeaders("text/plain; version=0.0.4; charset=utf-8"), []byte("# HELP x y\nx 1\n")},
		{"openapi", "GET", "/openapi.yaml", 200, publicHeaders("application/yaml"), []byte("openapi: 3.1.0\n")},
		{"schema", "GET", "/schemas/media.json", 200, publicHeaders("application/schema+json"), mustJSON(t, map[string]any{
			"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "media.json", "title": "Media",
		})},
		{"schema not found", "GET", "/schemas/nope.json", 404, publicHeaders("application/problem+json"), mustJSON(t, problem(404, "not_found", "/schemas/nope.json"))},
	}
}

func TestGoodResponsesPass(t *testing.T) {
	c := checker(t)
	for _, tc := range goodResponses(t) {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			if err := c.CheckResponse(req, tc.status, tc.header, tc.body); err != nil {
				t.Fatalf("want pass, got:\n%v", err)
			}
		})
	}
}

func TestEveryOperationHasAGoodResponseCase(t *testing.T) {
	c := checker(t)
	covered := map[string]bool{}
	for _, tc := range goodResponses(t) {
		op, err := c.Operation(httptest.NewRequest(tc.method, tc.target, nil))
		if err != nil {
			t.Fatal(err)
		}
		covered[op] = true
	}
	for _, op := range c.Operations() {
		if !covered[op] {
			t.Errorf("no good response case for %s", op)
		}
	}
}

func TestBrokenResponsesFail(t *testing.T) {
	c := checker(t)
	get := "/v1/media/" + mediaID

	without := func(key string) []byte {
		m := example(t, "media.json", 0)
		delete(m, key)
		return mustJSON(t, m)
	}
	with := func(key string, v any) []byte {
		m := example(t, "media.json", 0)
		m[key] = v
		return mustJSON(t, m)
	}
	crm := func(key string, v any) []byte {
		m := example(t, "media.json", 0)
		f := m["crm_fields"].(map[string]any)
		if v == nil {
			delete(f, key)
		} else {
			f[key] = v
		}
		return mustJSON(t, m)
	}
	source := func(key string, v any) []byte {
		m := example(t, "media.json", 0)
		s := m["source"].(map[string]any)
		if v == nil {
			delete(s, key)
		} else {
			s[key] = v
		}
		return mustJSON(t, m)
	}
	noHeader := func(name string) http.Header {
		h := v1Headers("application/json")
		h.Del(name)
		return h
	}
	created := v1Headers("application/json")
	created.Set("Location", "/v1/media/med_01JD8X4B7T2G5C9HWKQ3M8Z6PA")
	badLimit := v1Headers("application/problem+json")
	badLimit.Set("Retry-After", "soon")
	content := v1Headers("audio/ogg")
	content.Set("Content-Length", "4")
	content.Set("Accept-Ranges", "bytes")
	content.Set("ETag", sha) // unquoted
	content.Set("Content-Disposition", `inline; filename="a.ogg"`)
	content.Set("X-Content-Type-Options", "nosniff")
	content.Set("Content-Security-Policy", "sandbox")

	cases := []struct {
		name   string
		method string
		target string
		status int
		header http.Header
		body   []byte
		want   string // a fragment of the error
	}{
		{"missing field", "GET", get, 200, v1Headers("application/json"), without("sha256"), "sha256"},
		{"missing crm field", "GET", get, 200, v1Headers("application/json"), crm("duration", nil), "duration"},
		{"extra property", "GET", get, 200, v1Headers("application/json"), with("tenant_id", "t_1"), "tenant_id"},
		{"extra crm field", "GET", get, 200, v1Headers("application/json"), crm("owner", "x"), "owner"},
		{"wrong type", "GET", get, 200, v1Headers("application/json"), with("size_bytes", "1234567"), "size_bytes"},
		{"crm value not a string", "GET", get, 200, v1Headers("application/json"), crm("size_bytes", 1234567), "size_bytes"},
		{"null instead of empty string", "GET", get, 200, v1Headers("application/json"), with("caption", nil), "caption"},
		{"bad id", "GET", get, 200, v1Headers("application/json"), with("id", "med_123"), "id"},
		{"upper-case sha256", "GET", get, 200, v1Headers("application/json"), with("sha256", strings.ToUpper(sha)), "sha256"},
		{"bad date-time", "GET", get, 200, v1Headers("application/json"), with("created_at", "2024-11-25 10:15:32"), "created_at"},
		{"relative content_url", "GET", get, 200, v1Headers("application/json"), with("content_url", "/v1/media/x/content"), "content_url"},
		{"unknown kind", "GET", get, 200, v1Headers("application/json"), with("kind", "gif"), "kind"},
		{"whatsapp source without media_id", "GET", get, 200, v1Headers("application/json"), source("media_id", nil), "media_id"},
		{"duplicate tags", "GET", get, 200, v1Headers("application/json"), with("tags", []string{"a", "a"}), "tags"},
		{"undocumented status", "GET", get, 418, v1Headers("application/json"), nil, "status 418 is not documented"},
		{"undocumented status for route", "GET", get, 400, v1Headers("application/problem+json"), mustJSON(t, problem(400, "invalid", get)), "status 400 is not documented"},
		{"missing X-Request-ID", "GET", get, 200, noHeader("X-Request-ID"), mustJSON(t, example(t, "media.json", 0)), "X-Request-ID"},
		{"missing RateLimit", "GET", get, 200, noHeader("RateLimit"), mustJSON(t, example(t, "media.json", 0)), "RateLimit"},
		{"malformed RateLimit-Policy", "GET", get, 200, func() http.Header {
			h := v1Headers("application/json")
			h.Set("RateLimit-Policy", "600;w=60")
			return h
		}(), mustJSON(t, example(t, "media.json", 0)), "RateLimit-Policy"},
		{"missing Location", "POST", "/v1/media", 201, v1Headers("application/json"), mustJSON(t, example(t, "media.json", 0)), "Location"},
		{"Location of another record", "POST", "/v1/media", 201, created, mustJSON(t, example(t, "media.json", 0)), "Location"},
		{"Retry-After not an integer", "POST", "/v1/media", 429, badLimit, mustJSON(t, problem(429, "rate_limited", "/v1/media")), "Retry-After"},
		{"missing Retry-After", "POST", "/v1/media", 503, v1Headers("application/problem+json"), mustJSON(t, problem(503, "unavailable", "/v1/media")), "Retry-After"},
		{"error as plain JSON", "GET", get, 404, v1Headers("application/json"), mustJSON(t, problem(404, "not_found", get)), "application/json"},
		{"no Content-Type", "GET", get, 200, v1Headers(""), mustJSON(t, example(t, "media.json", 0)), "no Content-Type"},
		{"body not JSON", "GET", get, 200, v1Headers("application/json"), []byte("<html>"), "not valid JSON"},
		{"body on 204", "DELETE", get, 204, v1Headers("application/json"), []byte(`{}`), "documents none"},
		{"problem status mismatch", "GET", get, 404, v1Headers("application/problem+json"), mustJSON(t, problem(403, "not_found", get)), "problem status is 403"},
		{"problem type mismatch", "GET", get, 404, v1Headers("application/problem+json"), mustJSON(t, problem(404, "forbidden", get)), "problem type"},
		{"problem instance with query", "GET", get + "?x=1", 404, v1Headers("application/problem+json"), mustJSON(t, problem(404, "not_found", get+"?x=1")), "instance"},
		{"problem request_id mismatch", "GET", get, 404, func() http.Header {
			h := v1Headers("application/problem+json")
			h.Set("X-Request-ID", "other")
			return h
		}(), mustJSON(t, problem(404, "not_found", get)), "request_id"},
		{"problem with unknown field", "GET", get, 404, v1Headers("application/problem+json"), func() []byte {
			p := problem(404, "not_found", get)
			p["code"] = 12
			return mustJSON(t, p)
		}(), "code"},
		{"unquoted ETag", "GET", get + "/content", 200, content, []byte("OggS"), "ETag"},
		{"readyz 200 while a check fails", "GET", "/readyz", 200, publicHeaders("application/json"), []byte(`{"status":"ok","checks":{"redis":"down","storage":"ok"}}`), "redis"},
		{"readyz 503 while every check passes", "GET", "/readyz", 503, func() http.Header {
			h := publicHeaders("application/json")
			h.Set("Retry-After", "5")
			return h
		}(), []byte(`{"status":"unavailable","checks":{"redis":"ok","storage":"ok"}}`), "checks"},
		{"metrics as JSON", "GET", "/metrics", 200, publicHeaders("application/json"), []byte(`{}`), "not documented"},
		{"route not in contract", "GET", "/v1/nothing", 200, v1Headers("application/json"), []byte(`{}`), "not in the contract"},
		{"method not in contract", "PUT", get, 200, v1Headers("application/json"), []byte(`{}`), "not in the contract"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			err := c.CheckResponse(req, tc.status, tc.header, tc.body)
			if err == nil {
				t.Fatal("want an error, got none")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
}

func TestCheckRequest(t *testing.T) {
	c := checker(t)
	archive := func(mutate func(m map[string]any)) []byte {
		m := example(t, "archive-request.json", 0)
		if mutate != nil {
			mutate(m)
		}
		return mustJSON(t, m)
	}
	src := func(m map[string]any) map[string]any { return m["source"].(map[string]any) }
	tagsPath := "/v1/media/" + mediaID + "/tags"
	contentPath := "/v1/media/" + mediaID + "/content"
	sig := strings.Repeat("0f", 32)

	cases := []struct {
		name    string
		method  string
		target  string
		header  map[string]string
		body    []byte
		wantErr string // empty: must pass
	}{
		{"archive whatsapp", "POST", "/v1/media", nil, archive(nil), ""},
		{"archive url", "POST", "/v1/media", nil, mustJSON(t, example(t, "archive-request.json", 1)), ""},
		{"archive minimal", "POST", "/v1/media", map[string]string{"Idempotency-Key": "k-1"},
			[]byte(`{"customer_id":"c1","source":{"type":"url","url":"https://example.net/a.jpg"}}`), ""},
		{"archive unix timestamp", "POST", "/v1/media", nil, archive(func(m map[string]any) {
			m["message"].(map[string]any)["timestamp"] = "1732529730"
		}), ""},
		{"archive hex sha256", "POST", "/v1/media", nil, archive(func(m map[string]any) { src(m)["sha256"] = sha }), ""},
		{"whatsapp without media_id", "POST", "/v1/media", nil, archive(func(m map[string]any) { delete(src(m), "media_id") }), "media_id"},
		{"whatsapp with url", "POST", "/v1/media", nil, archive(func(m map[string]any) { src(m)["url"] = "https://example.net/a" }), "at '/source': 'not' failed"},
		{"url without url", "POST", "/v1/media", nil, []byte(`{"customer_id":"c1","source":{"type":"url"}}`), "url"},
		{"url with media_id", "POST", "/v1/media", nil,
			[]byte(`{"customer_id":"c1","source":{"type":"url","url":"https://example.net/a","media_id":"1"}}`), "at '/source': 'not' failed"},
		{"ftp url", "POST", "/v1/media", nil, []byte(`{"customer_id":"c1","source":{"type":"url","url":"ftp://example.net/a"}}`), "url"},
		{"unknown source type", "POST", "/v1/media", nil, archive(func(m map[string]any) { src(m)["type"] = "twilio" }), "type"},
		{"unknown field", "POST", "/v1/media", nil, archive(func(m map[string]any) { m["priority"] = "high" }), "priority"},
		{"unknown source field", "POST", "/v1/media", nil, archive(func(m map[string]any) { src(m)["token"] = "x" }), "token"},
		{"bad customer_id", "POST", "/v1/media", nil, archive(func(m map[string]any) { m["customer_id"] = "-x" }), "customer_id"},
		{"bad sha256", "POST", "/v1/media", nil, archive(func(m map[string]any) { src(m)["sha256"] = "abc" }), "sha256"},
		{"bad timestamp", "POST", "/v1/media", nil, archive(func(m map[string]any) {
			m["message"].(map[string]any)["timestamp"] = "yesterday"
		}), "timestamp"},
		{"negative file_size", "POST", "/v1/media", nil, archive(func(m map[string]any) { src(m)["file_size"] = -1 }), "file_size"},
		{"empty tag", "POST", "/v1/media", nil, archive(func(m map[string]any) { m["tags"] = []string{""} }), "tags"},
		{"metadata not a string", "POST", "/v1/media", nil, archive(func(m map[string]any) { m["metadata"] = map[string]any{"n": 1} }), "metadata"},
		{"metadata bad key", "POST", "/v1/media", nil, archive(func(m map[string]any) { m["metadata"] = map[string]any{"a b": "x"} }), "'a b'"},
		{"no body", "POST", "/v1/media", nil, nil, "required"},
		{"not JSON", "POST", "/v1/media", map[string]string{"Content-Type": "text/plain"}, []byte("hi"), "Content-Type"},
		{"no key", "POST", "/v1/media", map[string]string{"Authorization": ""}, archive(nil), "Authorization"},
		{"empty Idempotency-Key", "POST", "/v1/media", map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, archive(nil), "Idempotency-Key"},
		{"tag", "POST", tagsPath, nil, []byte(`{"add":["a"],"remove":["b"]}`), ""},
		{"tag nothing", "POST", tagsPath, nil, []byte(`{}`), "minProperties"},
		{"tag unknown field", "POST", tagsPath, nil, []byte(`{"set":["a"]}`), "set"},
		{"tag too long", "POST", tagsPath, nil, mustJSON(t, map[string]any{"add": []string{strings.Repeat("x", 65)}}), "add"},
		{"get", "GET", "/v1/media/" + mediaID, nil, nil, ""},
		{"get with body", "GET", "/v1/media/" + mediaID, nil, []byte(`{}`), "takes none"},
		{"content by key", "GET", contentPath, map[string]string{"Range": "bytes=0-9"}, nil, ""},
		{"content signed", "GET", contentPath + "?expires=1732533332&signature=" + sig, map[string]string{"Authorization": ""}, nil, ""},
		{"content half signed", "GET", contentPath + "?signature=" + sig, map[string]string{"Authorization": ""}, nil, "expires"},
		{"content bad signature", "GET", contentPath + "?expires=1&signature=xyz", map[string]string{"Authorization": ""}, nil, "signature"},
		{"list", "GET", "/v1/customers/cust_4821/media?kind=image&tag=invoice&since=2024-11-01T00:00:00Z&limit=200&cursor=abc", nil, nil, ""},
		{"list phone customer", "GET", "/v1/customers/wa:+15551234567/media", nil, nil, ""},
		{"list escaped customer", "GET", "/v1/customers/hubspot%3A90210/media", nil, nil, ""},
		{"list bad customer", "GET", "/v1/customers/-x/media", nil, nil, "customer_id"},
		{"list limit too large", "GET", "/v1/customers/cust_4821/media?limit=201", nil, nil, "limit"},
		{"list bad kind", "GET", "/v1/customers/cust_4821/media?kind=gif", nil, nil, "kind"},
		{"list bad since", "GET", "/v1/customers/cust_4821/media?since=yesterday", nil, nil, "since"},
		{"healthz without key", "GET", "/healthz", map[string]string{"Authorization": ""}, nil, ""},
		{"unknown route", "GET", "/v2/media", nil, nil, "not in the contract"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			req.Header.Set("Authorization", "Bearer cv_test_key")
			if tc.body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tc.header {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			err := c.CheckRequest(req, tc.body)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want pass, got:\n%v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("want an error mentioning %q, got none", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error does not mention %q:\n%v", tc.wantErr, err)
			}
		})
	}
}

func TestOperations(t *testing.T) {
	want := []string{
		"DELETE /v1/media/{media_id}",
		"GET /healthz",
		"GET /metrics",
		"GET /openapi.yaml",
		"GET /readyz",
		"GET /schemas/{file}",
		"GET /v1/customers/{customer_id}/media",
		"GET /v1/media/{media_id}",
		"GET /v1/media/{media_id}/content",
		"POST /v1/media",
		"POST /v1/media/{media_id}/tags",
	}
	if got := checker(t).Operations(); !slices.Equal(got, want) {
		t.Fatalf("Operations() =\n%q\nwant\n%q", got, want)
	}
}

func TestExercisedRecordsPassingChecks(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "openapi.yaml")) // a fresh checker: nothing exercised yet
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/healthz", nil)
	if err := c.CheckResponse(req, 500, publicHeaders("application/json"), []byte(`{}`)); err == nil {
		t.Fatal("want an error for a JSON 500")
	}
	if got := c.Exercised(); len(got) != 0 {
		t.Fatalf("a failing check counted as exercised: %v", got)
	}
	if err := c.CheckResponse(req, 200, publicHeaders("application/json"), []byte(`{"status":"ok"}`)); err != nil {
		t.Fatal(err)
	}
	if got := c.Exercised(); !slices.Equal(got, []string{"GET /healthz"}) {
		t.Fatalf("Exercised() = %v", got)
	}
}

func TestConcurrentChecks(t *testing.T) {
	c := checker(t)
	cases := goodResponses(t)
	var wg sync.WaitGroup
	for range 8 {
		for _, tc := range cases {
			wg.Go(func() {
				req := httptest.NewRequest(tc.method, tc.target, nil)
				if err := c.CheckResponse(req, tc.status, tc.header, tc.body); err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
			})
		}
	}
	wg.Wait()
}

func TestLoadRejectsBadSpecs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("loading a missing file: want an error")
	}
	old := write("old.yaml", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n")
	if _, err := Load(old); err == nil || !strings.Contains(err.Error(), "3.1") {
		t.Errorf("loading OpenAPI 3.0: want a version error, got %v", err)
	}
	dangling := write("dangling.yaml", `openapi: 3.1.0
info: {title: t, version: '1'}
paths:
  /x:
    get:
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema:
                $ref: './schemas/nope.json'
`)
	if _, err := Load(dangling); err == nil {
		t.Error("loading a dangling $ref: want an error")
	}
}
