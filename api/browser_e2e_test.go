package api_test

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/browsertest"
)

// TestRenditionsPlayInChromium is the CRM's view of a rendition: a page on
// another origin embeds the signed URL chatvault hands out, with no API
// key, in an <audio> or <video> element of a real headless Chromium. A
// WhatsApp voice note (OGG/Opus, which Safari and iOS cannot play) must
// come out as an MP3 the element buffers to HAVE_ENOUGH_DATA, with the
// original's duration, and play to its end; the MP4 of a phone video
// likewise. The test command installs Chromium (scripts/install-chromium.sh)
// and sets CI, so there it fails instead of skipping when Chromium is
// missing.
func TestRenditionsPlayInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	e := newEnv(t, envOptions{processing: "{}"})
	src := realTestMedia(t)

	cases := []struct {
		name, file, mime, kind string
		content                []byte
		rendition, tag         string
		seconds                float64
		crmField               string // the crm_fields URL that must point at the rendition
	}{
		{"voice note as mp3", "voice.ogg", "audio/ogg", "audio", src.voice, "mp3", "audio", 10, "playable_url"},
		{"phone video as mp4", "clip.mp4", "video/mp4", "video", src.video, "mp4", "video", 3, "playable_url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer e.in(t)()
			m := e.waitProcessed(e.archiveBytes(c.file, c.content, c.mime, c.kind)["id"].(string))
			if p := m["processing"].(map[string]any); p["state"] != "done" {
				t.Fatalf("processing = %v, want done", p)
			}
			r := rendition(t, m, c.rendition)
			crmURL := m["crm_fields"].(map[string]any)[c.crmField].(string)
			if !strings.Contains(crmURL, "rendition="+c.rendition) {
				t.Fatalf("crm_fields.%s = %q, want the %s rendition", c.crmField, crmURL, c.rendition)
			}
			for _, u := range []struct{ what, url string }{
				{"the rendition's content_url", r["content_url"].(string)},
				{"crm_fields." + c.crmField, crmURL},
			} {
				if strings.Contains(u.url, "Authorization") || !strings.Contains(u.url, "signature=") {
					t.Fatalf("%s %q is not a signed URL", u.what, u.url)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				res, err := browsertest.Play(ctx, bin, c.tag, u.url)
				cancel()
				if err != nil {
					t.Fatalf("%s: %v", u.what, err)
				}
				if res.Error != "" || res.ReadyState != browsertest.HaveEnoughData {
					t.Fatalf("%s in <%s>: readyState %d, error %q, events %v", u.what, c.tag, res.ReadyState, res.Error, res.Events)
				}
				if math.Abs(res.Duration-c.seconds) > 0.1 {
					t.Errorf("%s: <%s>.duration = %v s, want %v ± 0.1", u.what, c.tag, res.Duration, c.seconds)
				}
				if res.ContentType != r["mime_type"] || res.CanPlayType == "" {
					t.Errorf("%s: served as %q (record says %q), canPlayType %q", u.what, res.ContentType, r["mime_type"], res.CanPlayType)
				}
			}

			// Played to the end, at 16×: decoding every frame, not only
			// the headers that readyState 4 needs.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := browsertest.PlayThrough(ctx, bin, c.tag, r["content_url"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if res.Error != "" || !res.Ended || math.Abs(res.CurrentTime-c.seconds) > 0.1 {
				t.Errorf("played through: ended %v at %v s, error %q, events %v", res.Ended, res.CurrentTime, res.Error, res.Events)
			}
		})
	}

	t.Run("expired or tampered URL does not play", func(t *testing.T) {
		defer e.in(t)()
		m := e.waitProcessed(e.archiveBytes("v2.ogg", src.voice, "audio/ogg", "audio")["id"].(string))
		u := strings.Replace(rendition(t, m, "mp3")["content_url"].(string), "rendition=mp3", "rendition=poster", 1)
		mustStatus(t, e.get(u), http.StatusForbidden)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := browsertest.Play(ctx, bin, "audio", u)
		if err != nil {
			t.Fatal(err)
		}
		if res.Error == "" || res.ReadyState == browsertest.HaveEnoughData {
			t.Errorf("a tampered URL played: %+v", res)
		}
	})
}
