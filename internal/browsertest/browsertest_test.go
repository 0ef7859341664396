package browsertest_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/browsertest"
	"github.com/chatvault/chatvault/internal/mediatest"
)

// mp3Recipe is 4 s of MP3, what a voice note's rendition is.
var mp3Recipe = mediatest.Recipe{Muxer: "mp3", Args: []string{"-f", "lavfi", "-i", "sine=frequency=440:duration=4",
	"-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k"}}

// faststartRecipe is 4 s of H.264/AAC with the moov atom first, as the MP4
// renditions are made.
var faststartRecipe = mediatest.Recipe{Muxer: "mp4", Args: []string{"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4",
	"-f", "lavfi", "-i", "sine=frequency=330:duration=4", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
	"-c:a", "aac", "-shortest", "-movflags", "+faststart"}}

// files serves each file with its Content-Type and Range support.
func files(t *testing.T, f map[string][2]string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		file, ok := f[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", file[0])
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(file[1]))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

var made struct {
	sync.Once
	mp3, mp4 []byte
}

// TestPlay shows the harness tells media that play from media that do
// not: a test that passes through it means something.
func TestPlay(t *testing.T) {
	bin := browsertest.Chromium(t)
	made.Do(func() {
		made.mp3 = mediatest.Make(t, mp3Recipe)
		made.mp4 = mediatest.Make(t, faststartRecipe)
	})
	mp4 := made.mp4
	base := files(t, map[string][2]string{
		"/ok.mp3":     {"audio/mpeg", string(made.mp3)},
		"/ok.mp4":     {"video/mp4", string(mp4)},
		"/noise.mp3":  {"audio/mpeg", string(mediatest.OggOpus(64<<10, 3)[40:])},
		"/cut.mp4":    {"video/mp4", string(mp4[:len(mp4)/2])},
		"/exe.mp3":    {"audio/mpeg", string(mediatest.ELF(4096, 1))},
		"/wrong-type": {"text/html", "<p>not media</p>"},
	})

	cases := []struct {
		name, tag, path string
		through         bool
		plays           bool
		seconds         float64
	}{
		{"mp3 buffers", "audio", "/ok.mp3", false, true, 4},
		{"mp3 plays to the end", "audio", "/ok.mp3", true, true, 4},
		{"faststart mp4 plays to the end", "video", "/ok.mp4", true, true, 4},
		{"noise is not audio", "audio", "/noise.mp3", false, false, 0},
		{"an executable is not audio", "audio", "/exe.mp3", false, false, 0},
		{"html is not audio", "audio", "/wrong-type", false, false, 0},
		{"a 404 does not play", "audio", "/nope.mp3", false, false, 0},
		// The moov atom claims 4 s, so readyState 4 comes; the cut shows
		// only when playback reaches it.
		{"an mp4 cut in half does not play through", "video", "/cut.mp4", true, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			play := browsertest.Play
			if c.through {
				play = browsertest.PlayThrough
			}
			res, err := play(ctx, bin, c.tag, base+c.path)
			if err != nil {
				t.Fatal(err)
			}
			played := res.Error == "" && (c.through && res.Ended || !c.through && res.ReadyState == browsertest.HaveEnoughData)
			if played != c.plays {
				t.Fatalf("played = %v, want %v: %+v", played, c.plays, res)
			}
			if c.plays && math.Abs(res.Duration-c.seconds) > 0.1 {
				t.Errorf("duration %v s, want %v", res.Duration, c.seconds)
			}
		})
	}

	if _, err := browsertest.Play(context.Background(), bin, "img", base+"/ok.mp3"); err == nil {
		t.Error("Play took an <img> tag")
	}
}
