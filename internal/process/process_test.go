package process_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/blobstore"
	"github.com/chatvault/chatvault/internal/index"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/mediatest"
	"github.com/chatvault/chatvault/internal/process"
	"github.com/chatvault/chatvault/internal/testenv"
	"github.com/chatvault/chatvault/internal/transcode"
)

// rig is the processing use case on real Redis, real file storage and real
// ffmpeg, with a clock the test moves.
type rig struct {
	svc      *media.Service
	proc     *process.Processor
	store    *blobstore.Store
	files    map[string][]byte
	sched    *recorder
	mu       sync.Mutex
	now      time.Time
	settings process.Settings
}

func newRig(t *testing.T) *rig {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	store, err := blobstore.Open(context.Background(), testenv.FileStore(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	tc, err := transcode.New(transcode.Config{Concurrency: 2, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{store: store, files: map[string][]byte{}, sched: &recorder{}, now: time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC),
		settings: process.Settings{Enabled: true}}
	limits := func(string) map[media.Kind]int64 {
		return map[media.Kind]int64{media.KindAudio: 16 << 20, media.KindVideo: 16 << 20, media.KindImage: 5 << 20}
	}
	policy := func(string) media.Policy { return media.Policy{Process: true} }
	log := slog.New(slog.DiscardHandler)
	r.svc = media.NewService(store, index.New(rdb, prefix), fetcher{r}, limits,
		media.WithClock(r.clock), media.WithLogger(log), media.WithEvents(r.sched), media.WithProcessing(policy, r.sched))
	r.proc = process.New(r.svc, tc, func(string) (process.Settings, bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.settings, true
	}, r.sched, log)
	return r
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

func (r *rig) set(f func(*process.Settings)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.settings)
}

// archive stores content and processes it, as the queue would.
func (r *rig) archive(t *testing.T, name string, content []byte, kind media.Kind) media.Media {
	t.Helper()
	r.files[name] = content
	m, _, err := r.svc.Archive(context.Background(), "acme", media.ArchiveInput{
		CustomerID: "c1", Kind: kind, Source: media.SourceRequest{Type: media.SourceURL, URL: "https://files.example/" + name},
	})
	if err != nil {
		t.Fatalf("Archive: %v", err)
	}
	if m.Processing == nil || m.Processing.State != media.ProcessingPending {
		t.Fatalf("archived record processing = %+v, want pending", m.Processing)
	}
	return m
}

func (r *rig) process(t *testing.T, m media.Media) media.Media {
	t.Helper()
	out, err := r.proc.Process(context.Background(), m.TenantID, m.ID, "job_test")
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return out
}

func (r *rig) exists(t *testing.T, key string) bool {
	t.Helper()
	rc, err := r.store.NewRangeReader(context.Background(), key, 0, 1)
	if apperr.Is(err, apperr.NotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	return true
}

func read(t *testing.T, rc io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReplaceOriginalsAfterDays(t *testing.T) {
	r := newRig(t)
	r.set(func(s *process.Settings) { s.ReplaceAfter = 30 * 24 * time.Hour })
	video := mediatest.Make(t, mediatest.CameraVideo)
	m := r.process(t, r.archive(t, "clip.mp4", video, media.KindVideo))
	want := m.CreatedAt.Add(30 * 24 * time.Hour)
	if m.Original.ReplaceAfter == nil || !m.Original.ReplaceAfter.Equal(want) || m.Original.ReplaceReason != media.ReplaceAge {
		t.Fatalf("original = %+v, want replace_after %v", m.Original, want)
	}
	if got := r.sched.replacements(); len(got) != 1 || got[0] != m.ID {
		t.Errorf("replacements scheduled: %v", got)
	}

	// Not due yet: nothing happens.
	r.advance(29 * 24 * time.Hour)
	if got, err := r.proc.Replace(context.Background(), "acme", m.ID); err != nil || got.Original.ReplacedAt != nil {
		t.Fatalf("Replace before due = %+v, %v", got.Original, err)
	}
	r.advance(24 * time.Hour)
	got, err := r.proc.Replace(context.Background(), "acme", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	mp4, _ := got.Rendition("mp4")
	if got.Original.ReplacedBy != "mp4" || got.Original.ReplacedAt == nil || got.Original.ReplaceAfter != nil {
		t.Fatalf("original after Replace = %+v", got.Original)
	}
	if got.SHA256 != m.SHA256 || got.SizeBytes != int64(len(video)) || got.MimeType != m.MimeType {
		t.Errorf("the record lost the original's sha256, size or type")
	}
	if r.exists(t, m.BlobKey) {
		t.Errorf("the original is still stored")
	}
	rc, err := r.svc.OpenContent(context.Background(), got, 0, -1)
	served := read(t, rc, err)
	if int64(len(served)) != mp4.SizeBytes || mp4.SizeBytes >= int64(len(video)) {
		t.Errorf("content after replacement is %d bytes; the mp4 has %d, the original %d", len(served), mp4.SizeBytes, len(video))
	}
	// Again: a no-op.
	if again, err := r.proc.Replace(context.Background(), "acme", m.ID); err != nil || !again.Original.ReplacedAt.Equal(*got.Original.ReplacedAt) {
		t.Errorf("second Replace = %+v, %v", again.Original, err)
	}
	// Reprocessing a replaced record works from the rendition that
	// replaced it, and keeps that rendition.
	if _, err := r.svc.Reprocess(context.Background(), "acme", m.ID); err != nil {
		t.Fatal(err)
	}
	again := r.process(t, got)
	if again.Processing.State != media.ProcessingDone || again.Original.ReplacedBy != "mp4" || !r.exists(t, mp4.BlobKey) {
		t.Errorf("reprocessed replaced record: %+v, %+v", again.Processing, again.Original)
	}
}

func TestReplacementTurnedOffOrNotSmaller(t *testing.T) {
	r := newRig(t)
	r.set(func(s *process.Settings) { s.ReplaceAfter = 24 * time.Hour })
	m := r.process(t, r.archive(t, "clip.mp4", mediatest.Make(t, mediatest.CameraVideo), media.KindVideo))
	r.set(func(s *process.Settings) { s.ReplaceAfter = 0 })
	r.advance(48 * time.Hour)
	got, err := r.proc.Replace(context.Background(), "acme", m.ID)
	if err != nil || got.Original.ReplaceAfter != nil || got.Original.ReplacedAt != nil || !r.exists(t, m.BlobKey) {
		t.Errorf("Replace after the tenant turned it off: %+v, %v", got.Original, err)
	}

	// An Opus voice note's MP3 is larger: it is never scheduled.
	r.set(func(s *process.Settings) { s.ReplaceAfter = 24 * time.Hour })
	v := r.process(t, r.archive(t, "voice.ogg", mediatest.Make(t, mediatest.VoiceNote), media.KindAudio))
	if mp3, ok := v.Rendition("mp3"); !ok || mp3.SizeBytes <= v.SizeBytes || v.Original.ReplaceAfter != nil {
		t.Errorf("voice note: mp3 %+v, original %+v", mp3, v.Original)
	}
}

func TestProcessIsIdempotent(t *testing.T) {
	r := newRig(t)
	m := r.archive(t, "voice.ogg", mediatest.Make(t, mediatest.VoiceNote), media.KindAudio)
	first := r.process(t, m)
	r.advance(time.Minute)
	second := r.process(t, m)
	if !first.UpdatedAt.Equal(second.UpdatedAt) || len(second.Renditions) != 1 || !second.Renditions[0].CreatedAt.Equal(first.Renditions[0].CreatedAt) {
		t.Errorf("a repeated delivery processed again: %+v then %+v", first.Processing, second.Processing)
	}
	if n := r.sched.count(media.EventProcessed); n != 1 {
		t.Errorf("%d media.processed events, want 1", n)
	}

	// A format change and a reprocess: the MP3 goes, the M4A comes.
	r.set(func(s *process.Settings) { s.Options.AudioFormat = "m4a" })
	if _, err := r.svc.Reprocess(context.Background(), "acme", m.ID); err != nil {
		t.Fatal(err)
	}
	third := r.process(t, m)
	if len(third.Renditions) != 1 || third.Renditions[0].Name != "m4a" || r.exists(t, first.Renditions[0].BlobKey) {
		t.Errorf("after the format change: %+v", third.Renditions)
	}
}

func TestProcessGoneOrFailedForGood(t *testing.T) {
	r := newRig(t)
	m := r.archive(t, "voice.ogg", mediatest.Make(t, mediatest.VoiceNote), media.KindAudio)
	if err := r.svc.Delete(context.Background(), "acme", m.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := r.proc.Process(context.Background(), "acme", m.ID, "job_x"); err != nil || got.ID != "" {
		t.Errorf("Process of a deleted record = %+v, %v", got, err)
	}
	if keys := r.keys(t); len(keys) != 0 {
		t.Errorf("storage holds %v", keys)
	}

	// Out of attempts: the record says so and media.failed is raised.
	m = r.archive(t, "voice2.ogg", mediatest.Make(t, mediatest.VoiceNote), media.KindAudio)
	r.proc.Fail(context.Background(), "acme", m.ID, "job_dead", "unavailable", "storage is unavailable")
	got, err := r.svc.Get(context.Background(), "acme", m.ID)
	if err != nil || got.Processing.State != media.ProcessingFailed || got.Processing.Failures[0].Detail != "storage is unavailable" {
		t.Errorf("after Fail: %+v, %v", got.Processing, err)
	}
	if e := r.sched.last(media.EventFailed); e.JobID != "job_dead" || len(e.Failures) != 1 {
		t.Errorf("media.failed event %+v", e)
	}
}

func (r *rig) keys(t *testing.T) []string {
	t.Helper()
	var keys []string
	if err := r.store.List(context.Background(), "tenants/", func(k string) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// fetcher serves the rig's files; no provider is involved here.
type fetcher struct{ r *rig }

func (f fetcher) Identity(src media.SourceRequest) (string, error) { return "url:" + src.URL, nil }

func (f fetcher) Fetch(_ context.Context, _ string, src media.SourceRequest) (*media.Fetched, error) {
	name := src.URL[len("https://files.example/"):]
	b := f.r.files[name]
	return &media.Fetched{Body: io.NopCloser(bytes.NewReader(b)), Size: int64(len(b))}, nil
}

// recorder is the scheduler and event sink.
type recorder struct {
	mu     sync.Mutex
	events []media.Event
	repl   []string
}

func (c *recorder) ScheduleProcessing(context.Context, media.Media) error { return nil }

func (c *recorder) ScheduleReplacement(_ context.Context, m media.Media) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.repl = append(c.repl, m.ID)
	return nil
}

func (c *recorder) Publish(_ context.Context, _ string, e media.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

func (c *recorder) replacements() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.repl...)
}

func (c *recorder) count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func (c *recorder) last(typ string) media.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.events) - 1; i >= 0; i-- {
		if c.events[i].Type == typ {
			return c.events[i]
		}
	}
	return media.Event{}
}
