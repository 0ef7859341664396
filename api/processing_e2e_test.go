package api_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/mediatest"
)

// testMedia is real media, made once per test binary by ffmpeg itself.
type testMedia struct {
	voice, video, bigVideo, photo, bomb []byte
}

var (
	realMedia     testMedia
	realMediaOnce sync.Once
)

func realTestMedia(t *testing.T) *testMedia {
	t.Helper()
	realMediaOnce.Do(func() {
		realMedia.voice = mediatest.Make(t, mediatest.VoiceNote)
		realMedia.video = mediatest.Make(t, mediatest.PhoneVideo)
		realMedia.bigVideo = mediatest.Make(t, mediatest.CameraVideo)
		realMedia.photo = mediatest.Make(t, mediatest.Photo)
		realMedia.bomb = mediatest.Make(t, mediatest.PixelBomb)
	})
	if realMedia.voice == nil {
		t.Fatal("making the test media failed in an earlier test")
	}
	return &realMedia
}

// in points e's helpers at a subtest until the returned func restores the
// test they were.
func (e *env) in(t *testing.T) func() {
	prev := e.t
	e.t = t
	return func() { e.t = prev }
}

// waitProcessed polls the record until processing leaves pending.
func (e *env) waitProcessed(id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := e.do("GET", "/v1/media/"+id, keyAcme, nil)
		mustStatus(e.t, r, http.StatusOK)
		m := r.JSON(e.t)
		if state := m["processing"].(map[string]any)["state"]; state != "pending" {
			return m
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("media %s still pending after 2 minutes", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// archiveBytes serves content on the origin and archives it as acme.
func (e *env) archiveBytes(name string, content []byte, contentType, kind string) map[string]any {
	e.t.Helper()
	u := e.serveFile("/"+name, content, contentType)
	body := map[string]any{"customer_id": "cust_proc", "source": urlSource(u)}
	if kind != "" {
		body["kind"] = kind
	}
	r := e.archive(body)
	mustStatus(e.t, r, http.StatusCreated)
	return r.JSON(e.t)
}

// get fetches a signed URL the service minted, through the contract check.
func (e *env) get(u string, header ...string) response {
	e.t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do("GET", parsed.RequestURI(), "", nil, header...)
}

func rendition(t *testing.T, m map[string]any, name string) map[string]any {
	t.Helper()
	for _, r := range m["renditions"].([]any) {
		if r := r.(map[string]any); r["name"] == name {
			return r
		}
	}
	t.Fatalf("no %s rendition in %v", name, m["renditions"])
	return nil
}

func near(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance }

// TestProcessingRenditions runs the whole pipeline on real media: archive,
// background probe and renditions by the queue workers, then the renditions
// downloaded through their signed URLs and checked with ffprobe.
func TestProcessingRenditions(t *testing.T) {
	e := newEnv(t, envOptions{processing: "{}"})
	src := realTestMedia(t)

	t.Run("voice note", func(t *testing.T) {
		defer e.in(t)()
		created := e.archiveBytes("voice.ogg", src.voice, "audio/ogg", "audio")
		if p := created["processing"].(map[string]any); p["state"] != "pending" {
			t.Fatalf("processing on archive = %v, want pending", p)
		}
		m := e.waitProcessed(created["id"].(string))
		if p := m["processing"].(map[string]any); p["state"] != "done" {
			t.Fatalf("processing = %v, want done", p)
		}
		if d := m["duration_ms"].(float64); !near(d, 10000, 100) {
			t.Errorf("duration_ms = %v, want 10000 ± 100", d)
		}
		if m["audio_codec"] != "opus" || m["video_codec"] != "" || m["bit_rate"].(float64) <= 0 {
			t.Errorf("codecs %v/%v, bit rate %v", m["audio_codec"], m["video_codec"], m["bit_rate"])
		}
		crm := m["crm_fields"].(map[string]any)
		if crm["duration"] != "10.0" || !strings.Contains(crm["playable_url"].(string), "rendition=mp3") || crm["preview_url"] != "" {
			t.Errorf("crm_fields duration %q, playable_url %q, preview_url %q", crm["duration"], crm["playable_url"], crm["preview_url"])
		}
		if m["sha256"] != sha(src.voice) || m["size_bytes"].(float64) != float64(len(src.voice)) {
			t.Errorf("the record no longer describes the original")
		}

		mp3 := rendition(t, m, "mp3")
		got := e.get(mp3["content_url"].(string))
		mustStatus(t, got, http.StatusOK)
		if ct := got.Header.Get("Content-Type"); ct != "audio/mpeg" || got.Header.Get("Chatvault-Rendition") != "mp3" {
			t.Errorf("Content-Type %q, Chatvault-Rendition %q", ct, got.Header.Get("Chatvault-Rendition"))
		}
		if sha(got.Body) != mp3["sha256"] || float64(len(got.Body)) != mp3["size_bytes"].(float64) {
			t.Errorf("the served MP3 does not match its sha256 and size")
		}
		p := mediatest.Probe(t, got.Body)
		if p.Codec("audio") != "mp3" || !near(p.Duration, 10, 0.1) {
			t.Errorf("MP3 rendition probes as %+v, want mp3 of 10 s ± 0.1", p)
		}
		part := e.get(mp3["content_url"].(string), "Range", "bytes=0-99")
		mustStatus(t, part, http.StatusPartialContent)
		if len(part.Body) != 100 {
			t.Errorf("range of a rendition gave %d bytes", len(part.Body))
		}
		// The original is untouched, byte for byte.
		orig := e.get(m["content_url"].(string))
		mustStatus(t, orig, http.StatusOK)
		if sha(orig.Body) != sha(src.voice) {
			t.Errorf("the original changed")
		}
		// A rendition the record lacks, and a malformed name.
		id := m["id"].(string)
		mustStatus(t, e.do("GET", "/v1/media/"+id+"/content?rendition=mp4", keyAcme, nil), http.StatusNotFound)
		mustStatus(t, e.do("GET", "/v1/media/"+id+"/content?rendition=..%2Fmedia.json", keyAcme, nil), http.StatusBadRequest)
		// A signed URL is for its rendition only.
		swapped := strings.Replace(mp3["content_url"].(string), "rendition=mp3", "rendition=poster", 1)
		mustStatus(t, e.get(swapped), http.StatusForbidden)
	})

	t.Run("video", func(t *testing.T) {
		defer e.in(t)()
		created := e.archiveBytes("clip.mp4", src.video, "video/mp4", "video")
		m := e.waitProcessed(created["id"].(string))
		if p := m["processing"].(map[string]any); p["state"] != "done" {
			t.Fatalf("processing = %v, want done", p)
		}
		if m["width"].(float64) != 640 || m["height"].(float64) != 360 || m["video_codec"] != "h264" || m["audio_codec"] != "aac" {
			t.Errorf("probe fields %vx%v %v/%v", m["width"], m["height"], m["video_codec"], m["audio_codec"])
		}
		if d := m["duration_ms"].(float64); !near(d, 3000, 100) {
			t.Errorf("duration_ms = %v", d)
		}
		mp4 := e.get(rendition(t, m, "mp4")["content_url"].(string))
		mustStatus(t, mp4, http.StatusOK)
		p := mediatest.Probe(t, mp4.Body)
		if p.Codec("video") != "h264" || p.Codec("audio") != "aac" || !near(p.Duration, 3, 0.1) {
			t.Errorf("MP4 rendition probes as %+v", p)
		}
		// +faststart: the moov atom comes before the media data.
		if moov, mdat := strings.Index(string(mp4.Body), "moov"), strings.Index(string(mp4.Body), "mdat"); moov < 0 || moov > mdat {
			t.Errorf("MP4 rendition is not faststart (moov at %d, mdat at %d)", moov, mdat)
		}
		poster := e.get(rendition(t, m, "poster")["content_url"].(string))
		mustStatus(t, poster, http.StatusOK)
		if pp := mediatest.Probe(t, poster.Body); pp.Codec("video") != "mjpeg" || pp.Streams[0].Width != 640 || pp.Streams[0].Height != 360 {
			t.Errorf("poster probes as %+v", pp)
		}
		if crm := m["crm_fields"].(map[string]any); !strings.Contains(crm["preview_url"].(string), "rendition=poster") ||
			!strings.Contains(crm["playable_url"].(string), "rendition=mp4") || crm["width"] != "640" || crm["height"] != "360" {
			t.Errorf("crm_fields %v", crm)
		}
	})

	t.Run("photo", func(t *testing.T) {
		defer e.in(t)()
		created := e.archiveBytes("photo.png", src.photo, "image/png", "image")
		m := e.waitProcessed(created["id"].(string))
		if p := m["processing"].(map[string]any); p["state"] != "done" {
			t.Fatalf("processing = %v, want done", p)
		}
		if m["width"].(float64) != 1280 || m["height"].(float64) != 720 || m["duration_ms"].(float64) != 0 {
			t.Errorf("probe fields %vx%v, %v ms", m["width"], m["height"], m["duration_ms"])
		}
		thumb := rendition(t, m, "thumb")
		got := e.get(thumb["content_url"].(string))
		mustStatus(t, got, http.StatusOK)
		p := mediatest.Probe(t, got.Body)
		if got.Header.Get("Content-Type") != "image/webp" || p.Codec("video") != "webp" || p.Streams[0].Width != 320 || p.Streams[0].Height != 180 {
			t.Errorf("thumbnail is %s, probes as %+v", got.Header.Get("Content-Type"), p)
		}
	})

	t.Run("document has no processing", func(t *testing.T) {
		defer e.in(t)()
		m := e.archiveBytes("invoice.pdf", mediatest.PDF(2048, 1), "application/pdf", "")
		if p := m["processing"].(map[string]any); p["state"] != "skipped" || len(m["renditions"].([]any)) != 0 {
			t.Errorf("processing %v, renditions %v", p, m["renditions"])
		}
		mustStatus(t, e.do("POST", "/v1/media/"+m["id"].(string)+"/process", keyAcme, nil), http.StatusConflict)
	})

	t.Run("reprocess and delete", func(t *testing.T) {
		defer e.in(t)()
		created := e.archiveBytes("again.png", src.photo, "image/png", "image")
		id := created["id"].(string)
		e.waitProcessed(id)
		r := e.do("POST", "/v1/media/"+id+"/process", keyAcme, nil)
		mustStatus(t, r, http.StatusAccepted)
		if p := r.JSON(t)["processing"].(map[string]any); p["state"] != "pending" {
			t.Errorf("after reprocess, processing = %v", p)
		}
		if m := e.waitProcessed(id); m["processing"].(map[string]any)["state"] != "done" || len(m["renditions"].([]any)) != 1 {
			t.Errorf("reprocessed record: %v, %v", m["processing"], m["renditions"])
		}
		mustStatus(t, e.do("POST", "/v1/media/"+id+"/process", keyAcmeRead, nil), http.StatusForbidden)
		mustStatus(t, e.do("DELETE", "/v1/media/"+id, keyAcme, nil), http.StatusNoContent)
		for _, k := range e.objects() {
			if strings.Contains(k, id) {
				t.Errorf("deleting the record left %s", k)
			}
		}
	})
}

// TestProcessingHostileMedia archives broken and hostile files next to a
// good one: each archive stands with its original byte for byte, each
// failed rendition is recorded and raised as media.failed, and the good
// file is processed regardless.
func TestProcessingHostileMedia(t *testing.T) {
	e := newEnv(t, envOptions{processing: "{}"})
	src := realTestMedia(t)
	truncated := src.video[:len(src.video)*3/10]
	// Ogg Opus headers, then noise.
	fakeOgg := mediatest.OggOpus(64<<10, 7)

	cases := []struct {
		name, file, mime, kind string
		content                []byte
		failed                 []string // renditions that must be listed as failed ("" = the probe)
	}{
		{"truncated mp4", "cut.mp4", "video/mp4", "video", truncated, nil},
		{"pixel bomb", "bomb.png", "image/png", "image", src.bomb, []string{"thumb"}},
		{"noise in an ogg header", "noise.ogg", "audio/ogg", "audio", fakeOgg, []string{""}},
	}
	ids := map[string]string{}
	for _, c := range cases {
		m := e.archiveBytes(c.file, c.content, c.mime, c.kind)
		ids[c.name] = m["id"].(string)
	}
	good := e.archiveBytes("good.ogg", src.voice, "audio/ogg", "audio")

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer e.in(t)()
			m := e.waitProcessed(ids[c.name])
			p := m["processing"].(map[string]any)
			failures := p["failures"].([]any)
			if p["state"] != "failed" || len(failures) == 0 {
				t.Fatalf("processing = %v, want failed with failures", p)
			}
			for _, want := range c.failed {
				found := false
				for _, f := range failures {
					found = found || f.(map[string]any)["rendition"] == want
				}
				if !found {
					t.Errorf("failures %v lack %q", failures, want)
				}
			}
			for _, f := range failures {
				if detail := f.(map[string]any)["error"].(map[string]any)["detail"].(string); detail == "" || strings.Contains(detail, "/tmp") {
					t.Errorf("failure detail %q", detail)
				}
			}
			orig := e.get(m["content_url"].(string))
			mustStatus(t, orig, http.StatusOK)
			if sha(orig.Body) != sha(c.content) {
				t.Errorf("the original changed")
			}
			ev := e.do("GET", "/v1/events?type=media.failed&customer_id=cust_proc", keyAcme, nil)
			mustStatus(t, ev, http.StatusOK)
			found := false
			for _, x := range ev.JSON(t)["data"].([]any) {
				d := x.(map[string]any)["data"].(map[string]any)
				found = found || d["media_id"] == ids[c.name] && d["stage"] == "processing"
			}
			if !found {
				t.Errorf("no media.failed event for %s", ids[c.name])
			}
		})
	}
	if m := e.waitProcessed(good["id"].(string)); m["processing"].(map[string]any)["state"] != "done" {
		t.Errorf("the good voice note: %v", m["processing"])
	}
	// Rendition outcomes reach the metrics: broken media fail a rendition,
	// not the job, so the job counters alone would not show them.
	metrics := e.do("GET", "/metrics", "", nil)
	mustStatus(t, metrics, http.StatusOK)
	for _, want := range []string{
		`chatvault_renditions_total{rendition="mp3",result="made"} 1`,
		`chatvault_renditions_total{rendition="thumb",result="too_large"} 1`,
		`chatvault_renditions_total{rendition="probe",result="unsupported_media"}`,
		`chatvault_rendition_bytes_total{rendition="mp3"}`,
		`chatvault_rendition_duration_seconds_count{rendition="mp3"} 1`,
	} {
		if !strings.Contains(string(metrics.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// media.processed was raised for every record, failed or not.
	ev := e.do("GET", "/v1/events?type=media.processed", keyAcme, nil)
	mustStatus(t, ev, http.StatusOK)
	if n := len(ev.JSON(t)["data"].([]any)); n != len(cases)+1 {
		t.Errorf("%d media.processed events, want %d", n, len(cases)+1)
	}

	t.Run("time limit", func(t *testing.T) {
		// Every run is cut at 1 ms: the failure is recorded at once, never
		// retried into the dead letters.
		e := newEnv(t, envOptions{processing: "{}", vars: map[string]string{"CHATVAULT_TRANSCODE_TIMEOUT": "1ms"}})
		m := e.waitProcessed(e.archiveBytes("slow.ogg", src.voice, "audio/ogg", "audio")["id"].(string))
		p := m["processing"].(map[string]any)
		if p["state"] != "failed" || !strings.Contains(p["probe_error"].(string), "longer than") {
			t.Errorf("processing = %v, want failed by the time limit", p)
		}
		if st, err := e.app.Processing.Stats(context.Background()); err != nil || st.Dead != 0 {
			t.Errorf("processing queue %+v, %v: want no dead letters", st, err)
		}
	})
}

// TestProcessingSettings checks a tenant's processing settings: formats,
// bitrate, which renditions, oversize compression and replacing originals.
func TestProcessingSettings(t *testing.T) {
	src := realTestMedia(t)

	t.Run("m4a at 32k, no video renditions", func(t *testing.T) {
		e := newEnv(t, envOptions{processing: "{audio_format: m4a, audio_bitrate: 32k, renditions: [audio, thumbnail]}"})
		m := e.waitProcessed(e.archiveBytes("v.ogg", src.voice, "audio/ogg", "audio")["id"].(string))
		m4a := rendition(t, m, "m4a")
		got := e.get(m4a["content_url"].(string))
		p := mediatest.Probe(t, got.Body)
		if m4a["mime_type"] != "audio/mp4" || p.Codec("audio") != "aac" || !near(p.Duration, 10, 0.1) {
			t.Errorf("m4a rendition %v probes as %+v", m4a, p)
		}
		v := e.waitProcessed(e.archiveBytes("c.mp4", src.video, "video/mp4", "video")["id"].(string))
		if v["processing"].(map[string]any)["state"] != "done" || len(v["renditions"].([]any)) != 0 || v["width"].(float64) != 640 {
			t.Errorf("video with video renditions off: %v, %v", v["processing"], v["renditions"])
		}
	})

	t.Run("processing off", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		m := e.archiveBytes("v.ogg", src.voice, "audio/ogg", "audio")
		if p := m["processing"].(map[string]any); p["state"] != "skipped" {
			t.Errorf("processing = %v, want skipped", p)
		}
		mustStatus(t, e.do("POST", "/v1/media/"+m["id"].(string)+"/process", keyAcme, nil), http.StatusConflict)
	})

	limit := len(src.bigVideo) / 2
	t.Run("oversize refused", func(t *testing.T) {
		e := newEnv(t, envOptions{processing: "{}", limits: fmt.Sprintf("{video: %d}", limit)})
		u := e.serveFile("/big.mp4", src.bigVideo, "video/mp4")
		mustStatus(t, e.archive(map[string]any{"customer_id": "c", "source": urlSource(u)}), http.StatusRequestEntityTooLarge)
		assertNoObjects(t, e)
	})

	t.Run("oversize compressed", func(t *testing.T) {
		e := newEnv(t, envOptions{processing: "{compress_oversize: true, oversize_limit: 64MiB}", limits: fmt.Sprintf("{video: %d}", limit)})
		created := e.archiveBytes("big.mp4", src.bigVideo, "video/mp4", "")
		if o := created["original"].(map[string]any); o["replace_reason"] != "oversize" || o["stored"] != true {
			t.Errorf("original on archive = %v", o)
		}
		id := created["id"].(string)
		m := e.waitProcessed(id)
		o := m["original"].(map[string]any)
		if o["stored"] != false || o["replaced_by"] != "mp4" || o["replaced_at"] == nil {
			t.Fatalf("original after processing = %v", o)
		}
		if m["sha256"] != sha(src.bigVideo) || m["size_bytes"].(float64) != float64(len(src.bigVideo)) {
			t.Errorf("the record lost the original's sha256 or size")
		}
		got := e.get(m["content_url"].(string))
		mustStatus(t, got, http.StatusOK)
		mp4 := rendition(t, m, "mp4")
		if got.Header.Get("Chatvault-Rendition") != "mp4" || sha(got.Body) != mp4["sha256"] || len(got.Body) >= len(src.bigVideo) {
			t.Errorf("content after replacement: %s, %d bytes", got.Header.Get("Chatvault-Rendition"), len(got.Body))
		}
		for _, k := range e.objects() {
			if strings.HasSuffix(k, id+"/original") {
				t.Errorf("the replaced original is still stored at %s", k)
			}
		}
	})

	t.Run("replace after days", func(t *testing.T) {
		e := newEnv(t, envOptions{processing: "{replace_originals_after_days: 30}"})
		created := e.archiveBytes("big.mp4", src.bigVideo, "video/mp4", "")
		m := e.waitProcessed(created["id"].(string))
		o := m["original"].(map[string]any)
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(o["replace_after"]))
		createdAt, _ := time.Parse(time.RFC3339Nano, m["created_at"].(string))
		if err != nil || !at.Equal(createdAt.Add(30*24*time.Hour)) || o["replace_reason"] != "age" || o["stored"] != true {
			t.Errorf("original = %v, want replace_after 30 days after %v", o, createdAt)
		}
		if st, err := e.app.Processing.Stats(context.Background()); err != nil || st.Delayed != 1 {
			t.Errorf("processing queue %+v, %v: want the replacement waiting", st, err)
		}
		// A voice note's MP3 is larger than its Opus original: nothing to
		// gain, so it is never scheduled for replacement.
		v := e.waitProcessed(e.archiveBytes("v.ogg", src.voice, "audio/ogg", "audio")["id"].(string))
		if o := v["original"].(map[string]any); o["replace_after"] != nil {
			t.Errorf("voice note original = %v, want kept", o)
		}
	})
}
