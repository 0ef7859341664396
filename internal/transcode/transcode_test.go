package transcode_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/transcode"
)

func TestProbe(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	tests := []struct {
		file           string
		duration       time.Duration // 0: not checked
		audio, video   string
		width, height  int
		container      string
		wantProbeError bool
	}{
		{file: "voice.ogg", duration: 10 * time.Second, audio: "opus", container: "ogg"},
		{file: "video.mp4", duration: 3 * time.Second, audio: "aac", video: "h264", width: 1280, height: 720, container: "mov,mp4,m4a,3gp,3g2,mj2"},
		{file: "portrait.mp4", duration: 2 * time.Second, video: "h264", width: 1080, height: 1920},
		{file: "rotated.mp4", duration: 3 * time.Second, audio: "aac", video: "h264", width: 720, height: 1280}, // as displayed
		{file: "image.png", video: "png", width: 1280, height: 720, container: "png_pipe"},
		{file: "truncated.mp4", wantProbeError: true},
		{file: "random.ogg", wantProbeError: true},
		{file: "playlist.m3u8", wantProbeError: true}, // hls is not an allowed input format
		{file: "concat.txt", wantProbeError: true},    // nor is concat
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := tc.Probe(context.Background(), open(t, tt.file))
			if err != nil {
				t.Fatalf("Probe: %v (a bad input is a Probe.Error, not an error)", err)
			}
			t.Logf("%+v", p)
			if tt.wantProbeError {
				if p.Error == "" {
					t.Fatalf("Probe.Error is empty for %s: %+v", tt.file, p)
				}
				if strings.Contains(p.Error, os.TempDir()) || strings.Contains(p.Error, "0x") {
					t.Errorf("Probe.Error leaks a path or an address: %q", p.Error)
				}
				if specs := tc.Plan("video", p); len(specs) != 0 {
					t.Errorf("Plan of a failed probe = %v, want none", specs)
				}
				return
			}
			if p.Error != "" {
				t.Fatalf("Probe.Error = %q", p.Error)
			}
			if tt.duration > 0 && !within(time.Duration(p.DurationMS)*time.Millisecond, tt.duration, 100*time.Millisecond) {
				t.Errorf("duration = %d ms, want %v ± 100 ms", p.DurationMS, tt.duration)
			}
			if p.AudioCodec != tt.audio || p.VideoCodec != tt.video {
				t.Errorf("codecs = %q/%q, want %q/%q", p.AudioCodec, p.VideoCodec, tt.audio, tt.video)
			}
			if p.Width != tt.width || p.Height != tt.height {
				t.Errorf("size = %dx%d, want %dx%d", p.Width, p.Height, tt.width, tt.height)
			}
			if tt.container != "" && p.Container != tt.container {
				t.Errorf("container = %q, want %q", p.Container, tt.container)
			}
			if tt.file != "image.png" && p.BitRate <= 0 {
				t.Errorf("bit rate = %d", p.BitRate)
			}
		})
	}
}

