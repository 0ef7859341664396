// Package worker runs queued jobs: archives accepted with Prefer:
// respond-async, and media that arrived through provider webhooks.
package worker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/webhook"
)

// Job types.
const (
	TypeArchive = "archive" // payload: media.ArchiveInput
	TypeInbound = "inbound" // payload: webhook.InboundMedia
)

// Result is what a finished archive job stores.
type Result struct {
	MediaID string `json:"media_id"`
	Created bool   `json:"created"`
}

// Inbound holds a tenant's rules for webhook media.
type Inbound struct {
	Mapper *webhook.Mapper
	Rules  *webhook.Rules
}

// InboundFunc returns a tenant's inbound rules.
type InboundFunc func(tenantID string) (Inbound, bool)

// Archiver is the use case jobs end in.
type Archiver interface {
	Archive(ctx context.Context, tenantID string, in media.ArchiveInput) (media.Media, bool, error)
}

// Processor turns jobs into archives.
type Processor struct {
	archiver Archiver
	inbound  InboundFunc
}

// New returns a Processor.
func New(a Archiver, inbound InboundFunc) *Processor {
	return &Processor{archiver: a, inbound: inbound}
}

// Handle is the queue handler. Errors that a retry cannot fix (bad input,
// content refused, media gone) are permanent and dead-letter at once;
// everything else is retried with backoff.
func (p *Processor) Handle(ctx context.Context, job queue.Job) (json.RawMessage, error) {
	var in media.ArchiveInput
	switch job.Type {
	case TypeArchive:
		if err := json.Unmarshal(job.Payload, &in); err != nil {
			return nil, queue.Permanent(fmt.Errorf("archive payload: %w", err))
		}
	case TypeInbound:
		var im webhook.InboundMedia
		if err := json.Unmarshal(job.Payload, &im); err != nil {
			return nil, queue.Permanent(fmt.Errorf("inbound payload: %w", err))
		}
		rules, ok := p.inbound(job.TenantID)
		if !ok {
			return nil, queue.Permanent(apperr.New(apperr.NotFound, "tenant %q is no longer configured", job.TenantID))
		}
		customer, err := rules.Mapper.CustomerID(ctx, im)
		if err != nil {
			return nil, classify(err)
		}
		in = im.ArchiveInput(customer, rules.Rules.Tags(im))
	default:
		return nil, queue.Permanent(fmt.Errorf("unknown job type %q", job.Type))
	}
	m, created, err := p.archiver.Archive(ctx, job.TenantID, in)
	if err != nil {
		return nil, classify(err)
	}
	return json.Marshal(Result{MediaID: m.ID, Created: created})
}

// classify marks the errors no retry can fix.
func classify(err error) error {
	switch apperr.KindOf(err) {
	case apperr.Invalid, apperr.NotFound, apperr.Gone, apperr.TooLarge, apperr.UnsupportedMedia,
		apperr.Unprocessable, apperr.Forbidden, apperr.Unauthorized:
		return queue.Permanent(err)
	}
	return err
}

// JobSummary is what a job says about the media it was for, for
// media.failed events.
type JobSummary struct {
	CustomerID string            `json:"customer_id,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Source     map[string]string `json:"source"`
}

// DescribeJob reads the source and customer of an archive or inbound job.
func DescribeJob(job queue.Job) (JobSummary, bool) {
	src := func(typ, id, url string) map[string]string {
		m := map[string]string{"type": typ}
		if id != "" {
			m["media_id"] = id
		}
		if url != "" {
			m["url"] = url
		}
		return m
	}
	switch job.Type {
	case TypeArchive:
		var in media.ArchiveInput
		if json.Unmarshal(job.Payload, &in) != nil {
			return JobSummary{}, false
		}
		return JobSummary{CustomerID: in.CustomerID, Kind: string(in.Kind), Source: src(in.Source.Type, in.Source.MediaID, in.Source.URL)}, true
	case TypeInbound:
		var im webhook.InboundMedia
		if json.Unmarshal(job.Payload, &im) != nil {
			return JobSummary{}, false
		}
		return JobSummary{Kind: im.Kind, Source: src(im.Provider, im.MediaID, im.URL)}, true
	}
	return JobSummary{}, false
}

// Processing job types, on their own queue so long ffmpeg runs never hold
// up archives, whose provider URLs expire in minutes.
const (
	TypeProcess = "process" // payload: MediaRef; probe and renditions
	TypeReplace = "replace" // payload: MediaRef; replace an original by its compressed rendition
)

// MediaRef names the record a processing job is for.
type MediaRef struct {
	MediaID string `json:"media_id"`
}

// MediaProcessor is the processing use case.
type MediaProcessor interface {
	Process(ctx context.Context, tenantID, id, jobID string) (media.Media, error)
	Replace(ctx context.Context, tenantID, id string) (media.Media, error)
}

// ProcessHandler is the processing queue's handler. Broken or hostile media
// are recorded on the record by the processor, not returned: only errors a
// retry may fix reach the queue.
func ProcessHandler(p MediaProcessor) queue.Handler {
	return func(ctx context.Context, job queue.Job) (json.RawMessage, error) {
		var ref MediaRef
		if err := json.Unmarshal(job.Payload, &ref); err != nil || !media.ValidID(ref.MediaID) {
			return nil, queue.Permanent(fmt.Errorf("%s payload: %s", job.Type, job.Payload))
		}
		var (
			m   media.Media
			err error
		)
		switch job.Type {
		case TypeProcess:
			m, err = p.Process(ctx, job.TenantID, ref.MediaID, job.ID)
		case TypeReplace:
			m, err = p.Replace(ctx, job.TenantID, ref.MediaID)
		default:
			return nil, queue.Permanent(fmt.Errorf("unknown job type %q", job.Type))
		}
		if err != nil {
			return nil, err
		}
		return json.Marshal(ProcessResult{MediaID: ref.MediaID, State: stateOf(m)})
	}
}

// ProcessResult is what a finished processing job stores.
type ProcessResult struct {
	MediaID string `json:"media_id"`
	State   string `json:"state,omitempty"` // the record's processing state; "" when it is gone
}

func stateOf(m media.Media) string {
	if m.Processing == nil {
		return ""
	}
	return m.Processing.State
}
