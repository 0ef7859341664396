package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

// tenants is a SettingsFunc backed by a map.
type tenants map[string]Settings

func (ts tenants) get(id string) (Settings, bool) {
	s, ok := ts[id]
	return s, ok
}

// testNames is the only DNS the tests see; nothing leaves the machine.
var testNames = map[string][]string{
	"evil.test":   {"10.0.0.1"},
	"loop.test":   {"127.0.0.1"},
	"meta.test":   {"169.254.169.254"},
	"mixed.test":  {"10.0.0.1", "::1"},
	"mapped.test": {"::ffff:127.0.0.1"},
	"nat64.test":  {"64:ff9b::7f00:1"},
	"origin.test": {"127.0.0.1"},
	"cdn.test":    {"127.0.0.1"},
	"localhost":   {"127.0.0.1", "::1"},
}

func testResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range testNames[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// newTestFetcher never really sleeps between retries, and its jitter is
// the full ceiling, so that waits are predictable.
func newTestFetcher(t *testing.T, ts tenants, opts ...Option) *Fetcher {
	f, _ := newRecordingFetcher(t, ts, opts...)
	return f
}

// newRecordingFetcher is newTestFetcher that also reports the waits asked for.
func newRecordingFetcher(t *testing.T, ts tenants, opts ...Option) (*Fetcher, *sleeps) {
	t.Helper()
	f := New(ts.get, append([]Option{WithResolver(testResolver)}, opts...)...)
	sl := &sleeps{}
	f.sleep = sl.sleep
	f.jitter = func(ceiling time.Duration) time.Duration { return ceiling }
	t.Cleanup(f.CloseIdleConnections)
	return f, sl
}

// sleeps records the waits a Fetcher asks for instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
	// hook, if set, runs instead of returning at once.
	hook func(ctx context.Context, d time.Duration) error
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		return hook(ctx, d)
	}
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// wantKind fails unless err is an *apperr.Error of kind k.
func wantKind(t *testing.T, err error, k apperr.Kind) *apperr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", k)
	}
	e, ok := apperr.As(err)
	if !ok {
		t.Fatalf("got %T %v, want *apperr.Error of kind %s", err, err, k)
	}
	if e.Kind != k {
		t.Fatalf("got kind %s (%v), want %s", e.Kind, err, k)
	}
	return e
}

func wantDetail(t *testing.T, e *apperr.Error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(e.Detail, p) {
			t.Errorf("detail %q does not mention %q", e.Detail, p)
		}
	}
}

// readAll reads and closes a result body, returning its length and digest.
func readAll(t *testing.T, r *Result) (int64, string) {
	t.Helper()
	defer r.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}
