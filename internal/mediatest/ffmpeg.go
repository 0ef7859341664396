package mediatest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Real media made by ffmpeg itself (scripts/install-ffmpeg.sh installs it).
// Each is ffmpeg's arguments before the output path, and the muxer.
var (
	// VoiceNote is a WhatsApp voice note: 10 s of mono Opus in Ogg.
	VoiceNote = Recipe{Muxer: "ogg", Args: []string{"-f", "lavfi", "-i", "sine=frequency=440:duration=10:sample_rate=48000",
		"-ac", "1", "-c:a", "libopus", "-b:a", "24k", "-application", "voip"}}
	// PhoneVideo is 3 s of 640x360 H.264 with AAC audio, moov at the end.
	PhoneVideo = Recipe{Muxer: "mp4", Args: []string{"-f", "lavfi", "-i", "testsrc=size=640x360:rate=25:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-shortest"}}
	// CameraVideo is PhoneVideo at a camera's 6 Mbit/s, which a CRF 28
	// rendition shrinks.
	CameraVideo = Recipe{Muxer: "mp4", Args: []string{"-f", "lavfi", "-i", "testsrc=size=640x360:rate=25:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"}}
	// Photo is a 1280x720 PNG.
	Photo = Recipe{Muxer: "image2", Args: []string{"-f", "lavfi", "-i", "testsrc=size=1280x720", "-frames:v", "1", "-c:v", "png"}}
	// PixelBomb is a 16000x16000 one-bit PNG of one colour: 66 kB that
	// decode to 256 million pixels.
	PixelBomb = Recipe{Muxer: "image2", Args: []string{"-f", "lavfi", "-i", "color=c=white:size=16000x16000", "-frames:v", "1",
		"-pix_fmt", "monob", "-c:v", "png"}}
)

// Recipe is how ffmpeg makes one test file.
type Recipe struct {
	Muxer string
	Args  []string
}

// Make runs ffmpeg and returns the file it wrote.
func Make(tb testing.TB, r Recipe) []byte {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "out")
	args := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, r.Args...)
	args = append(args, "-f", r.Muxer, out)
	if msg, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg %v: %v\n%s", args, err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// Probed is what ffprobe says about a file.
type Probed struct {
	Format   string
	Duration float64 // seconds
	Streams  []ProbedStream
}

// ProbedStream is one stream of a probed file.
type ProbedStream struct {
	Type, Codec   string
	Width, Height int
}

// Codec returns the codec of the first stream of type ("audio", "video").
func (p Probed) Codec(typ string) string {
	for _, s := range p.Streams {
		if s.Type == typ {
			return s.Codec
		}
	}
	return ""
}

// Probe runs ffprobe on data.
func Probe(tb testing.TB, data []byte) Probed {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "probe")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe: %v", err)
	}
	var raw struct {
		Format struct {
			Name     string `json:"format_name"`
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Type   string `json:"codec_type"`
			Codec  string `json:"codec_name"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		tb.Fatal(err)
	}
	p := Probed{Format: raw.Format.Name}
	p.Duration, _ = strconv.ParseFloat(raw.Format.Duration, 64)
	for _, s := range raw.Streams {
		p.Streams = append(p.Streams, ProbedStream{Type: s.Type, Codec: s.Codec, Width: s.Width, Height: s.Height})
	}
	return p
}