func TestProbeEmptyAndUnreadableInput(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	p, err := tc.Probe(context.Background(), strings.NewReader(""))
	if err != nil || p.Error == "" {
		t.Errorf("empty input: Probe = %+v, %v; want a Probe.Error", p, err)
	}
	readErr := errors.New("connection reset")
	p, err = tc.Probe(context.Background(), io.MultiReader(strings.NewReader("OggS"), errReader{readErr}))
	if !errors.Is(err, readErr) {
		t.Errorf("unreadable input: err = %v, want the read error", err)
	}
	if p.Error == "" {
		t.Errorf("unreadable input: Probe.Error is empty")
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestPlan(t *testing.T) {
	mp3 := newTranscoder(t, transcode.Config{})
	m4a := newTranscoder(t, transcode.Config{AudioFormat: "m4a", ThumbFormat: "jpeg", MaxPixels: 1000})
	opus := transcode.Probe{AudioCodec: "opus", Container: "ogg", DurationMS: 10000}
	mp3File := transcode.Probe{AudioCodec: "mp3", Container: "mp3"}
	aacFile := transcode.Probe{AudioCodec: "aac", Container: "mov,mp4,m4a,3gp,3g2,mj2"}
	video := transcode.Probe{AudioCodec: "aac", VideoCodec: "h264", Width: 1920, Height: 1080}
	image := transcode.Probe{VideoCodec: "mjpeg", Width: 1600, Height: 1200}
	tests := []struct {
		tc   *transcode.Transcoder
		kind string
		p    transcode.Probe
		want []transcode.Spec
	}{
		{mp3, "audio", opus, []transcode.Spec{{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}}},
		{m4a, "audio", opus, []transcode.Spec{{Name: "m4a", MimeType: "audio/mp4", Ext: "m4a"}}},
		{mp3, "audio", mp3File, nil},
		{mp3, "audio", aacFile, []transcode.Spec{{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}}},
		{m4a, "audio", aacFile, nil},
		{mp3, "audio", transcode.Probe{VideoCodec: "h264"}, nil},
		{mp3, "video", video, []transcode.Spec{
			{Name: "mp4", MimeType: "video/mp4", Ext: "mp4"},
			{Name: "poster", MimeType: "image/jpeg", Ext: "jpg"},
		}},
		{mp3, "video", opus, []transcode.Spec{{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}}},
		{mp3, "image", image, []transcode.Spec{{Name: "thumb", MimeType: "image/webp", Ext: "webp"}}},
		{m4a, "image", transcode.Probe{VideoCodec: "png", Width: 30, Height: 30}, []transcode.Spec{{Name: "thumb", MimeType: "image/jpeg", Ext: "jpg"}}},
		{m4a, "image", image, nil}, // over MaxPixels
		{mp3, "document", image, nil},
		{mp3, "sticker", transcode.Probe{VideoCodec: "webp", Width: 512, Height: 512}, nil},
		{mp3, "video", transcode.Probe{Error: "moov atom not found"}, nil},
		{mp3, "nonsense", opus, nil},
	}
	for _, tt := range tests {
		got := tt.tc.Plan(tt.kind, tt.p)
		if len(got) != len(tt.want) {
			t.Errorf("Plan(%s, %+v) = %v, want %v", tt.kind, tt.p, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("Plan(%s, %+v) = %v, want %v", tt.kind, tt.p, got, tt.want)
			}
		}
	}
}

func TestRender(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	m4a := newTranscoder(t, transcode.Config{AudioFormat: "m4a", ThumbFormat: "jpeg"})
	tests := []struct {
		name  string
		tc    *transcode.Transcoder
		file  string
		kind  string
		check func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed)
	}{
		{"voice note to mp3", tc, "voice.ogg", "audio", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			if spec.Name != "mp3" || got.Codecs["audio"] != "mp3" || got.Format != "mp3" || got.NumStreams != 1 {
				t.Errorf("%v: got %+v", spec, got)
			}
			if !within(got.Duration, 10*time.Second, 100*time.Millisecond) {
				t.Errorf("duration %v, want 10s ± 100ms", got.Duration)
			}
		}},
		{"voice note to m4a", m4a, "voice.ogg", "audio", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			if spec.Name != "m4a" || got.Codecs["audio"] != "aac" || got.NumStreams != 1 {
				t.Errorf("%v: got %+v", spec, got)
			}
			if !within(got.Duration, 10*time.Second, 100*time.Millisecond) {
				t.Errorf("duration %v, want 10s ± 100ms", got.Duration)
			}
			assertFaststart(t, data)
		}},
		{"video", tc, "video.mp4", "video", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			switch spec.Name {
			case "mp4":
				if got.Codecs["video"] != "h264" || got.Codecs["audio"] != "aac" {
					t.Errorf("mp4 codecs %v, want h264 + aac", got.Codecs)
				}
				if got.Height > 720 || got.Width != 1280 || got.Height != 720 {
					t.Errorf("mp4 size %dx%d, want 1280x720", got.Width, got.Height)
				}
				if !within(got.Duration, 3*time.Second, 100*time.Millisecond) {
					t.Errorf("duration %v, want 3s ± 100ms", got.Duration)
				}
				assertFaststart(t, data)
			case "poster":
				if got.Codecs["video"] != "mjpeg" || !bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}) {
					t.Errorf("poster is not a JPEG: %+v", got)
				}
				if got.Width != 1280 || got.Height != 720 {
					t.Errorf("poster size %dx%d", got.Width, got.Height)
				}
			default:
				t.Errorf("unexpected rendition %v", spec)
			}
		}},
		{"portrait video", tc, "portrait.mp4", "video", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			// The shorter side is capped: 1080x1920 becomes 720x1280.
			if got.Width != 720 || got.Height != 1280 {
				t.Errorf("%s size %dx%d, want 720x1280", spec.Name, got.Width, got.Height)
			}
			if spec.Name == "mp4" {
				if _, ok := got.Codecs["audio"]; ok {
					t.Errorf("a silent video got an audio stream")
				}
				assertFaststart(t, data)
			}
		}},
		{"rotated video", tc, "rotated.mp4", "video", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			// ffmpeg turns the frames upright; the rendition needs no rotation.
			if got.Width != 720 || got.Height != 1280 {
				t.Errorf("%s size %dx%d, want 720x1280", spec.Name, got.Width, got.Height)
			}
		}},
		{"video shorter than the poster's seek point", tc, "short.mp4", "video", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			if got.Width != 320 || got.Height != 240 {
				t.Errorf("%s size %dx%d, want 320x240", spec.Name, got.Width, got.Height)
			}
		}},
		{"image to webp thumb", tc, "image.png", "image", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			if spec.MimeType != "image/webp" || got.Codecs["video"] != "webp" || !bytes.HasPrefix(data, []byte("RIFF")) {
				t.Errorf("%v: got %+v", spec, got)
			}
			if got.Width > 320 || got.Height > 320 || got.Width != 320 || got.Height != 180 {
				t.Errorf("thumb %dx%d, want 320x180", got.Width, got.Height)
			}
		}},
		{"image to jpeg thumb", m4a, "image.png", "image", func(t *testing.T, spec transcode.Spec, data []byte, got ffprobed) {
			if spec.MimeType != "image/jpeg" || got.Codecs["video"] != "mjpeg" {
				t.Errorf("%v: got %+v", spec, got)
			}
			if got.Width != 320 || got.Height != 180 {
				t.Errorf("thumb %dx%d, want 320x180", got.Width, got.Height)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p, err := tt.tc.Probe(ctx, open(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			specs := tt.tc.Plan(tt.kind, p)
			if len(specs) == 0 {
				t.Fatalf("Plan(%s, %+v) is empty", tt.kind, p)
			}
			for _, spec := range specs {
				var out bytes.Buffer
				res, err := tt.tc.Render(ctx, spec, open(t, tt.file), &out)
				if err != nil {
					t.Fatalf("Render %v: %v", spec, err)
				}
				if res.Size != int64(out.Len()) || res.Size == 0 {
					t.Errorf("Result.Size = %d, wrote %d", res.Size, out.Len())
				}
				if res.Probe.Error != "" || (res.Probe.AudioCodec == "" && res.Probe.VideoCodec == "") {
					t.Errorf("Result.Probe = %+v", res.Probe)
				}
				got := ffprobe(t, out.Bytes(), spec.Ext)
				t.Logf("%s: %d bytes, %+v; Result.Probe %+v", spec.Name, res.Size, got, res.Probe)
				tt.check(t, spec, out.Bytes(), got)
			}
		})
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	mp3 := transcode.Spec{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}
	mp4 := transcode.Spec{Name: "mp4", MimeType: "video/mp4", Ext: "mp4"}
	poster := transcode.Spec{Name: "poster", MimeType: "image/jpeg", Ext: "jpg"}
	tests := []struct {
		name string
		spec transcode.Spec
		in   func(t *testing.T) io.Reader
		want apperr.Kind
	}{
		{"truncated mp4", mp4, func(t *testing.T) io.Reader { return open(t, "truncated.mp4") }, apperr.UnsupportedMedia},
		{"truncated mp4 poster", poster, func(t *testing.T) io.Reader { return open(t, "truncated.mp4") }, apperr.UnsupportedMedia},
		{"random bytes as ogg", mp3, func(t *testing.T) io.Reader { return open(t, "random.ogg") }, apperr.UnsupportedMedia},
		{"hls playlist naming a local file", mp4, func(t *testing.T) io.Reader { return open(t, "playlist.m3u8") }, apperr.UnsupportedMedia},
		{"concat script naming a local file", mp3, func(t *testing.T) io.Reader { return open(t, "concat.txt") }, apperr.UnsupportedMedia},
		{"empty input", mp3, func(t *testing.T) io.Reader { return strings.NewReader("") }, apperr.UnsupportedMedia},
		{"audio rendition of a silent image", mp3, func(t *testing.T) io.Reader { return open(t, "image.png") }, apperr.UnsupportedMedia},
		{"video rendition of a voice note", mp4, func(t *testing.T) io.Reader { return open(t, "voice.ogg") }, apperr.UnsupportedMedia},
		{"unknown rendition", transcode.Spec{Name: "gif"}, func(t *testing.T) io.Reader { return open(t, "video.mp4") }, apperr.Invalid},
		{"thumb in an unknown format", transcode.Spec{Name: "thumb", MimeType: "image/avif"}, func(t *testing.T) io.Reader { return open(t, "image.png") }, apperr.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := tc.Render(context.Background(), tt.spec, tt.in(t), &out)
			if !apperr.Is(err, tt.want) {
				t.Fatalf("Render = %v, want %s", err, tt.want)
			}
			t.Logf("%v", err)
			if out.Len() != 0 {
				t.Errorf("a failed render wrote %d bytes", out.Len())
			}
		})
	}
}

func TestRenderWriteError(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	writeErr := apperr.New(apperr.Unavailable, "storage is down")
	_, err := tc.Render(context.Background(), transcode.Spec{Name: "mp3"}, open(t, "voice.ogg"), failingWriter{writeErr})
	if !errors.Is(err, writeErr) {
		t.Fatalf("Render = %v, want the writer's error", err)
	}
}

func TestLimits(t *testing.T) {
	mp3 := transcode.Spec{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}
	ctx := context.Background()

	t.Run("output size", func(t *testing.T) {
		// 10 s at 64 kbit/s is about 80 KB.
		tc := newTranscoder(t, transcode.Config{MaxOutputBytes: 16 << 10})
		var out bytes.Buffer
		_, err := tc.Render(ctx, mp3, open(t, "voice.ogg"), &out)
		if !apperr.Is(err, apperr.TooLarge) || out.Len() != 0 {
			t.Fatalf("Render = %v (%d bytes written), want TooLarge and nothing written", err, out.Len())
		}
	})
	t.Run("output duration", func(t *testing.T) {
		tc := newTranscoder(t, transcode.Config{MaxDuration: 2 * time.Second})
		var out bytes.Buffer
		res, err := tc.Render(ctx, mp3, open(t, "voice.ogg"), &out)
		if err != nil {
			t.Fatal(err)
		}
		if got := ffprobe(t, out.Bytes(), "mp3").Duration; !within(got, 2*time.Second, 100*time.Millisecond) {
			t.Errorf("duration %v, want 2s ± 100ms", got)
		}
		if !within(time.Duration(res.Probe.DurationMS)*time.Millisecond, 2*time.Second, 100*time.Millisecond) {
			t.Errorf("Result.Probe.DurationMS = %d", res.Probe.DurationMS)
		}
	})
	t.Run("input size", func(t *testing.T) {
		tc := newTranscoder(t, transcode.Config{MaxInputBytes: 1 << 10})
		_, err := tc.Render(ctx, mp3, open(t, "voice.ogg"), io.Discard)
		if !apperr.Is(err, apperr.TooLarge) {
			t.Errorf("Render = %v, want TooLarge", err)
		}
		p, err := tc.Probe(ctx, open(t, "voice.ogg"))
		if err != nil || p.Error == "" {
			t.Errorf("Probe = %+v, %v; want a Probe.Error", p, err)
		}
	})
	t.Run("pixels", func(t *testing.T) {
		tc := newTranscoder(t, transcode.Config{MaxPixels: 640 * 480})
		p, err := tc.Probe(ctx, open(t, "image.png"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("probe of an image over MaxPixels: %+v", p)
		if specs := tc.Plan("image", p); len(specs) != 0 {
			t.Errorf("Plan of a 1280x720 image over MaxPixels = %v", specs)
		}
		// A video over the limit is not decoded while probing.
		if p, err := tc.Probe(ctx, open(t, "video.mp4")); err != nil || p.Error == "" {
			t.Errorf("Probe of a 1280x720 video over MaxPixels = %+v, %v; want a Probe.Error", p, err)
		}
		_, err = tc.Render(ctx, transcode.Spec{Name: "thumb", MimeType: "image/webp"}, open(t, "image.png"), io.Discard)
		if !apperr.Is(err, apperr.UnsupportedMedia) {
			t.Errorf("Render over MaxPixels = %v, want UnsupportedMedia", err)
		}
	})
}

func TestConcurrencyBound(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{Concurrency: 2})
	specs := []transcode.Spec{
		{Name: "mp3"}, {Name: "m4a"}, {Name: "mp3"}, {Name: "poster", MimeType: "image/jpeg"}, {Name: "mp3"}, {Name: "thumb", MimeType: "image/webp"},
	}
	files := []string{"voice.ogg", "voice.ogg", "voice.ogg", "video.mp4", "voice.ogg", "image.png"}
	for _, f := range files {
		fixture(t, f) // made before the clock starts, outside the bound
	}
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i := range specs {
		wg.Go(func() {
			f, err := os.Open(fixture(t, files[i]))
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			_, errs[i] = tc.Render(context.Background(), specs[i], f, io.Discard)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("render %d (%s): %v", i, specs[i].Name, err)
		}
	}
	peak := tc.PeakProcesses()
	t.Logf("at most %d processes alive at once", peak)
	if peak < 1 || peak > 2 {
		t.Errorf("peak processes = %d, want 1..2", peak)
	}
	if n := tc.RunningProcesses(); n != 0 {
		t.Errorf("%d processes still counted as running", n)
	}
}

func TestTimeout(t *testing.T) {
	mp4 := transcode.Spec{Name: "mp4", MimeType: "video/mp4", Ext: "mp4"}

	t.Run("expires before ffmpeg starts", func(t *testing.T) {
		tc := newTranscoder(t, transcode.Config{Timeout: time.Nanosecond})
		var out bytes.Buffer
		_, err := tc.Render(context.Background(), mp4, open(t, "video.mp4"), &out)
		if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Render = %v, want Unavailable with a deadline", err)
		}
		if out.Len() != 0 {
			t.Errorf("wrote %d bytes", out.Len())
		}
		p, err := tc.Probe(context.Background(), open(t, "video.mp4"))
		if !apperr.Is(err, apperr.Unavailable) || p.Error == "" {
			t.Errorf("Probe = %+v, %v; want Unavailable and a Probe.Error", p, err)
		}
	})

	stuck := stuckBinary(t)

	t.Run("kills a process that runs past the timeout", func(t *testing.T) {
		tc := newTranscoder(t, transcode.Config{Timeout: 300 * time.Millisecond, FFmpegPath: stuck, FFprobePath: stuck})
		var out bytes.Buffer
		_, err := tc.Render(context.Background(), mp4, open(t, "video.mp4"), &out)
		if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Render = %v, want Unavailable with a deadline", err)
		}
		t.Logf("%v", err)
		p, err := tc.Probe(context.Background(), open(t, "video.mp4"))
		if !apperr.Is(err, apperr.Unavailable) || p.Error == "" {
			t.Errorf("Probe = %+v, %v; want Unavailable and a Probe.Error", p, err)
		}
		if n := tc.RunningProcesses(); n != 0 {
			t.Errorf("%d processes still running", n)
		}
	})

	t.Run("the caller cancels", func(t *testing.T) {
		tc := newTranscoder(t, transcode.Config{FFmpegPath: stuck})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := tc.Render(ctx, mp4, open(t, "video.mp4"), io.Discard)
		if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Render = %v, want Unavailable and canceled", err)
		}
	})
}

func TestNew(t *testing.T) {
	ffmpegBin(t)
	for _, cfg := range []transcode.Config{
		{FFmpegPath: "/nonexistent/ffmpeg"},
		{FFprobePath: "/nonexistent/ffprobe"},
		{AudioFormat: "ogg"},
		{ThumbFormat: "gif"},
		{AudioBitrate: "-1"},
		{VideoAudioRate: "fast"},
		{VideoPreset: "-vf"},
	} {
		if _, err := transcode.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	tc, err := transcode.New(transcode.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := tc.Config()
	if got.AudioFormat != "mp3" || got.ThumbFormat != "webp" || got.Concurrency < 1 || got.Timeout != 2*time.Minute ||
		got.VideoMaxHeight != 720 || got.VideoCRF != 28 || got.ThumbMaxSize != 320 || got.MaxOutputBytes != 512<<20 {
		t.Errorf("defaults: %+v", got)
	}
}
