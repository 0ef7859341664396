package source

import (
	"context"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 10, 21, 7, 28, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Tue, 21 Oct 2025 07:28:30 GMT", 30 * time.Second, true},
		{"Tuesday, 21-Oct-25 07:29:00 GMT", time.Minute, true}, // RFC 850
		{"Tue Oct 21 07:28:05 2025", 5 * time.Second, true},    // asctime
		{"Mon, 20 Oct 2025 07:28:00 GMT", 0, true},             // in the past
		{"99999999999", 24 * time.Hour, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFullJitterStaysInRange(t *testing.T) {
	for range 1000 {
		if d := fullJitter(time.Second); d < 0 || d > time.Second {
			t.Fatalf("fullJitter(1s) = %v", d)
		}
	}
	if fullJitter(0) != 0 || fullJitter(-time.Second) != 0 {
		t.Error("fullJitter of a non-positive ceiling is not 0")
	}
}

// TestBackoffHonoursRetryAfter: Graph throttles twice with Retry-After,
// in seconds and as an HTTP date; the Fetcher waits exactly that long.
func TestBackoffHonoursRetryAfter(t *testing.T) {
	now := time.Date(2025, 10, 21, 7, 28, 0, 0, time.UTC)
	g := sourcetest.NewGraph(t, testToken, sourcetest.WithThrottled(1, "2"))
	g.FailNext(sourcetest.Resolve, 1, sourcetest.Failure{Status: 503, RetryAfter: now.Add(5 * time.Second).Format(http.TimeFormat)})
	info := g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)})
	f.now = func() time.Time { return now }

	r, err := fetchMedia(f, "100")
	if err != nil {
		t.Fatal(err)
	}
	if _, sum := readAll(t, r); sum != info.SHA256 {
		t.Error("wrong body")
	}
	if got, want := sl.all(), []time.Duration{2 * time.Second, 5 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}
	if g.Resolves() != 3 || g.Downloads() != 1 {
		t.Errorf("resolves %d downloads %d, want 3 and 1", g.Resolves(), g.Downloads())
	}
}

// TestBackoffIsExponentialWithoutRetryAfter: with no Retry-After the
// ceilings double from the base and stop at the maximum (the test's
// jitter takes the whole ceiling).
func TestBackoffIsExponentialWithoutRetryAfter(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken, sourcetest.WithUnavailable(4))
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)}, WithBackoff(100*time.Millisecond, 300*time.Millisecond, 5))
	r, err := fetchMedia(f, "100")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	if got := sl.all(); !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}
}

func TestBackoffGivesUpAfterAttempts(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken, sourcetest.WithThrottled(100, "3"))
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)})
	_, err := fetchMedia(f, "100")
	e := wantKind(t, err, apperr.Unavailable)
	wantDetail(t, e, "rate limit", "Graph error 4")
	if e.RetryAfter != 3*time.Second {
		t.Errorf("RetryAfter %v, want the provider's 3s", e.RetryAfter)
	}
	if g.Resolves() != defaultAttempts || len(sl.all()) != defaultAttempts-1 {
		t.Errorf("resolves %d, sleeps %v; want %d tries", g.Resolves(), sl.all(), defaultAttempts)
	}
	if g.Downloads() != 0 {
		t.Error("downloaded after a failed resolve")
	}
}

func TestBackoffDisabled(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken, sourcetest.WithUnavailable(1))
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)}, WithBackoff(0, 0, 1))
	_, err := fetchMedia(f, "100")
	e := wantKind(t, err, apperr.Unavailable)
	if e.RetryAfter != unavailableRetry || g.Resolves() != 1 || len(sl.all()) != 0 {
		t.Errorf("RetryAfter %v, resolves %d, sleeps %v", e.RetryAfter, g.Resolves(), sl.all())
	}
}

// TestBackoffLongRetryAfterIsHandedOn: waiting out ten minutes inside a
// request helps nobody; the caller learns when to come back.
func TestBackoffLongRetryAfterIsHandedOn(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken, sourcetest.WithThrottled(1, "600"))
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)})
	_, err := fetchMedia(f, "100")
	e := wantKind(t, err, apperr.Unavailable)
	if e.RetryAfter != 10*time.Minute || g.Resolves() != 1 || len(sl.all()) != 0 {
		t.Errorf("RetryAfter %v, resolves %d, sleeps %v", e.RetryAfter, g.Resolves(), sl.all())
	}
}

// TestBackoffTotalWaitIsBounded: three 25-second waits would exceed the
// one-minute budget; the third is not taken.
func TestBackoffTotalWaitIsBounded(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken, sourcetest.WithThrottled(10, "25"))
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)}, WithBackoff(time.Second, time.Second, 10))
	_, err := fetchMedia(f, "100")
	wantKind(t, err, apperr.Unavailable)
	if got := sl.all(); len(got) != 2 || g.Resolves() != 3 {
		t.Errorf("slept %v over %d resolves, want 2 waits", got, g.Resolves())
	}
}

