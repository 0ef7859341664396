// Package process is the background half of archiving: it probes a
// record's original with ffprobe, makes the renditions browsers and CRMs
// play (MP3 or M4A, MP4, a poster, a thumbnail) with ffmpeg, stores them
// beside the original, and later replaces originals by their compressed
// rendition where the tenant asked for that.
//
// It runs only in queue workers, never in a request. Every step is
// idempotent, because jobs are delivered at least once: a record is
// processed while it is pending, and a rendition is written under a fixed
// key, so a repeated run overwrites what an interrupted one left.
package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/transcode"
)

// Settings are one tenant's processing settings.
type Settings struct {
	Enabled bool
	Options transcode.Options
	// ReplaceAfter replaces audio and video originals by their compressed
	// rendition this long after archiving; 0 keeps them for good.
	ReplaceAfter time.Duration
}

// SettingsFunc returns a tenant's settings; ok is false for a tenant that is
// no longer configured.
type SettingsFunc func(tenantID string) (s Settings, ok bool)

// Processor processes records.
type Processor struct {
	media    *media.Service
	tc       *transcode.Transcoder
	settings SettingsFunc
	sched    media.Scheduler
	log      *slog.Logger
	observe  ObserveFunc
}

// ObserveFunc hears of every rendition a run made or recorded as failed,
// and of failed probes (rendition "probe"): result is "made" or an apperr
// kind, size is 0 unless made. Errors a retry may fix are not observed;
// the job's own outcome covers them.
type ObserveFunc func(rendition, result string, d time.Duration, size int64)

// Option configures a Processor.
type Option func(*Processor)

// WithObserver reports rendition outcomes to fn (metrics).
func WithObserver(fn ObserveFunc) Option { return func(p *Processor) { p.observe = fn } }

