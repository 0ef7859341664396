package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/app"
	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/config"
	"github.com/chatvault/chatvault/internal/contract"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
	"github.com/chatvault/chatvault/internal/testenv"
)

// checker validates every response a test receives against openapi.yaml,
// and remembers which operations were exercised.
var checker *contract.Checker

func TestMain(m *testing.M) {
	var err error
	checker, err = contract.Load("../openapi.yaml")
	if err != nil {
		fmt.Fprintln(os.Stderr, "loading the contract:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 && !testing.Short() && os.Getenv("CHATVAULT_SKIP_COVERAGE") == "" {
		done := map[string]bool{}
		for _, op := range checker.Exercised() {
			done[op] = true
		}
		var missing []string
		for _, op := range checker.Operations() {
			if !done[op] {
				missing = append(missing, op)
			}
		}
		if len(missing) > 0 && runAll() {
			fmt.Fprintln(os.Stderr, "documented operations no test exercised:", strings.Join(missing, ", "))
			code = 1
		}
	}
	os.Exit(code)
}

// runAll is true when the whole package ran (not a -run subset).
func runAll() bool {
	for _, a := range os.Args {
		if strings.HasPrefix(a, "-test.run") {
			return false
		}
	}
	return true
}

// Keys of the two test tenants.
const (
	keyAcme      = "cvk_test_acme_full"
	keyAcmeRead  = "cvk_test_acme_read"
	keyGlobex    = "cvk_test_globex_full"
	keyRateLimit = "cvk_test_tiny_rate"
	keyAcmeAdmin = "cvk_test_acme_admin"

	metaAppSecret    = "meta-app-secret"
	metaVerifyToken  = "meta-verify-token"
	twilioAccount    = "AC0123456789abcdef0123456789abcdef"
	twilioAuthToken  = "twilio-auth-token"
	dialog360Key     = "d360-api-key"
	dialog360Webhook = "d360-webhook-token"
)

// env is one running chatvault with its stand-ins.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	app    *app.App
	origin *sourcetest.Origin
	graph  *sourcetest.Graph
	twilio *sourcetest.Twilio
	d360   *sourcetest.Dialog360
	store  string // storage URL
	prefix string
	log    *slog.Logger
	stops  []func()
}

type envOptions struct {
	storage    string // "" for a file store
	limits     string // YAML for acme's limits block
	noWorkers  bool   // start no queue workers (see startWorkers)
	visibility string // CHATVAULT_JOB_VISIBILITY_TIMEOUT
	// processing is YAML for acme's processing block; "" turns processing
	// off, so tests of other things run no ffmpeg.
	processing string
	vars       map[string]string // more environment variables
}