func TestBackoffRespectsContext(t *testing.T) {
	t.Run("deadline sooner than the wait", func(t *testing.T) {
		g := sourcetest.NewGraph(t, testToken, sourcetest.WithThrottled(1, "20"))
		g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
		f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := f.Fetch(ctx, "t", Request{Type: TypeWhatsAppCloud, MediaID: "100"})
		e := wantKind(t, err, apperr.Unavailable)
		if e.RetryAfter != 20*time.Second || len(sl.all()) != 0 || g.Resolves() != 1 {
			t.Errorf("RetryAfter %v, sleeps %v, resolves %d", e.RetryAfter, sl.all(), g.Resolves())
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		g := sourcetest.NewGraph(t, testToken, sourcetest.WithUnavailable(5))
		g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
		f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)})
		ctx, cancel := context.WithCancel(context.Background())
		sl.hook = func(ctx context.Context, d time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		_, err := f.Fetch(ctx, "t", Request{Type: TypeWhatsAppCloud, MediaID: "100"})
		e := wantKind(t, err, apperr.BadGateway)
		wantDetail(t, e, "cancelled")
		if len(sl.all()) != 1 || g.Resolves() != 1 {
			t.Errorf("sleeps %v, resolves %d; want one of each", sl.all(), g.Resolves())
		}
	})
}

// TestBackoffOnDownload: the download is retried on its own, without
// resolving again.
func TestBackoffOnDownload(t *testing.T) {
	g := sourcetest.NewGraph(t, testToken)
	info := g.AddMedia("100", sourcetest.Generated(10_000, 3), "video/mp4")
	g.FailNext(sourcetest.Download, 1, sourcetest.Failure{Status: 429, RetryAfter: "1"})
	g.FailNext(sourcetest.Download, 1, sourcetest.Failure{Status: 502})
	f, sl := newRecordingFetcher(t, tenants{"t": graphTenant(g)})
	r, err := fetchMedia(f, "100")
	if err != nil {
		t.Fatal(err)
	}
	if _, sum := readAll(t, r); sum != info.SHA256 {
		t.Error("wrong body")
	}
	if got, want := sl.all(), []time.Duration{time.Second, time.Second}; !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v (Retry-After, then base·2)", got, want)
	}
	if g.Resolves() != 1 || g.Downloads() != 3 {
		t.Errorf("resolves %d downloads %d, want 1 and 3", g.Resolves(), g.Downloads())
	}

	g.FailNext(sourcetest.Download, 10, sourcetest.Failure{Status: 503, RetryAfter: "2"})
	_, err = fetchMedia(f, "100")
	e := wantKind(t, err, apperr.Unavailable)
	wantDetail(t, e, "WhatsApp media host", "503")
	if e.RetryAfter != 2*time.Second {
		t.Errorf("RetryAfter %v", e.RetryAfter)
	}
}

// TestBackoffOnNetworkErrors: a refused connection is tried again; an
// SSRF refusal is not.
func TestBackoffOnNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f, sl := newRecordingFetcher(t, tenants{"t": {GraphBaseURL: "http://" + addr + "/v23.0", GraphToken: testToken}})
	_, err = fetchMedia(f, "100")
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "could not connect")
	if len(sl.all()) != defaultAttempts-1 {
		t.Errorf("slept %v, want %d waits", sl.all(), defaultAttempts-1)
	}

	g := sourcetest.NewGraph(t, testToken)
	g.AddMedia("100", sourcetest.Bytes([]byte("x")), "image/png")
	s := graphTenant(g)
	s.Allowlist = nil
	f, sl = newRecordingFetcher(t, tenants{"t": s})
	_, err = fetchMedia(f, "100")
	wantKind(t, err, apperr.BadGateway)
	if len(sl.all()) != 0 || g.Downloads() != 0 {
		t.Errorf("an SSRF refusal was retried: sleeps %v", sl.all())
	}
}

func TestTransientError(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{ctx, &net.OpError{Op: "dial", Err: &net.AddrError{Err: "refused"}}, true},
		{ctx, &refusedError{"loopback"}, false},
		{ctx, &redirectError{5}, false},
		{ctx, &net.DNSError{Err: "no such host", IsNotFound: true}, false},
		{ctx, &net.DNSError{Err: "timeout", IsTimeout: true}, true},
		{ctx, context.Canceled, false},
		{cancelled, &net.OpError{Op: "read"}, false},
	}
	for _, c := range cases {
		if got := transientError(c.ctx, c.err); got != c.want {
			t.Errorf("transientError(%v) = %v", c.err, got)
		}
	}
}
