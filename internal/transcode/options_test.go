package transcode_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/transcode"
)

var (
	specMP3       = transcode.Spec{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}
	specM4A       = transcode.Spec{Name: "m4a", MimeType: "audio/mp4", Ext: "m4a"}
	specMP4       = transcode.Spec{Name: "mp4", MimeType: "video/mp4", Ext: "mp4"}
	specPoster    = transcode.Spec{Name: "poster", MimeType: "image/jpeg", Ext: "jpg"}
	specThumbWebP = transcode.Spec{Name: "thumb", MimeType: "image/webp", Ext: "webp"}
	specThumbJPEG = transcode.Spec{Name: "thumb", MimeType: "image/jpeg", Ext: "jpg"}
)

// with returns s carrying p.
func with(s transcode.Spec, p transcode.Params) transcode.Spec {
	s.Params = p
	return s
}

// disabled is an Options.Disabled set.
func disabled(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func TestPlanWith(t *testing.T) {
	mp3 := newTranscoder(t, transcode.Config{})                                        // mp3 + webp by default
	m4a := newTranscoder(t, transcode.Config{AudioFormat: "m4a", ThumbFormat: "jpeg"}) // m4a + jpeg by default
	opus := transcode.Probe{AudioCodec: "opus", Container: "ogg", DurationMS: 10000}
	mp3File := transcode.Probe{AudioCodec: "mp3", Container: "mp3"}
	aacFile := transcode.Probe{AudioCodec: "aac", Container: "mov,mp4,m4a,3gp,3g2,mj2"}
	video := transcode.Probe{AudioCodec: "aac", VideoCodec: "h264", Width: 1920, Height: 1080}
	image := transcode.Probe{VideoCodec: "mjpeg", Width: 1600, Height: 1200}
	params := transcode.Params{AudioBitrate: "32k", VideoMaxHeight: 480, VideoCRF: 30, ThumbMaxSize: 128}
	all := disabled(transcode.RenditionNames...)
	tests := []struct {
		name string
		tc   *transcode.Transcoder
		kind string
		p    transcode.Probe
		o    transcode.Options
		want []transcode.Spec
	}{
		// The audio format is chosen per call, whatever the Config says.
		{"audio, config format", mp3, "audio", opus, transcode.Options{}, []transcode.Spec{specMP3}},
		{"audio as m4a on an mp3 transcoder", mp3, "audio", opus, transcode.Options{AudioFormat: "m4a"}, []transcode.Spec{specM4A}},
		{"audio as mp3 on an m4a transcoder", m4a, "audio", opus, transcode.Options{AudioFormat: "mp3"}, []transcode.Spec{specMP3}},
		{"audio as m4a on an m4a transcoder", m4a, "audio", opus, transcode.Options{AudioFormat: "m4a"}, []transcode.Spec{specM4A}},
		{"mp3 original, mp3 format: plays everywhere", m4a, "audio", mp3File, transcode.Options{AudioFormat: "mp3"}, nil},
		{"mp3 original, m4a format", mp3, "audio", mp3File, transcode.Options{AudioFormat: "m4a"}, []transcode.Spec{specM4A}},
		{"aac original, m4a format: plays everywhere", mp3, "audio", aacFile, transcode.Options{AudioFormat: "m4a"}, nil},
		{"aac original, mp3 format", m4a, "audio", aacFile, transcode.Options{AudioFormat: "mp3"}, []transcode.Spec{specMP3}},
		{"video without a picture, planned as audio", mp3, "video", opus, transcode.Options{AudioFormat: "m4a"}, []transcode.Spec{specM4A}},

		// The thumbnail format too.
		{"image, config format", mp3, "image", image, transcode.Options{}, []transcode.Spec{specThumbWebP}},
		{"image as jpeg on a webp transcoder", mp3, "image", image, transcode.Options{ThumbFormat: "jpeg"}, []transcode.Spec{specThumbJPEG}},
		{"image as webp on a jpeg transcoder", m4a, "image", image, transcode.Options{ThumbFormat: "webp"}, []transcode.Spec{specThumbWebP}},
		{"formats do not touch video", mp3, "video", video, transcode.Options{AudioFormat: "m4a", ThumbFormat: "jpeg"}, []transcode.Spec{specMP4, specPoster}},

		// Disabled renditions are left out; a plan with nothing left is nil.
		{"video, poster disabled", mp3, "video", video, transcode.Options{Disabled: disabled("poster")}, []transcode.Spec{specMP4}},
		{"video, mp4 disabled", mp3, "video", video, transcode.Options{Disabled: disabled("mp4")}, []transcode.Spec{specPoster}},
		{"video, both disabled", mp3, "video", video, transcode.Options{Disabled: disabled("mp4", "poster")}, nil},
		{"video, all disabled", mp3, "video", video, transcode.Options{Disabled: all}, nil},
		{"audio, mp3 disabled", mp3, "audio", opus, transcode.Options{Disabled: disabled("mp3")}, nil},
		{"audio, the other format disabled", mp3, "audio", opus, transcode.Options{Disabled: disabled("m4a")}, []transcode.Spec{specMP3}},
		{"audio as m4a, mp3 disabled", mp3, "audio", opus, transcode.Options{AudioFormat: "m4a", Disabled: disabled("mp3")}, []transcode.Spec{specM4A}},
		{"audio as m4a, m4a disabled", mp3, "audio", opus, transcode.Options{AudioFormat: "m4a", Disabled: disabled("m4a")}, nil},
		{"audio, all disabled", m4a, "audio", opus, transcode.Options{Disabled: all}, nil},
		{"image, thumb disabled", mp3, "image", image, transcode.Options{Disabled: disabled("thumb")}, nil},
		{"image, others disabled", mp3, "image", image, transcode.Options{Disabled: disabled("mp3", "mp4", "poster")}, []transcode.Spec{specThumbWebP}},
		{"disabled explicitly false", mp3, "video", video, transcode.Options{Disabled: map[string]bool{"poster": false}}, []transcode.Spec{specMP4, specPoster}},

		// Params are copied onto every spec.
		{"video with params", mp3, "video", video, transcode.Options{Params: params}, []transcode.Spec{with(specMP4, params), with(specPoster, params)}},
		{"audio with params", mp3, "audio", opus, transcode.Options{AudioFormat: "m4a", Params: params}, []transcode.Spec{with(specM4A, params)}},
		{"image with params", m4a, "image", image, transcode.Options{Params: params}, []transcode.Spec{with(specThumbJPEG, params)}},
		{"params and a disabled rendition", mp3, "video", video, transcode.Options{Disabled: disabled("mp4"), Params: params}, []transcode.Spec{with(specPoster, params)}},

		// What has no rendition still has none.
		{"failed probe", mp3, "video", transcode.Probe{Error: "moov atom not found"}, transcode.Options{Params: params}, nil},
		{"document", mp3, "document", image, transcode.Options{ThumbFormat: "jpeg"}, nil},
		{"sticker", mp3, "sticker", transcode.Probe{VideoCodec: "webp", Width: 512, Height: 512}, transcode.Options{ThumbFormat: "jpeg"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.tc.PlanWith(tt.kind, tt.p, tt.o)
			if !equalSpecs(got, tt.want) {
				t.Errorf("PlanWith(%s, %+v, %+v) = %v, want %v", tt.kind, tt.p, tt.o, got, tt.want)
			}
			if tt.want == nil && got != nil {
				t.Errorf("PlanWith = %#v, want nil", got)
			}
		})
	}

	// Plan is PlanWith with zero Options, and a PlanWith with Params leaves
	// later plans alone.
	for _, tc := range []*transcode.Transcoder{mp3, m4a} {
		for _, kp := range []struct {
			kind string
			p    transcode.Probe
		}{{"audio", opus}, {"audio", aacFile}, {"video", video}, {"image", image}} {
			withParams := tc.PlanWith(kp.kind, kp.p, transcode.Options{Params: params})
			plan, zero := tc.Plan(kp.kind, kp.p), tc.PlanWith(kp.kind, kp.p, transcode.Options{})
			if !equalSpecs(plan, zero) {
				t.Errorf("Plan(%s) = %v, PlanWith zero Options = %v", kp.kind, plan, zero)
			}
			for i, s := range plan {
				if s.Params != (transcode.Params{}) {
					t.Errorf("Plan(%s) after a PlanWith with params: %+v", kp.kind, s)
				}
				if withParams[i].Params != params {
					t.Errorf("PlanWith(%s) with params: %+v", kp.kind, withParams[i])
				}
			}
		}
	}
}

func equalSpecs(a, b []transcode.Spec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// degradedFFmpeg is a stand-in for an ffmpeg built without libmp3lame,
// libwebp and libx264: it hides them from -encoders and otherwise runs the
// real ffmpeg.
func degradedFFmpeg(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ffmpeg-lgpl")
	script := "#!/bin/sh\n" +
		"for a in \"$@\"; do\n" +
		"  if [ \"$a\" = -encoders ]; then\n" +
		"    " + ffmpegBin(t) + " \"$@\" | grep -v -E ' (libmp3lame|libwebp|libwebp_anim|libx264|libx264rgb) '\n" +
		"    exit 0\n" +
		"  fi\n" +
		"done\n" +
		"exec " + ffmpegBin(t) + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPlanWithDegradedEncoders: the formats asked for degrade to what
// ffmpeg can encode, per call as they do in the Config.
func TestPlanWithDegradedEncoders(t *testing.T) {
	tc := newTranscoder(t, transcode.Config{FFmpegPath: degradedFFmpeg(t)})
	if c := tc.Config(); c.AudioFormat != "m4a" || c.ThumbFormat != "jpeg" {
		t.Fatalf("Config formats = %s/%s, want m4a/jpeg without libmp3lame and libwebp", c.AudioFormat, c.ThumbFormat)
	}
	opus := transcode.Probe{AudioCodec: "opus", Container: "ogg"}
	video := transcode.Probe{AudioCodec: "aac", VideoCodec: "h264", Width: 1280, Height: 720}
	image := transcode.Probe{VideoCodec: "png", Width: 1280, Height: 720}
	tests := []struct {
		name string
		kind string
		p    transcode.Probe
		o    transcode.Options
		want []transcode.Spec
	}{
		{"mp3 asked, m4a planned", "audio", opus, transcode.Options{AudioFormat: "mp3"}, []transcode.Spec{specM4A}},
		{"mp3 asked, m4a disabled", "audio", opus, transcode.Options{AudioFormat: "mp3", Disabled: disabled("m4a")}, nil},
		{"webp asked, jpeg planned", "image", image, transcode.Options{ThumbFormat: "webp"}, []transcode.Spec{specThumbJPEG}},
		{"no libx264: a poster only", "video", video, transcode.Options{}, []transcode.Spec{specPoster}},
		{"no libx264, poster disabled", "video", video, transcode.Options{Disabled: disabled("poster")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tc.PlanWith(tt.kind, tt.p, tt.o); !equalSpecs(got, tt.want) {
				t.Errorf("PlanWith(%s, %+v) = %v, want %v", tt.kind, tt.o, got, tt.want)
			}
		})
	}

	// The renditions it lacks the encoder for are refused, the others made.
	ctx := context.Background()
	for _, spec := range []transcode.Spec{specMP3, specMP4, specThumbWebP} {
		var out bytes.Buffer
		if _, err := tc.Render(ctx, spec, open(t, "video.mp4"), &out); !apperr.Is(err, apperr.Invalid) || out.Len() != 0 {
			t.Errorf("Render %s without its encoder = %v (%d bytes), want Invalid", spec.Name, err, out.Len())
		}
	}
	var out bytes.Buffer
	if _, err := tc.Render(ctx, specM4A, open(t, "voice.ogg"), &out); err != nil {
		t.Fatalf("Render m4a: %v", err)
	}
	if got := ffprobe(t, out.Bytes(), "m4a"); got.Codecs["audio"] != "aac" {
		t.Errorf("m4a rendition: %+v", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    transcode.Options
		ok   bool
	}{
		{"zero", transcode.Options{}, true},
		{"mp3", transcode.Options{AudioFormat: "mp3"}, true},
		{"m4a", transcode.Options{AudioFormat: "m4a"}, true},
		{"webp", transcode.Options{ThumbFormat: "webp"}, true},
		{"jpeg", transcode.Options{ThumbFormat: "jpeg"}, true},
		{"every rendition disabled", transcode.Options{Disabled: disabled(transcode.RenditionNames...)}, true},
		{"all set", transcode.Options{AudioFormat: "m4a", ThumbFormat: "jpeg", Disabled: disabled("poster"),
			Params: transcode.Params{AudioBitrate: "48k", VideoMaxHeight: 480, VideoCRF: 30, ThumbMaxSize: 256}}, true},

		{"audio format ogg", transcode.Options{AudioFormat: "ogg"}, false},
		{"audio format in capitals", transcode.Options{AudioFormat: "MP3"}, false},
		{"audio format aac", transcode.Options{AudioFormat: "aac"}, false},
		{"thumb format jpg", transcode.Options{ThumbFormat: "jpg"}, false},
		{"thumb format png", transcode.Options{ThumbFormat: "png"}, false},
		{"thumb format avif", transcode.Options{ThumbFormat: "avif"}, false},
		{"unknown rendition", transcode.Options{Disabled: disabled("gif")}, false},
		{"rendition in capitals", transcode.Options{Disabled: disabled("MP4")}, false},
		{"kind instead of a rendition", transcode.Options{Disabled: disabled("video")}, false},
		{"unknown rendition, even not disabled", transcode.Options{Disabled: map[string]bool{"gif": false}}, false},
		{"bad params", transcode.Options{Params: transcode.Params{VideoCRF: 52}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate(%+v) = %v, want ok %v", tt.o, err, tt.ok)
			}
			if err != nil {
				t.Logf("%v", err)
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name string
		p    transcode.Params
		ok   bool
	}{
		{"zero: every default", transcode.Params{}, true},
		{"bitrate 32k", transcode.Params{AudioBitrate: "32k"}, true},
		{"bitrate in bits", transcode.Params{AudioBitrate: "48000"}, true},
		{"bitrate 1M", transcode.Params{AudioBitrate: "1M"}, true},
		{"lowest height", transcode.Params{VideoMaxHeight: 144}, true},
		{"highest height", transcode.Params{VideoMaxHeight: 4320}, true},
		{"lowest CRF", transcode.Params{VideoCRF: 1}, true},
		{"highest CRF", transcode.Params{VideoCRF: 51}, true},
		{"CRF 0 is the default, not lossless", transcode.Params{VideoCRF: 0}, true},
		{"smallest thumb", transcode.Params{ThumbMaxSize: 32}, true},
		{"largest thumb", transcode.Params{ThumbMaxSize: 2048}, true},

		{"bitrate 0k", transcode.Params{AudioBitrate: "0k"}, false},
		{"bitrate negative", transcode.Params{AudioBitrate: "-64k"}, false},
		{"bitrate with a space", transcode.Params{AudioBitrate: "64 k"}, false},
		{"bitrate kb", transcode.Params{AudioBitrate: "64kb"}, false},
		{"bitrate K", transcode.Params{AudioBitrate: "64K"}, false},
		{"bitrate word", transcode.Params{AudioBitrate: "high"}, false},
		{"bitrate decimal", transcode.Params{AudioBitrate: "1.5M"}, false},
		{"bitrate as an ffmpeg option", transcode.Params{AudioBitrate: "64k -f"}, false},
		{"bitrate with a newline", transcode.Params{AudioBitrate: "64k\n"}, false},
		{"height 100", transcode.Params{VideoMaxHeight: 100}, false},
		{"height 143", transcode.Params{VideoMaxHeight: 143}, false},
		{"height 4321", transcode.Params{VideoMaxHeight: 4321}, false},
		{"height negative", transcode.Params{VideoMaxHeight: -720}, false},
		{"CRF negative", transcode.Params{VideoCRF: -1}, false},
		{"CRF 52", transcode.Params{VideoCRF: 52}, false},
		{"thumb 10", transcode.Params{ThumbMaxSize: 10}, false},
		{"thumb 31", transcode.Params{ThumbMaxSize: 31}, false},
		{"thumb 2049", transcode.Params{ThumbMaxSize: 2049}, false},
		{"thumb negative", transcode.Params{ThumbMaxSize: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate(%+v) = %v, want ok %v", tt.p, err, tt.ok)
			}
			if oerr := (transcode.Options{Params: tt.p}).Validate(); (oerr == nil) != (err == nil) {
				t.Errorf("Options.Validate = %v, Params.Validate = %v", oerr, err)
			}
		})
	}
}
