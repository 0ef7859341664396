// Package browsertest plays a media URL in a real headless Chromium and
// reports what its <audio> or <video> element reached, so tests check that
// the renditions chatvault serves (MP3 voice notes, H.264/AAC MP4) play in
// the browser a CRM embeds them in, not only that ffprobe reads them.
//
// It needs no DevTools protocol: Chromium opens a page from a private
// httptest server, and the page's script watches the element and POSTs what
// it saw back to that server. Chromium comes from Debian's chromium package,
// installed by scripts/install-chromium.sh (the test command runs it).
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binaries are the names Find looks up on PATH, in order.
var binaries = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the Chromium binary: $CHATVAULT_CHROMIUM when set (it must
// then be executable; there is no fallback), else the first of chromium,
// chromium-browser, google-chrome and google-chrome-stable on PATH.
func Find() (string, error) {
	if p := os.Getenv("CHATVAULT_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("CHATVAULT_CHROMIUM: %w", err)
		}
		return path, nil
	}
	for _, name := range binaries {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("no Chromium on PATH (looked for %s): run scripts/install-chromium.sh or set CHATVAULT_CHROMIUM",
		strings.Join(binaries, ", "))
}

// Chromium returns the Chromium binary for a test. Without one the test is
// skipped, or fails when $CI is set: the test command installs Chromium, so
// a CI run without it is broken, not incomplete.
func Chromium(tb testing.TB) string {
	tb.Helper()
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("browsertest: %v", err)
		}
		tb.Skipf("browsertest: %v", err)
	}
	return bin
}

// HaveEnoughData is HTMLMediaElement.HAVE_ENOUGH_DATA, the readyState of an
// element that expects to play to the end without stalling.
const HaveEnoughData = 4

// Result is what the media element reached when the page reported.
type Result struct {
	ReadyState   int     // 0 (HAVE_NOTHING) to 4 (HAVE_ENOUGH_DATA)
	NetworkState int     // 0 (EMPTY) to 3 (NO_SOURCE)
	Duration     float64 // seconds; NaN before the metadata, +Inf for an unbounded stream
	CurrentTime  float64 // seconds; where playback was (PlayThrough)
	Ended        bool    // playback reached the end (PlayThrough)
	// Error is the element's MediaError, as "MEDIA_ERR_DECODE (3): …", or
	// why the page gave up ("timeout after …"); "" when the element got
	// where it was asked to: readyState 4 (Play) or the end (PlayThrough).
	Error       string
	ContentType string   // the Content-Type the media URL answered with
	CanPlayType string   // the element's canPlayType(ContentType): "probably", "maybe" or ""
	Events      []string // the element's events in order ("+81ms loadeddata rs=4"), for failure messages
}

// Defaults. The page reports a timeout defaultPageTimeout after it loads,
// or a second before ctx's deadline when ctx has one; Play gives up on
// Chromium reportGrace after that.
const (
	defaultPageTimeout = 20 * time.Second
	minPageTimeout     = 500 * time.Millisecond
	reportGrace        = 10 * time.Second
	probeTimeout       = 10 * time.Second
	throughRate        = 16 // Chromium's highest playbackRate
)

// flags are Chromium's command line before --user-data-dir and the page's
// URL.
var flags = []string{
	"--headless=new", // there is no display
	// Chromium refuses to start as root (as in CI containers) with its
	// sandbox, and the sandbox needs user namespaces; the page is our own.
	"--no-sandbox",
	"--disable-gpu",
	"--disable-dev-shm-usage", // /dev/shm is small in containers; Chromium crashes when it fills
	// Crashpad's handler daemonizes out of the process group; it exits when
	// Chromium does, and HOME points into the temporary profile, so it
	// leaves nothing behind. --disable-crashpad-for-testing would stop it,
	// but since Chromium 152 it crash-loops the network service ("Crashing
	// due to FD ownership violation") and no page ever loads.
	"--disable-breakpad",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-default-apps",
	"--disable-extensions",
	"--no-first-run",
	"--no-default-browser-check",
	"--no-proxy-server", // the servers are on loopback; ignore $http_proxy
	"--password-store=basic",
	"--mute-audio",
	"--autoplay-policy=no-user-gesture-required", // PlayThrough's play() without a click
	"--window-size=640,480",
}