// newEnv starts the real service (real Redis, real storage) in-process.
func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	_, prefix := testenv.Redis(t)
	e := &env{t: t, prefix: prefix}
	e.origin = sourcetest.NewOrigin(t)
	e.graph = sourcetest.NewGraph(t, "meta-test-token")
	e.twilio = sourcetest.NewTwilio(t, twilioAccount, twilioAuthToken)
	e.d360 = sourcetest.NewDialog360(t, dialog360Key)
	e.store = opts.storage
	if e.store == "" {
		e.store = testenv.FileStore(t)
	}
	limits := opts.limits
	if limits == "" {
		limits = "{}"
	}
	processing := opts.processing
	if processing == "" {
		processing = "{enabled: false}"
	}
	yaml := fmt.Sprintf(`tenants:
  - id: acme
    api_keys:
      - {id: full, hash: %q, scopes: [media:write, media:read, media:tag, media:delete]}
      - {id: read, hash: %q, scopes: [media:read]}
      - {id: admin, hash: %q, scopes: [admin]}
    whatsapp_cloud:
      graph_base_url: %s
      access_token: ${ACME_TOKEN}
      app_secret: %s
      verify_token: %s
    twilio: {account_sid: %s, auth_token: %s, api_host: %q}
    dialog360: {base_url: %q, api_key: %s, webhook_token: %s}
    auto_tags:
      - {tag: invoice, caption_contains: [invoice, rechnung]}
      - {tag: visual, kinds: [image, video]}
    url_allowlist: [%q, %q, %q, %q, %q]
    limits: %s
    processing: %s
  - id: globex
    api_keys:
      - {id: full, hash: %q, scopes: [admin]}
    url_allowlist: [%q]
  - id: tiny
    api_keys:
      - {id: k, hash: %q, scopes: [admin]}
    rate_limit: {key: "2/1h", key_burst: 2, tenant: "100/1m", tenant_burst: 100}
`, auth.HashKey(keyAcme), auth.HashKey(keyAcmeRead), auth.HashKey(keyAcmeAdmin), e.graph.BaseURL, metaAppSecret, metaVerifyToken,
		twilioAccount, twilioAuthToken, e.twilio.APIHost, e.d360.BaseURL, dialog360Key, dialog360Webhook,
		e.origin.HostPort(), e.graph.HostPort(), e.twilio.HostPort(), e.twilio.CDNHostPort(), e.d360.HostPort(), limits, processing,
		auth.HashKey(keyGlobex), e.origin.HostPort(), auth.HashKey(keyRateLimit))
	cfgPath := filepath.Join(t.TempDir(), "chatvault.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"REDIS_URL":                testenv.RedisURL(),
		"CHATVAULT_REDIS_PREFIX":   prefix,
		"STORAGE_URL":              e.store,
		"CHATVAULT_CONFIG":         cfgPath,
		"CHATVAULT_SIGNING_SECRET": "test-signing-secret",
		"ACME_TOKEN":               e.graph.Token,
	}
	for k, v := range opts.vars {
		vars[k] = v
	}
	if opts.visibility != "" {
		vars["CHATVAULT_JOB_VISIBILITY_TIMEOUT"] = opts.visibility
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := app.Build(context.Background(), cfg, log, app.Contract{Spec: spec, Schemas: os.DirFS("../schemas")})
	if err != nil {
		t.Fatal(err)
	}
	e.app = a
	e.log = log
	e.srv = httptest.NewServer(a.Handler)
	t.Cleanup(func() {
		e.srv.Close()
		e.stopWorkers()
		a.Close()
	})
	if !opts.noWorkers {
		e.startWorkers(4)
	}
	return e
}

// startWorkers runs n queue workers until the test ends.
func (e *env) startWorkers(n int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.app.RunWorkers(ctx, n, e.log) }()
	e.stops = append(e.stops, func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("workers: %v", err)
		}
	})
}

func (e *env) stopWorkers() {
	for _, stop := range e.stops {
		stop()
	}
}

// response is a received answer, already checked against the contract.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// do sends a request with an API key ("" for none) and a body (nil, a
// string or bytes sent as JSON, or any value marshalled), validates the
// answer against openapi.yaml and returns it.
func (e *env) do(method, path, key string, body any, header ...string) response {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	target := path
	if !strings.HasPrefix(path, "http") {
		target = e.srv.URL + path
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.checkContract(req, raw, resp, got)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: got}
}

func (e *env) checkContract(req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	e.t.Helper()
	check, err := http.NewRequest(req.Method, req.URL.String(), bytes.NewReader(reqBody))
	if err != nil {
		e.t.Fatal(err)
	}
	check.Header = req.Header.Clone()
	if err := checker.CheckResponse(check, resp.StatusCode, resp.Header, body); err != nil {
		e.t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %.600s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// archive posts an archive request as acme and returns the answer.
func (e *env) archive(body any, header ...string) response {
	e.t.Helper()
	return e.do("POST", "/v1/media", keyAcme, body, header...)
}

// serveFile puts content on the origin and returns its URL.
func (e *env) serveFile(path string, content []byte, contentType string) string {
	e.origin.Serve(path, sourcetest.Bytes(content), contentType)
	return e.origin.URL + path
}

func urlSource(u string) map[string]any { return map[string]any{"type": "url", "url": u} }

func mustStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body: %s", r.Status, want, r.Body)
	}
}
