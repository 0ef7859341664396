package transcode_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/transcode"
)

// TestRenderParams checks that a Spec's Params reach ffmpeg: each rendition
// is made with non-default Params and checked with the test's own ffprobe.
func TestRenderParams(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	tests := []struct {
		name  string
		file  string
		spec  transcode.Spec
		check func(t *testing.T, got ffprobed)
	}{
		{"mp3 at 32k", "voice.ogg", with(specMP3, transcode.Params{AudioBitrate: "32k"}), func(t *testing.T, got ffprobed) {
			if got.Codecs["audio"] != "mp3" {
				t.Errorf("codecs %v, want mp3", got.Codecs)
			}
			// CBR: about 32 kbit/s, where the default makes 64.
			if !near(got.BitRate, 32_000, 0.1) {
				t.Errorf("bit rate %d, want about 32000 (the default is 64000)", got.BitRate)
			}
		}},
		{"m4a at 48k", "voice.ogg", with(specM4A, transcode.Params{AudioBitrate: "48k"}), func(t *testing.T, got ffprobed) {
			if got.Codecs["audio"] != "aac" {
				t.Errorf("codecs %v, want aac", got.Codecs)
			}
			// AAC overshoots a little: 48k gives about 51 kbit/s.
			if !near(got.BitRate, 48_000, 0.15) {
				t.Errorf("bit rate %d, want about 48000 (the default is 64000)", got.BitRate)
			}
		}},
		{"mp4 capped at 240", "video.mp4", with(specMP4, transcode.Params{VideoMaxHeight: 240}), func(t *testing.T, got ffprobed) {
			if got.Codecs["video"] != "h264" || got.Codecs["audio"] != "aac" {
				t.Errorf("codecs %v, want h264 + aac", got.Codecs)
			}
			// 1280x720 → 426x240: the shorter side capped, the aspect
			// kept with an even width.
			if got.Width != 426 || got.Height != 240 {
				t.Errorf("size %dx%d, want 426x240", got.Width, got.Height)
			}
		}},
		{"portrait mp4 capped at 240", "portrait.mp4", with(specMP4, transcode.Params{VideoMaxHeight: 240}), func(t *testing.T, got ffprobed) {
			// 1080x1920 → 240x426: the shorter side is the width.
			if got.Width != 240 || got.Height != 426 {
				t.Errorf("size %dx%d, want 240x426", got.Width, got.Height)
			}
		}},
		{"mp4 not upscaled", "short.mp4", with(specMP4, transcode.Params{VideoMaxHeight: 1080}), func(t *testing.T, got ffprobed) {
			if got.Width != 320 || got.Height != 240 {
				t.Errorf("size %dx%d, want 320x240 as the original", got.Width, got.Height)
			}
		}},
		{"poster capped at 240", "video.mp4", with(specPoster, transcode.Params{VideoMaxHeight: 240}), func(t *testing.T, got ffprobed) {
			if got.Codecs["video"] != "mjpeg" || got.Width != 426 || got.Height != 240 {
				t.Errorf("poster %v %dx%d, want mjpeg 426x240", got.Codecs, got.Width, got.Height)
			}
		}},
		{"webp thumb within 64", "image.png", with(specThumbWebP, transcode.Params{ThumbMaxSize: 64}), func(t *testing.T, got ffprobed) {
			if got.Codecs["video"] != "webp" || got.Width != 64 || got.Height != 36 {
				t.Errorf("thumb %v %dx%d, want webp 64x36", got.Codecs, got.Width, got.Height)
			}
		}},
		{"jpeg thumb within 64", "image.png", with(specThumbJPEG, transcode.Params{ThumbMaxSize: 64}), func(t *testing.T, got ffprobed) {
			if got.Codecs["video"] != "mjpeg" || got.Width != 64 || got.Height != 36 {
				t.Errorf("thumb %v %dx%d, want mjpeg 64x36", got.Codecs, got.Width, got.Height)
			}
		}},
		{"portrait thumb within 64", "portrait.mp4", with(specThumbWebP, transcode.Params{ThumbMaxSize: 64}), func(t *testing.T, got ffprobed) {
			if got.Width != 36 || got.Height != 64 {
				t.Errorf("thumb %dx%d, want 36x64", got.Width, got.Height)
			}
		}},
		{"params of another kind are ignored", "voice.ogg", with(specMP3, transcode.Params{VideoMaxHeight: 240, VideoCRF: 51, ThumbMaxSize: 32}), func(t *testing.T, got ffprobed) {
			if got.Codecs["audio"] != "mp3" || !near(got.BitRate, 64_000, 0.1) {
				t.Errorf("mp3 %v at %d bit/s, want the default 64k", got.Codecs, got.BitRate)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := ffprobeFile(t, fixture(t, tt.file))
			var out bytes.Buffer
			res, err := tc.Render(context.Background(), tt.spec, open(t, tt.file), &out)
			if err != nil {
				t.Fatalf("Render %+v: %v", tt.spec, err)
			}
			got := ffprobe(t, out.Bytes(), tt.spec.Ext)
			t.Logf("%d bytes, %+v", res.Size, got)
			tt.check(t, got)
			if tt.spec.Name == "poster" || tt.spec.Name == "thumb" {
				return
			}
			if !within(got.Duration, src.Duration, 100*time.Millisecond) {
				t.Errorf("duration %v, source %v: want within 100 ms", got.Duration, src.Duration)
			}
			if !within(time.Duration(res.Probe.DurationMS)*time.Millisecond, src.Duration, 100*time.Millisecond) {
				t.Errorf("Result.Probe.DurationMS = %d, source %v", res.Probe.DurationMS, src.Duration)
			}
		})
	}

	t.Run("CRF", func(t *testing.T) {
		// A higher CRF is a coarser quantizer: a smaller file of the same
		// length and size.
		size := map[int]int64{}
		for _, crf := range []int{18, 40} {
			var out bytes.Buffer
			res, err := tc.Render(context.Background(), with(specMP4, transcode.Params{VideoCRF: crf}), open(t, "video.mp4"), &out)
			if err != nil {
				t.Fatalf("Render at CRF %d: %v", crf, err)
			}
			got := ffprobe(t, out.Bytes(), "mp4")
			if got.Codecs["video"] != "h264" || got.Width != 1280 || got.Height != 720 || !within(got.Duration, 3*time.Second, 100*time.Millisecond) {
				t.Errorf("CRF %d: %+v", crf, got)
			}
			size[crf] = res.Size
		}
		t.Logf("3 s of 720p: %d bytes at CRF 18, %d at CRF 40", size[18], size[40])
		if size[40] >= size[18] {
			t.Errorf("CRF 40 made %d bytes, CRF 18 %d: the CRF is not applied", size[40], size[18])
		}
	})
}

// near reports whether got is within frac of want.
func near(got, want int64, frac float64) bool {
	d := float64(got - want)
	return d >= -frac*float64(want) && d <= frac*float64(want)
}

// TestRenderInvalidParams: Params a Spec carries are checked before any
// work, by Render and Input.Render alike.
func TestRenderInvalidParams(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	ctx := context.Background()
	in, err := tc.Open(ctx, open(t, "video.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tests := []struct {
		name string
		spec transcode.Spec
	}{
		{"bad bitrate", with(specMP3, transcode.Params{AudioBitrate: "64kbps"})},
		{"bitrate as an option", with(specM4A, transcode.Params{AudioBitrate: "64k -i /etc/passwd"})},
		{"height 100", with(specMP4, transcode.Params{VideoMaxHeight: 100})},
		{"CRF 52", with(specMP4, transcode.Params{VideoCRF: 52})},
		{"CRF negative", with(specMP4, transcode.Params{VideoCRF: -1})},
		{"poster height too large", with(specPoster, transcode.Params{VideoMaxHeight: 10000})},
		{"thumb 10", with(specThumbWebP, transcode.Params{ThumbMaxSize: 10})},
		// A field that does not apply to the rendition is still checked.
		{"mp3 with a bad CRF", with(specMP3, transcode.Params{VideoCRF: 99})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := tc.Render(ctx, tt.spec, open(t, "video.mp4"), &out)
			if !apperr.Is(err, apperr.Invalid) || out.Len() != 0 {
				t.Errorf("Render = %v (%d bytes), want Invalid and nothing written", err, out.Len())
			}
			t.Logf("%v", err)
			_, err = in.Render(ctx, tt.spec, &out)
			if !apperr.Is(err, apperr.Invalid) || out.Len() != 0 {
				t.Errorf("Input.Render = %v (%d bytes), want Invalid and nothing written", err, out.Len())
			}
		})
	}
	if n := tc.PeakProcesses(); n != 0 {
		t.Errorf("%d ffmpeg/ffprobe processes ran for invalid specs", n)
	}
	// The Input is still usable.
	if _, err := in.Render(ctx, specPoster, io.Discard); err != nil {
		t.Errorf("Input.Render after invalid specs: %v", err)
	}
}

// TestRenderOddVideoMaxHeight: Params.Validate accepts any VideoMaxHeight
// from 144 to 4320, odd ones included; the fit filter must still give
// libx264 an even height (or width, for a portrait video), which yuv420p
// needs, or every mp4 render of a larger video would fail.
func TestRenderOddVideoMaxHeight(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{})
	for _, file := range []string{"video.mp4", "portrait.mp4"} {
		spec := with(specMP4, transcode.Params{VideoMaxHeight: 241})
		if err := spec.Params.Validate(); err != nil {
			continue // rejected up front: fixed that way
		}
		var out bytes.Buffer
		if _, err := tc.Render(context.Background(), spec, open(t, file), &out); err != nil {
			t.Errorf("%s with VideoMaxHeight 241: %v", file, err)
			continue
		}
		if got := ffprobe(t, out.Bytes(), "mp4"); got.Width%2 != 0 || got.Height%2 != 0 || min(got.Width, got.Height) > 241 {
			t.Errorf("%s with VideoMaxHeight 241: %dx%d", file, got.Width, got.Height)
		}
	}
}
