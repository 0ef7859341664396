package transcode_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/transcode"
)

// TestInput opens a video once, probes it, renders several renditions of
// it at once, and closes it.
func TestInput(t *testing.T) {
	dir := t.TempDir()
	tc := newTranscoder(t, transcode.Config{TempDir: dir, Concurrency: 2})
	ctx := context.Background()
	src := ffprobeFile(t, fixture(t, "video.mp4"))

	in, err := tc.Open(ctx, open(t, "video.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if n := countFiles(t, dir); n == 0 {
		t.Fatalf("Open spooled nothing into %s", dir)
	}

	p, err := in.Probe(ctx)
	if err != nil || p.Error != "" {
		t.Fatalf("Probe = %+v, %v", p, err)
	}
	if p.VideoCodec != "h264" || p.AudioCodec != "aac" || p.Width != 1280 || p.Height != 720 {
		t.Errorf("Probe = %+v", p)
	}
	specs := tc.Plan("video", p)
	if !equalSpecs(specs, []transcode.Spec{specMP4, specPoster}) {
		t.Fatalf("Plan = %v", specs)
	}
	// Two renditions of the same name at once too: each has its own output.
	specs = append(specs, with(specMP4, transcode.Params{VideoMaxHeight: 240}))

	outs := make([]bytes.Buffer, len(specs))
	results := make([]transcode.Result, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() { results[i], errs[i] = in.Render(ctx, spec, &outs[i]) })
	}
	wg.Wait()
	for i, spec := range specs {
		if errs[i] != nil {
			t.Errorf("Render %s %+v: %v", spec.Name, spec.Params, errs[i])
			continue
		}
		if results[i].Size != int64(outs[i].Len()) {
			t.Errorf("Result.Size = %d, wrote %d", results[i].Size, outs[i].Len())
		}
		got := ffprobe(t, outs[i].Bytes(), spec.Ext)
		t.Logf("%s %+v: %d bytes, %+v", spec.Name, spec.Params, results[i].Size, got)
		wantH := 720
		if spec.Params.VideoMaxHeight != 0 {
			wantH = spec.Params.VideoMaxHeight
		}
		switch spec.Name {
		case "mp4":
			if got.Codecs["video"] != "h264" || got.Codecs["audio"] != "aac" || got.Height != wantH {
				t.Errorf("mp4 %+v: want h264 + aac, %d high", got, wantH)
			}
			if !within(got.Duration, src.Duration, 100*time.Millisecond) {
				t.Errorf("mp4 duration %v, source %v", got.Duration, src.Duration)
			}
			assertFaststart(t, outs[i].Bytes())
		case "poster":
			if got.Codecs["video"] != "mjpeg" || got.Height != wantH {
				t.Errorf("poster %+v", got)
			}
		}
	}
	if peak := tc.PeakProcesses(); peak > 2 {
		t.Errorf("peak processes %d over Concurrency 2", peak)
	}

	// The spooled file outlives the renders: the Input can be used again.
	if p2, err := in.Probe(ctx); err != nil || p2 != p {
		t.Errorf("Probe after the renders = %+v, %v; want %+v", p2, err, p)
	}

	if err := in.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("%d files left in the temp folder after Close", n)
	}
	if err := in.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var out bytes.Buffer
	_, err = in.Render(ctx, specPoster, &out)
	if err == nil || out.Len() != 0 {
		t.Errorf("Render after Close = %v (%d bytes), want an error", err, out.Len())
	}
	t.Logf("Render after Close: %v", err)
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("%d files left in the temp folder", n)
	}
}

