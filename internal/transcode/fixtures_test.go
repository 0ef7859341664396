package transcode_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/transcode"
)

// Media made by ffmpeg itself, once per test binary, in a temporary folder
// removed when the tests end.
var fixtures struct {
	mu   sync.Mutex
	dir  string
	made map[string]string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "transcode-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtures.dir = dir
	fixtures.made = map[string]string{}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixtureRecipes are ffmpeg arguments (before the output path) per file.
var fixtureRecipes = map[string][]string{
	// A WhatsApp voice note: 10 s of Opus in Ogg.
	"voice.ogg": {"-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-c:a", "libopus", "-b:a", "24k"},
	// A phone video: H.264 + AAC, moov at the end (no faststart).
	"video.mp4": {"-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30:duration=3", "-f", "lavfi", "-i", "sine=frequency=330:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
	// A portrait phone video, larger than 720p, silent.
	"portrait.mp4": {"-f", "lavfi", "-i", "testsrc=size=1080x1920:rate=5:duration=2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"},
	// Shorter than the poster's 1 s seek point.
	"short.mp4": {"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=0.5", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"},
	"image.png": {"-f", "lavfi", "-i", "testsrc=size=1280x720", "-frames:v", "1"},
	// The benchmark's video: 30 s of 720p.
	"video30.mp4": {"-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30:duration=30", "-f", "lavfi", "-i", "sine=frequency=330:duration=30",
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
}

// fixture returns the path of a test media file, making it on first use.
// Besides fixtureRecipes: rotated.mp4 (video.mp4 with a 90° display
// matrix), truncated.mp4 (the first 30% of video.mp4),
// random.ogg (random bytes), playlist.m3u8 and concat.txt (naming a local
// file, as an attacker would).
func fixture(tb testing.TB, name string) string {
	tb.Helper()
	fixtures.mu.Lock()
	defer fixtures.mu.Unlock()
	return fixtureLocked(tb, name)
}

func fixtureLocked(tb testing.TB, name string) string {
	tb.Helper()
	if p, ok := fixtures.made[name]; ok {
		return p
	}
	path := filepath.Join(fixtures.dir, name)
	var err error
	switch name {
	case "truncated.mp4":
		var full []byte
		full, err = os.ReadFile(fixtureLocked(tb, "video.mp4"))
		if err == nil {
			err = os.WriteFile(path, full[:len(full)*3/10], 0o600)
		}
	case "rotated.mp4":
		// A landscape recording shown turned a quarter, as phones store it.
		var out []byte
		out, err = exec.Command(ffmpegBin(tb), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
			"-i", fixtureLocked(tb, "video.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", path).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("ffmpeg: %v: %s", err, out)
		}
	case "random.ogg":
		r := rand.New(rand.NewPCG(1, 2))
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		err = os.WriteFile(path, b, 0o600)
	case "playlist.m3u8":
		err = os.WriteFile(path, []byte("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"+fixtureLocked(tb, "video.mp4")+"\n#EXT-X-ENDLIST\n"), 0o600)
	case "concat.txt":
		err = os.WriteFile(path, []byte("ffconcat version 1.0\nfile '"+fixtureLocked(tb, "voice.ogg")+"'\n"), 0o600)
	default:
		args, ok := fixtureRecipes[name]
		if !ok {
			tb.Fatalf("no fixture %q", name)
		}
		args = append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...)
		out, rerr := exec.Command(ffmpegBin(tb), append(args, path)...).CombinedOutput()
		if rerr != nil {
			err = fmt.Errorf("ffmpeg: %v: %s", rerr, out)
		}
	}
	if err != nil {
		tb.Fatalf("fixture %s: %v", name, err)
	}
	fixtures.made[name] = path
	return path
}

// ffmpegBin fails the test when ffmpeg is missing: the test command
// installs it (scripts/install-ffmpeg.sh).
func ffmpegBin(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		tb.Fatalf("ffmpeg is not installed (run scripts/install-ffmpeg.sh): %v", err)
	}
	return p
}

func open(tb testing.TB, name string) *os.File {
	tb.Helper()
	f, err := os.Open(fixture(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// newTranscoder returns a transcoder spooling into a fresh folder, which
// must be empty again when the test ends.
func newTranscoder(tb testing.TB, cfg transcode.Config) *transcode.Transcoder {
	tb.Helper()
	ffmpegBin(tb)
	if cfg.TempDir == "" {
		cfg.TempDir = tb.TempDir()
		tb.Cleanup(func() { assertNoTempFiles(tb, cfg.TempDir) })
	}
	tc, err := transcode.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tc
}

func assertNoTempFiles(tb testing.TB, dir string) {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		tb.Errorf("temporary file left behind: %s", filepath.Join(dir, e.Name()))
	}
}

// ffprobed is an independent look at a rendition: ffprobe run by the test,
// not by the package.
type ffprobed struct {
	Format     string
	Duration   time.Duration
	Codecs     map[string]string // codec_type → codec_name of its first stream
	Width      int
	Height     int
	NumStreams int
	BitRate    int64 // of the whole file, bits per second
}

func ffprobe(tb testing.TB, data []byte, ext string) ffprobed {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "rendition."+ext)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return ffprobeFile(tb, path)
}

// ffprobeFile is ffprobe of a file on disk, such as a fixture.
func ffprobeFile(tb testing.TB, path string) ffprobed {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe %s: %v", filepath.Base(path), err)
	}
	var v struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
			BitRate    string `json:"bit_rate"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		tb.Fatal(err)
	}
	p := ffprobed{Format: v.Format.FormatName, Codecs: map[string]string{}, NumStreams: len(v.Streams)}
	if s, err := strconv.ParseFloat(v.Format.Duration, 64); err == nil {
		p.Duration = time.Duration(s * float64(time.Second))
	}
	p.BitRate, _ = strconv.ParseInt(v.Format.BitRate, 10, 64)
	for _, s := range v.Streams {
		if _, ok := p.Codecs[s.CodecType]; !ok {
			p.Codecs[s.CodecType] = s.CodecName
		}
		if s.CodecType == "video" && p.Width == 0 {
			p.Width, p.Height = s.Width, s.Height
		}
	}
	return p
}

// topLevelAtoms lists an ISO BMFF file's top-level box types in order.
func topLevelAtoms(tb testing.TB, data []byte) []string {
	tb.Helper()
	var atoms []string
	for off := uint64(0); off+8 <= uint64(len(data)); {
		size := uint64(binary.BigEndian.Uint32(data[off:]))
		typ := string(data[off+4 : off+8])
		switch size {
		case 0: // to the end of the file
			size = uint64(len(data)) - off
		case 1: // 64-bit size follows
			if off+16 > uint64(len(data)) {
				tb.Fatalf("truncated box %q", typ)
			}
			size = binary.BigEndian.Uint64(data[off+8:])
		}
		if size < 8 {
			tb.Fatalf("bad box %q of size %d at %d", typ, size, off)
		}
		atoms = append(atoms, typ)
		off += size
	}
	return atoms
}

// assertFaststart checks that moov comes before mdat.
func assertFaststart(tb testing.TB, data []byte) {
	tb.Helper()
	atoms := topLevelAtoms(tb, data)
	moov, mdat := -1, -1
	for i, a := range atoms {
		if a == "moov" && moov < 0 {
			moov = i
		}
		if a == "mdat" && mdat < 0 {
			mdat = i
		}
	}
	if moov < 0 || mdat < 0 || moov > mdat {
		tb.Errorf("atoms %v: want moov before mdat (faststart)", atoms)
	}
}

func within(got, want, tol time.Duration) bool {
	d := got - want
	return d >= -tol && d <= tol
}

// failingWriter is a destination that refuses every write.
type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