// New returns a Processor. sched queues the replacements processing makes
// due later.
func New(svc *media.Service, tc *transcode.Transcoder, settings SettingsFunc, sched media.Scheduler, log *slog.Logger, opts ...Option) *Processor {
	p := &Processor{media: svc, tc: tc, settings: settings, sched: sched, log: log,
		observe: func(string, string, time.Duration, int64) {}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Process probes a pending record and makes its renditions, then records
// the outcome: state done, or failed with a failure per rendition that could
// not be made (the record then raises media.failed). The original is never
// changed, unless it was accepted oversize on condition of compression: it
// is replaced at once then.
//
// A record that is gone or no longer pending is left alone. The error is
// non-nil only when a retry may succeed (storage or Redis unavailable,
// shutdown); hostile or broken media are recorded, not returned.
func (p *Processor) Process(ctx context.Context, tenantID, id, jobID string) (media.Media, error) {
	// One run per record at a time: a duplicate delivery waits its turn
	// with a retry, then finds the record done.
	unlock, err := p.media.Lock(ctx, tenantID, "process:"+id, 0)
	if err != nil {
		return media.Media{}, err
	}
	defer unlock()

	m, err := p.media.Get(ctx, tenantID, id)
	if apperr.Is(err, apperr.NotFound) {
		return media.Media{}, nil
	}
	if err != nil {
		return media.Media{}, err
	}
	if m.Processing == nil || m.Processing.State != media.ProcessingPending {
		return m, nil
	}
	settings, ok := p.settings(tenantID)
	if !ok || !settings.Enabled || !media.Processable(m.Kind) {
		return p.finish(ctx, m, jobID, outcome{state: media.ProcessingSkipped}, settings)
	}

	out, err := p.run(ctx, m, settings)
	if err != nil {
		p.cleanup(m, out.renditions)
		return media.Media{}, err
	}
	return p.finish(ctx, m, jobID, out, settings)
}

// outcome is what a processing run found and made.
type outcome struct {
	state      string
	info       media.Info
	probeError string
	renditions []media.Rendition
	failures   []media.RenditionFailure
}

// run probes m's content and renders every planned rendition into storage.
// An error means the run should be retried; out.renditions lists what was
// written before it, for cleanup.
func (p *Processor) run(ctx context.Context, m media.Media, settings Settings) (out outcome, err error) {
	content, err := m.Content("")
	if err != nil {
		return out, err
	}
	r, err := p.media.Open(ctx, content, 0, -1)
	if apperr.Is(err, apperr.NotFound) {
		out.state, out.probeError = media.ProcessingFailed, "the stored content is missing"
		out.failures = []media.RenditionFailure{{Kind: string(apperr.NotFound), Detail: out.probeError}}
		return out, nil
	}
	if err != nil {
		return out, err
	}
	start := time.Now()
	in, err := p.tc.Open(ctx, r)
	r.Close()
	if err != nil {
		if permanent(err) {
			return p.failedProbe(err, start), nil
		}
		return out, err
	}
	defer in.Close()

	probe, err := in.Probe(ctx)
	if err != nil {
		if permanent(err) {
			return p.failedProbe(err, start), nil
		}
		return out, err
	}
	out.info = infoOf(probe)
	if probe.Error != "" {
		// Not media ffprobe understands; recorded, and the archive stands.
		out.state, out.probeError = media.ProcessingFailed, probe.Error
		out.failures = []media.RenditionFailure{{Kind: string(apperr.UnsupportedMedia), Detail: "the media could not be probed: " + probe.Error}}
		p.observe("probe", string(apperr.UnsupportedMedia), time.Since(start), 0)
		return out, nil
	}
	if px := int64(probe.Width) * int64(probe.Height); m.Kind == media.KindImage && (px == 0 || px > p.tc.Config().MaxPixels) {
		// ffprobe refuses to decode a frame over the limit: a decompression
		// bomb, or a photo too large to thumbnail safely.
		out.state = media.ProcessingFailed
		out.failures = []media.RenditionFailure{{Rendition: "thumb", Kind: string(apperr.TooLarge),
			Detail: fmt.Sprintf("the image has more than %d pixels; no thumbnail is made", p.tc.Config().MaxPixels)}}
		p.observe("thumb", string(apperr.TooLarge), 0, 0)
		return out, nil
	}
	for _, spec := range p.tc.PlanWith(string(m.Kind), probe, settings.Options) {
		start := time.Now()
		rend, err := p.render(ctx, m, in, spec)
		switch {
		case err == nil:
			out.renditions = append(out.renditions, rend)
			p.observe(spec.Name, "made", time.Since(start), rend.SizeBytes)
		case permanent(err):
			f := failure(spec.Name, err)
			out.failures = append(out.failures, f)
			p.observe(spec.Name, f.Kind, time.Since(start), 0)
		default:
			return out, err
		}
	}
	out.state = media.ProcessingDone
	if len(out.failures) > 0 {
		out.state = media.ProcessingFailed
	}
	return out, nil
}

// render makes one rendition and stores it, hashing it on the way.
func (p *Processor) render(ctx context.Context, m media.Media, in *transcode.Input, spec transcode.Spec) (media.Rendition, error) {
	key := media.RenditionKey(m.TenantID, m.ID, spec.Name, spec.Ext)
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	w, err := p.media.Blobs().NewWriter(wctx, key, spec.MimeType)
	if err != nil {
		return media.Rendition{}, apperr.Wrap(apperr.Unavailable, err, "storage is unavailable")
	}
	h := sha256.New()
	res, err := in.Render(ctx, spec, io.MultiWriter(w, h))
	if err != nil {
		abort() // before Close: nothing becomes visible
		_ = w.Close()
		return media.Rendition{}, err
	}
	if err := w.Close(); err != nil {
		return media.Rendition{}, apperr.Wrap(apperr.Unavailable, err, "storage did not accept the %s rendition", spec.Name)
	}
	return media.Rendition{
		Name:      spec.Name,
		MimeType:  spec.MimeType,
		SizeBytes: res.Size,
		SHA256:    hex.EncodeToString(h.Sum(nil)),
		BlobKey:   key,
		Info:      infoOf(res.Probe),
		CreatedAt: p.media.Now(),
	}, nil
}

// finish records out on the record, publishes media.processed (and
// media.failed for failures), and replaces or schedules the replacement of
// the original.
func (p *Processor) finish(ctx context.Context, m media.Media, jobID string, out outcome, settings Settings) (media.Media, error) {
	var stale []media.Rendition
	now := p.media.Now()
	m, err := p.media.Update(ctx, m.TenantID, m.ID, func(cur *media.Media) error {
		if cur.Processing == nil || cur.Processing.State != media.ProcessingPending {
			return media.ErrUnchanged
		}
		if out.state != media.ProcessingSkipped {
			cur.Info = out.info
			// Renditions of an earlier run that this one did not make
			// again (a format the tenant no longer wants) go.
			for _, old := range cur.Renditions {
				if !hasRendition(out.renditions, old.BlobKey) && cur.Original.ReplacedBy != old.Name {
					stale = append(stale, old)
				}
			}
			keep := out.renditions
			if r, ok := cur.Rendition(cur.Original.ReplacedBy); ok && !hasRendition(keep, r.BlobKey) {
				keep = append(keep, r)
			}
			cur.Renditions = keep
		}
		cur.Processing = &media.Processing{State: out.state, ProbeError: out.probeError, Failures: out.failures, UpdatedAt: now}
		if settings.ReplaceAfter > 0 && cur.Original.ReplaceAfter == nil && cur.Original.ReplacedAt == nil {
			if _, ok := compressed(*cur); ok {
				at := cur.CreatedAt.Add(settings.ReplaceAfter)
				cur.Original.ReplaceAfter, cur.Original.ReplaceReason = &at, media.ReplaceAge
			}
		}
		cur.UpdatedAt = now
		return nil
	})
	if apperr.Is(err, apperr.NotFound) {
		// Deleted while we worked: what we wrote goes too.
		p.cleanup(m, out.renditions)
		return media.Media{}, nil
	}
	if err != nil {
		p.cleanup(m, out.renditions)
		return media.Media{}, err
	}
	p.cleanup(m, stale)
	if m.Processing == nil || m.Processing.UpdatedAt != now {
		return m, nil // another run recorded its outcome first
	}
	if out.state != media.ProcessingSkipped {
		p.media.Publish(ctx, m.TenantID, media.Event{Type: media.EventProcessed, Media: m})
	}
	if len(out.failures) > 0 {
		p.media.Publish(ctx, m.TenantID, media.Event{Type: media.EventFailed, Media: m, JobID: jobID, Failures: out.failures})
	}
	if o := m.Original; o.ReplaceAfter != nil && o.ReplacedAt == nil {
		if !o.ReplaceAfter.After(now) {
			return p.replace(ctx, m.TenantID, m.ID, settings)
		}
		if err := p.sched.ScheduleReplacement(ctx, m); err != nil {
			// Reindex queues it again; the record says when it is due.
			p.log.WarnContext(ctx, "queueing the replacement of an original failed", "media_id", m.ID, "err", err)
		}
	}
	return m, nil
}

// Fail records a processing job that failed for good (out of attempts) on
// its record, and raises media.failed.
func (p *Processor) Fail(ctx context.Context, tenantID, id, jobID string, kind, detail string) {
	now := p.media.Now()
	f := media.RenditionFailure{Kind: kind, Detail: detail}
	m, err := p.media.Update(ctx, tenantID, id, func(cur *media.Media) error {
		if cur.Processing == nil || cur.Processing.State != media.ProcessingPending {
			return media.ErrUnchanged
		}
		cur.Processing = &media.Processing{State: media.ProcessingFailed, Failures: []media.RenditionFailure{f}, UpdatedAt: now}
		cur.UpdatedAt = now
		return nil
	})
	if err != nil {
		if !apperr.Is(err, apperr.NotFound) {
			p.log.WarnContext(ctx, "recording a failed processing job failed", "media_id", id, "err", err)
		}
		return
	}
	if m.Processing != nil && m.Processing.UpdatedAt == now {
		p.media.Publish(ctx, tenantID, media.Event{Type: media.EventFailed, Media: m, JobID: jobID, Failures: m.Processing.Failures})
	}
}

// Replace replaces a record's original by its compressed rendition once
// due, if the tenant still wants that and the rendition is smaller; the
// sha256, size and type of the original stay on the record. A record that is
// gone, already replaced, or not yet due is left alone.
func (p *Processor) Replace(ctx context.Context, tenantID, id string) (media.Media, error) {
	settings, _ := p.settings(tenantID)
	return p.replace(ctx, tenantID, id, settings)
}

func (p *Processor) replace(ctx context.Context, tenantID, id string, settings Settings) (media.Media, error) {
	now := p.media.Now()
	var gone string
	m, err := p.media.Update(ctx, tenantID, id, func(cur *media.Media) error {
		o := &cur.Original
		if o.ReplaceAfter == nil || o.ReplacedAt != nil || o.ReplaceAfter.After(now) {
			return media.ErrUnchanged
		}
		if o.ReplaceReason == media.ReplaceAge && settings.ReplaceAfter == 0 {
			// The tenant keeps originals now.
			o.ReplaceAfter, o.ReplaceReason = nil, ""
			return nil
		}
		r, ok := compressed(*cur)
		if !ok {
			// Nothing smaller to keep instead: the original stays.
			o.ReplaceAfter, o.ReplaceReason = nil, ""
			return nil
		}
		gone = cur.BlobKey
		o.ReplacedAt, o.ReplacedBy, o.ReplaceAfter = &now, r.Name, nil
		cur.UpdatedAt = now
		return nil
	})
	if apperr.Is(err, apperr.NotFound) {
		return media.Media{}, nil
	}
	if err != nil {
		return media.Media{}, err
	}
	// The record no longer points at the original: deleting it now can
	// only leave an unreferenced object behind, never a broken record.
	if gone != "" {
		if err := p.media.Blobs().Delete(context.WithoutCancel(ctx), gone); err != nil {
			p.log.WarnContext(ctx, "deleting a replaced original failed; the object is unreferenced", "key", gone, "err", err)
		}
	}
	return m, nil
}

// compressed is the rendition that may replace m's original: the audio or
// video rendition, when it is smaller than the original.
func compressed(m media.Media) (media.Rendition, bool) {
	for _, name := range media.PlayableRenditions {
		if r, ok := m.Rendition(name); ok && r.SizeBytes < m.SizeBytes {
			return r, true
		}
	}
	return media.Rendition{}, false
}

// cleanup deletes renditions that no record refers to.
func (p *Processor) cleanup(m media.Media, rs []media.Rendition) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range rs {
		if err := p.media.Blobs().Delete(ctx, r.BlobKey); err != nil {
			p.log.Warn("deleting an unreferenced rendition failed", "key", r.BlobKey, "err", err)
		}
	}
}

func hasRendition(rs []media.Rendition, key string) bool {
	for _, r := range rs {
		if r.BlobKey == key {
			return true
		}
	}
	return false
}

// permanent reports the errors a retry cannot fix: the media is broken,
// hostile, too large, or takes longer than the time limit.
func permanent(err error) bool {
	if errors.Is(err, transcode.ErrTimeout) {
		return true
	}
	switch apperr.KindOf(err) {
	case apperr.UnsupportedMedia, apperr.TooLarge, apperr.Invalid, apperr.Unprocessable:
		return true
	}
	return false
}

func failure(rendition string, err error) media.RenditionFailure {
	kind, detail := apperr.KindOf(err), "the rendition could not be made"
	if e, ok := apperr.As(err); ok {
		detail = e.Detail
	}
	if errors.Is(err, transcode.ErrTimeout) {
		kind = apperr.Unprocessable
	}
	return media.RenditionFailure{Rendition: rendition, Kind: string(kind), Detail: detail}
}

func (p *Processor) failedProbe(err error, start time.Time) outcome {
	f := failure("", err)
	p.observe("probe", f.Kind, time.Since(start), 0)
	return outcome{state: media.ProcessingFailed, probeError: f.Detail, failures: []media.RenditionFailure{f}}
}

func infoOf(p transcode.Probe) media.Info {
	return media.Info{
		DurationMS: p.DurationMS, Width: p.Width, Height: p.Height, BitRate: p.BitRate,
		AudioCodec: p.AudioCodec, VideoCodec: p.VideoCodec, Container: p.Container,
	}
}