// Play loads mediaURL into an <audio> or <video> element (tag) in headless
// Chromium and waits until the element reaches readyState 4
// (HAVE_ENOUGH_DATA), fails, or the page times out. The element has
// preload="auto" and is never played: Chromium buffers a paused element to
// readyState 4 by itself.
//
// Media that does not load is a Result with Error set, not an error: the
// error is for Play failing (Chromium would not start or exited early, ctx
// ended). Before Chromium starts, Play fetches the first byte of mediaURL
// (Range: bytes=0-0) to learn its Content-Type for CanPlayType, so the
// media server sees that request besides the browser's. The page is on
// another origin than mediaURL, as an embedding CRM is; a media element
// needs no CORS headers. Chromium and its temporary profile are gone when
// Play returns.
func Play(ctx context.Context, bin, tag, mediaURL string) (Result, error) {
	return run(ctx, bin, tag, mediaURL, false)
}

// PlayThrough is Play, but plays the media (muted, at 16 times normal
// speed) until it ends: Error is set unless the element reached its end.
// It catches what readyState 4 does not, such as a faststart MP4 cut short,
// whose intact moov atom claims the full duration: it reaches readyState 4
// and fails only when decoding reaches the cut. It takes about a sixteenth
// of the media's duration besides Play's time; mind the page timeout (see
// Play) for long media.
func PlayThrough(ctx context.Context, bin, tag, mediaURL string) (Result, error) {
	return run(ctx, bin, tag, mediaURL, true)
}

