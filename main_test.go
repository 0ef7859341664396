package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/mediatest"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
	"github.com/chatvault/chatvault/internal/testenv"
)

// syncBuffer collects the JSON log lines run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenLine = regexp.MustCompile(`"msg":"chatvault listening","addr":"([^"]+)"`)

// start runs the real program in-process and returns its base URL, a stop
// function and the channel run's error arrives on.
func start(t *testing.T, vars map[string]string, args ...string) (string, context.CancelFunc, <-chan error, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	vars["CHATVAULT_ADDR"] = "127.0.0.1:0"
	go func() { done <- run(ctx, args, func(k string) string { return vars[k] }, out, io.Discard) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listenLine.FindStringSubmatch(out.String()); m != nil {
			t.Cleanup(cancel)
			return "http://" + m[1], cancel, done, out
		}
		select {
		case err := <-done:
			t.Fatalf("run stopped before listening: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	t.Fatalf("run never listened:\n%s", out.String())
	return "", nil, nil, nil
}

func post(t *testing.T, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func get(t *testing.T, url, key string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestFirstRunGracefulShutdown starts the service as a first-time user
// would (no Redis URL, no storage URL: embedded Redis and a local folder),
// begins an archive from a slow source, signals shutdown mid-archive, and
// checks that the archive still completes and run returns cleanly.
func TestFirstRunGracefulShutdown(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	release, started := make(chan struct{}), make(chan struct{})
	voice := mediatest.OggOpus(64<<10, 1)
	origin.Handle("/slow.ogg", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/ogg")
		w.Write(voice[:4096])
		w.(http.Flusher).Flush()
		close(started)
		<-release
		w.Write(voice[4096:])
	}))
	base, stop, done, out := start(t, map[string]string{
		"CHATVAULT_API_KEY":       "first-run-key",
		"CHATVAULT_DATA_DIR":      t.TempDir(),
		"CHATVAULT_DEV_ALLOWLIST": origin.HostPort(),
	})
	if !strings.Contains(out.String(), "embedded, in-memory Redis") {
		t.Error("no warning about the embedded Redis")
	}
	type result struct {
		status int
		body   map[string]any
	}
	res := make(chan result, 1)
	go func() {
		s, b := post(t, base+"/v1/media", "first-run-key", `{"customer_id":"wa:1","source":{"type":"url","url":"`+origin.URL+`/slow.ogg"}}`)
		res <- result{s, b}
	}()
	<-started
	stop() // SIGTERM, in effect
	time.Sleep(100 * time.Millisecond)
	close(release)
	r := <-res
	if r.status != http.StatusCreated {
		t.Fatalf("in-flight archive during shutdown: %d %v", r.status, r.body)
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
	if !strings.Contains(out.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", out.String())
	}
}

// TestReindexCommand archives through a running service, wipes the Redis
// index, runs `chatvault reindex`, and finds everything listed again.
func TestReindexCommand(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	origin := sourcetest.NewOrigin(t)
	vars := map[string]string{
		"CHATVAULT_API_KEY":        "k",
		"REDIS_URL":                testenv.RedisURL(),
		"CHATVAULT_REDIS_PREFIX":   prefix,
		"STORAGE_URL":              testenv.FileStore(t),
		"CHATVAULT_DEV_ALLOWLIST":  origin.HostPort(),
		"CHATVAULT_SIGNING_SECRET": "s",
	}
	base, stop, done, _ := start(t, vars)
	for i := 0; i < 3; i++ {
		origin.Serve(fmt.Sprintf("/%d.pdf", i), sourcetest.Bytes(mediatest.PDF(1000, uint64(i))), "application/pdf")
		if s, b := post(t, base+"/v1/media", "k", fmt.Sprintf(`{"customer_id":"c","source":{"type":"url","url":"%s/%d.pdf"}}`, origin.URL, i)); s != 201 {
			t.Fatalf("archive: %d %v", s, b)
		}
	}
	stop()
	<-done

	keys, err := rdb.Keys(context.Background(), prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no index keys: %v", err)
	}
	rdb.Del(context.Background(), keys...)

	var out bytes.Buffer
	if err := run(context.Background(), []string{"reindex"}, func(k string) string { return vars[k] }, &out, io.Discard); err != nil {
		t.Fatalf("reindex: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `"records":3`) {
		t.Fatalf("reindex log: %s", out.String())
	}
	base, _, _, _ = start(t, vars)
	if s, b := get(t, base+"/v1/customers/c/media", "k"); s != 200 || len(b["data"].([]any)) != 3 {
		t.Fatalf("after reindex: %d %v", s, b)
	}
}

func TestKeyCommands(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keygen"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`key:  (cvk_\S+)\nhash: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("keygen printed %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"hash-key", m[1]}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != m[2] {
		t.Fatalf("hash-key %q, keygen %q", out.String(), m[2])
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	if err := run(context.Background(), nil, func(k string) string {
		return map[string]string{"CHATVAULT_RATE_KEY": "fast"}[k]
	}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "CHATVAULT_RATE_KEY") {
		t.Fatalf("a bad setting was not reported by name: %v", err)
	}
}

// TestProcessingWithoutFFmpeg: with no ffmpeg on PATH, "auto" serves with
// processing off, "on" refuses to start a process that would run workers,
// and an API-only replica (serve --no-workers) with "on" starts and queues
// processing for worker replicas that have ffmpeg.
func TestProcessingWithoutFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, prefix := testenv.Redis(t)
	origin := sourcetest.NewOrigin(t)
	origin.Serve("/1.ogg", sourcetest.Bytes(mediatest.OggOpus(4096, 1)), "audio/ogg")
	origin.Serve("/2.ogg", sourcetest.Bytes(mediatest.OggOpus(4096, 2)), "audio/ogg")
	vars := func(processing string) map[string]string {
		return map[string]string{
			"CHATVAULT_API_KEY":        "k",
			"REDIS_URL":                testenv.RedisURL(),
			"CHATVAULT_REDIS_PREFIX":   prefix,
			"STORAGE_URL":              testenv.FileStore(t),
			"CHATVAULT_DEV_ALLOWLIST":  origin.HostPort(),
			"CHATVAULT_SIGNING_SECRET": "s",
			"CHATVAULT_PROCESSING":     processing,
		}
	}
	archive := func(base, file string) string {
		t.Helper()
		s, b := post(t, base+"/v1/media", "k", fmt.Sprintf(`{"customer_id":"c","source":{"type":"url","url":"%s/%s"}}`, origin.URL, file))
		if s != 201 {
			t.Fatalf("archive: %d %v", s, b)
		}
		return b["processing"].(map[string]any)["state"].(string)
	}

	base, stop, done, out := start(t, vars("auto"))
	if state := archive(base, "1.ogg"); state != "skipped" {
		t.Errorf("auto without ffmpeg: processing %q, want skipped", state)
	}
	if !strings.Contains(out.String(), "media processing is off") {
		t.Errorf("auto without ffmpeg logged no warning:\n%s", out.String())
	}
	stop()
	<-done

	v := vars("on")
	v["CHATVAULT_ADDR"] = "127.0.0.1:0"
	err := run(context.Background(), []string{"serve"}, func(k string) string { return v[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CHATVAULT_PROCESSING=on") {
		t.Errorf("serve with processing on and no ffmpeg: %v, want a refusal", err)
	}

	base, stop, done, _ = start(t, vars("on"), "serve", "--no-workers")
	if state := archive(base, "2.ogg"); state != "pending" {
		t.Errorf("API-only replica with processing on: %q, want pending (queued for the workers)", state)
	}
	stop()
	<-done
}