// countFiles counts the files and folders under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := -1 // dir itself
	err := filepath.WalkDir(dir, func(string, os.DirEntry, error) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpen(t *testing.T) {
	readErr := errors.New("connection reset")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		cfg      transcode.Config
		ctx      context.Context
		in       func(t *testing.T) io.Reader
		want     apperr.Kind // "" for success
		wantErr  error       // errors.Is, if set
		notMedia bool        // opened, but probes with a Probe.Error
	}{
		{name: "voice note", in: func(t *testing.T) io.Reader { return open(t, "voice.ogg") }},
		{name: "empty", in: func(*testing.T) io.Reader { return strings.NewReader("") }, want: apperr.UnsupportedMedia},
		{name: "over MaxInputBytes", cfg: transcode.Config{MaxInputBytes: 1 << 10},
			in: func(t *testing.T) io.Reader { return open(t, "voice.ogg") }, want: apperr.TooLarge},
		{name: "one byte over MaxInputBytes", cfg: transcode.Config{MaxInputBytes: 1 << 10},
			in: func(*testing.T) io.Reader { return bytes.NewReader(make([]byte, 1<<10+1)) }, want: apperr.TooLarge},
		{name: "exactly MaxInputBytes", cfg: transcode.Config{MaxInputBytes: 1 << 10},
			in: func(*testing.T) io.Reader { return bytes.NewReader(make([]byte, 1<<10)) }, notMedia: true},
		{name: "read error", in: func(*testing.T) io.Reader {
			return io.MultiReader(strings.NewReader("OggS"), errReader{readErr})
		}, wantErr: readErr},
		{name: "caller canceled", ctx: canceled, in: func(t *testing.T) io.Reader { return open(t, "voice.ogg") },
			want: apperr.Unavailable, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// newTranscoder checks the temp folder is empty at the end.
			tc := newTranscoder(t, tt.cfg)
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			in, err := tc.Open(ctx, tt.in(t))
			if tt.want == "" && tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer in.Close()
				p, err := in.Probe(ctx)
				if err != nil || (p.Error != "") != tt.notMedia {
					t.Errorf("Probe = %+v, %v", p, err)
				}
				return
			}
			t.Logf("%v", err)
			if in != nil {
				in.Close()
				t.Errorf("Open returned an Input with error %v", err)
			}
			if tt.want != "" && !apperr.Is(err, tt.want) {
				t.Errorf("Open = %v, want %s", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Open = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// stuckBinary is a stand-in for ffmpeg and ffprobe stuck on a hostile
// input: it answers -encoders like ffmpeg, and otherwise never ends on its
// own.
func stuckBinary(t *testing.T) string {
	t.Helper()
	stuck := filepath.Join(t.TempDir(), "stuck")
	script := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -encoders ] && exec " + ffmpegBin(t) + " \"$@\"; done\nexec sleep 600\n"
	if err := os.WriteFile(stuck, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return stuck
}

// TestErrTimeout: ErrTimeout marks a run stopped by Config.Timeout, never
// one stopped by the caller's context.
func TestErrTimeout(t *testing.T) {
	stuck := stuckBinary(t)
	withCancel := func(after time.Duration) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(after, cancel)
		return ctx, cancel
	}
	withDeadline := func(after time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), after)
	}
	canceledAlready := func(time.Duration) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	tests := []struct {
		name    string
		cfg     transcode.Config
		ctx     func(time.Duration) (context.Context, context.CancelFunc) // nil: Background
		probe   bool                                                      // Input.Probe rather than Render
		timeout bool                                                      // want ErrTimeout
		cause   error                                                     // want errors.Is
	}{
		// 3 s of 720p take libx264 far longer than 50 ms.
		{name: "real ffmpeg past Config.Timeout", cfg: transcode.Config{Timeout: 50 * time.Millisecond},
			timeout: true, cause: context.DeadlineExceeded},
		{name: "Config.Timeout over before ffmpeg starts", cfg: transcode.Config{Timeout: time.Nanosecond},
			timeout: true, cause: context.DeadlineExceeded},
		{name: "stuck ffmpeg past Config.Timeout", cfg: transcode.Config{Timeout: 200 * time.Millisecond, FFmpegPath: stuck},
			timeout: true, cause: context.DeadlineExceeded},
		{name: "stuck ffprobe past Config.Timeout", cfg: transcode.Config{Timeout: 200 * time.Millisecond, FFprobePath: stuck},
			probe: true, timeout: true, cause: context.DeadlineExceeded},
		{name: "the caller cancels real ffmpeg", ctx: withCancel,
			cause: context.Canceled},
		{name: "the caller cancels stuck ffmpeg", cfg: transcode.Config{FFmpegPath: stuck}, ctx: withCancel,
			cause: context.Canceled},
		{name: "the caller's deadline passes", cfg: transcode.Config{FFmpegPath: stuck}, ctx: withDeadline,
			cause: context.DeadlineExceeded},
		{name: "the caller's deadline before Config.Timeout", cfg: transcode.Config{Timeout: time.Second, FFmpegPath: stuck}, ctx: withDeadline,
			cause: context.DeadlineExceeded},
		{name: "the caller cancels a probe", cfg: transcode.Config{FFprobePath: stuck}, ctx: withCancel,
			probe: true, cause: context.Canceled},
		{name: "canceled before the call", ctx: canceledAlready,
			cause: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTranscoder(t, tt.cfg)
			// The input is spooled under a context that does not end.
			in, err := tc.Open(context.Background(), open(t, "video.mp4"))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			ctx := context.Background()
			if tt.ctx != nil {
				var cancel context.CancelFunc
				ctx, cancel = tt.ctx(100 * time.Millisecond)
				defer cancel()
			}
			var out bytes.Buffer
			if tt.probe {
				var p transcode.Probe
				p, err = in.Probe(ctx)
				if p.Error == "" {
					t.Errorf("Probe = %+v, want a Probe.Error", p)
				}
			} else {
				_, err = in.Render(ctx, specMP4, &out)
			}
			t.Logf("%v", err)
			if !apperr.Is(err, apperr.Unavailable) {
				t.Errorf("err = %v, want Unavailable", err)
			}
			if got := errors.Is(err, transcode.ErrTimeout); got != tt.timeout {
				t.Errorf("errors.Is(err, ErrTimeout) = %v, want %v", got, tt.timeout)
			}
			if !errors.Is(err, tt.cause) {
				t.Errorf("err = %v, want %v", err, tt.cause)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %d bytes", out.Len())
			}
			if n := tc.RunningProcesses(); n != 0 {
				t.Errorf("%d processes still running", n)
			}
		})
	}

	t.Run("Transcoder.Render and Probe", func(t *testing.T) {
		tc := newTranscoder(t, transcode.Config{Timeout: 200 * time.Millisecond, FFmpegPath: stuck, FFprobePath: stuck})
		_, err := tc.Render(context.Background(), specMP4, open(t, "video.mp4"), io.Discard)
		if !errors.Is(err, transcode.ErrTimeout) {
			t.Errorf("Render = %v, want ErrTimeout", err)
		}
		_, err = tc.Probe(context.Background(), open(t, "video.mp4"))
		if !errors.Is(err, transcode.ErrTimeout) {
			t.Errorf("Probe = %v, want ErrTimeout", err)
		}
	})
}