func run(ctx context.Context, bin, tag, mediaURL string, through bool) (Result, error) {
	if tag != "audio" && tag != "video" {
		return Result{}, fmt.Errorf("browsertest: tag %q is neither audio nor video", tag)
	}
	contentType, err := probe(ctx, mediaURL)
	if err != nil {
		return Result{}, err
	}

	pageTimeout := defaultPageTimeout
	if d, ok := ctx.Deadline(); ok {
		pageTimeout = max(time.Until(d)-time.Second, minPageTimeout)
	}
	var page bytes.Buffer
	err = pageTemplate.Execute(&page, pageData{
		Video: tag == "video",
		Src:   mediaURL,
		Config: pageConfig{
			Mime:      contentType,
			TimeoutMS: pageTimeout.Milliseconds(),
			Through:   through,
			Rate:      throughRate,
		},
	})
	if err != nil {
		return Result{}, fmt.Errorf("browsertest: page: %w", err)
	}

	reports := make(chan pageReport, 1)
	srv := httptest.NewServer(pageHandler(page.Bytes(), reports))
	defer srv.Close()

	// The profile, and HOME and the XDG folders, where Chromium, D-Bus and
	// PulseAudio would otherwise leave files in the user's home.
	profile, err := os.MkdirTemp("", "browsertest-chromium-")
	if err != nil {
		return Result{}, fmt.Errorf("browsertest: %w", err)
	}
	defer os.RemoveAll(profile)
	for _, dir := range []string{"home", "config", "cache", "data"} {
		if err := os.Mkdir(filepath.Join(profile, dir), 0o700); err != nil {
			return Result{}, fmt.Errorf("browsertest: %w", err)
		}
	}
	env := append(os.Environ(),
		"HOME="+filepath.Join(profile, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(profile, "config"),
		"XDG_CACHE_HOME="+filepath.Join(profile, "cache"),
		"XDG_DATA_HOME="+filepath.Join(profile, "data"),
	)
	args := append(append([]string{}, flags...), "--user-data-dir="+filepath.Join(profile, "chromium"), srv.URL+"/")

	output := &tailBuffer{max: 8 << 10}
	proc, err := start(bin, args, env, output)
	if err != nil {
		return Result{}, fmt.Errorf("browsertest: start %s: %w", bin, err)
	}
	defer proc.stop() // before the profile is removed and the server closed

	safety := time.NewTimer(pageTimeout + reportGrace)
	defer safety.Stop()
	select {
	case r := <-reports:
		res, err := r.result(contentType)
		if err != nil {
			return Result{}, fmt.Errorf("browsertest: the page's report: %w", err)
		}
		return res, nil
	case err := <-proc.exited:
		return Result{}, fmt.Errorf("browsertest: chromium exited before the page reported (%v): %s", err, chromiumLog(output))
	case <-safety.C:
		return Result{}, fmt.Errorf("browsertest: the page did not report within %s: %s", pageTimeout+reportGrace, chromiumLog(output))
	case <-ctx.Done():
		return Result{}, fmt.Errorf("browsertest: %w", ctx.Err())
	}
}

// probe returns the Content-Type mediaURL answers a one-byte range request
// with. Any status will do: a missing file is the element's error to
// report; an unreachable server is Play's.
func probe(ctx context.Context, mediaURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mediaURL, nil)
	if err != nil {
		return "", fmt.Errorf("browsertest: media URL: %w", err)
	}
	req.Header.Set("Range", "bytes=0-0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("browsertest: media URL: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Header.Get("Content-Type"), nil
}

// pageHandler serves the page at / and takes its first report at
// POST /result.
func pageHandler(page []byte, reports chan<- pageReport) http.Handler {
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var pr pageReport
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&pr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		once.Do(func() { reports <- pr })
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// pageReport is the page's JSON. The times are JavaScript's String() of
// the numbers, since JSON has no NaN or Infinity.
type pageReport struct {
	ReadyState   int      `json:"readyState"`
	NetworkState int      `json:"networkState"`
	Duration     string   `json:"duration"`
	CurrentTime  string   `json:"currentTime"`
	Ended        bool     `json:"ended"`
	Error        string   `json:"error"`
	CanPlayType  string   `json:"canPlayType"`
	Events       []string `json:"events"`
}

func (p pageReport) result(contentType string) (Result, error) {
	duration, err := strconv.ParseFloat(p.Duration, 64) // takes "NaN" and "Infinity"
	if err != nil {
		return Result{}, fmt.Errorf("duration %q: %w", p.Duration, err)
	}
	currentTime, err := strconv.ParseFloat(p.CurrentTime, 64)
	if err != nil {
		return Result{}, fmt.Errorf("currentTime %q: %w", p.CurrentTime, err)
	}
	return Result{
		ReadyState:   p.ReadyState,
		NetworkState: p.NetworkState,
		Duration:     duration,
		CurrentTime:  currentTime,
		Ended:        p.Ended,
		Error:        p.Error,
		ContentType:  contentType,
		CanPlayType:  p.CanPlayType,
		Events:       p.Events,
	}, nil
}

// chromiumLog is the tail of Chromium's output without the D-Bus errors it
// prints on machines with no system bus.
func chromiumLog(b *tailBuffer) string {
	var keep []string
	for line := range strings.Lines(b.String()) {
		if strings.Contains(line, "dbus/") || strings.TrimSpace(line) == "" {
			continue
		}
		keep = append(keep, strings.TrimRight(line, "\n"))
	}
	if len(keep) == 0 {
		return "no output"
	}
	return strings.Join(keep, "\n")
}

// tailBuffer keeps the last max bytes written to it. The exec package's
// goroutines write Chromium's output while Play may read it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) > b.max {
		return strings.ToValidUTF8(string(b.buf[len(b.buf)-b.max:]), "")
	}
	return string(b.buf)
}
