package app

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/chatvault/chatvault/internal/events"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/present"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/worker"
)

// eventBridge turns the media service's events into published events, with
// the record rendered exactly as the API renders it.
type eventBridge struct {
	pub       *events.Publisher
	presenter *present.Presenter
	baseURL   string
	log       *slog.Logger
}

func (b *eventBridge) Publish(ctx context.Context, tenantID string, e media.Event) {
	var data any
	switch e.Type {
	case media.EventArchived:
		data = map[string]any{"media": b.presenter.Media(e.Media, b.baseURL)}
	case media.EventTagged:
		data = map[string]any{"media": b.presenter.Media(e.Media, b.baseURL), "added": e.Added, "removed": e.Removed}
	case media.EventDeleted:
		data = map[string]any{"media_id": e.Media.ID, "customer_id": e.Media.CustomerID, "kind": e.Media.Kind}
	case media.EventProcessed:
		data = map[string]any{"media": b.presenter.Media(e.Media, b.baseURL)}
	case media.EventFailed:
		failures := b.presenter.Failures(e.Failures)
		data = map[string]any{
			"job_id": e.JobID, "stage": "processing", "media_id": e.Media.ID, "customer_id": e.Media.CustomerID,
			"error": failures[0].Error, "failures": failures,
			"media": b.presenter.Media(e.Media, b.baseURL),
		}
	default:
		return
	}
	b.publish(ctx, events.Event{Type: e.Type, TenantID: tenantID, CustomerID: e.Media.CustomerID, Kind: string(e.Media.Kind), Tags: e.Media.Tags}, data)
}

// failed raises media.failed for an archive job that landed in the dead
// letters.
func (b *eventBridge) failed(ctx context.Context, job queue.Job, jerr queue.JobError) {
	if job.Type != worker.TypeArchive && job.Type != worker.TypeInbound {
		return
	}
	data := map[string]any{
		"job_id": job.ID,
		"stage":  "archive",
		"error":  b.presenter.JobError(jerr.Kind, jerr.Detail),
	}
	e := events.Event{Type: events.TypeFailed, TenantID: job.TenantID}
	if in, ok := worker.DescribeJob(job); ok {
		data["source"] = in.Source
		if in.CustomerID != "" {
			data["customer_id"] = in.CustomerID
			e.CustomerID = in.CustomerID
		}
		e.Kind = in.Kind
	}
	b.publish(ctx, e, data)
}

func (b *eventBridge) publish(ctx context.Context, e events.Event, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		b.log.ErrorContext(ctx, "rendering an event failed", "type", e.Type, "err", err)
		return
	}
	e.Data = raw
	if err := b.pub.Publish(ctx, e); err != nil {
		// The record is committed; the event is best effort.
		b.log.WarnContext(ctx, "publishing an event failed", "type", e.Type, "tenant", e.TenantID, "err", err)
	}
}
