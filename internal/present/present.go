// Package present renders a Media record as the API and events show it:
// with fresh signed content URLs and the flat crm_fields map. The API and
// the event publisher share it, so a webhook delivery carries exactly what
// GET /v1/media/{id} answers.
package present

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/signedurl"
)

// Media is the record as the API shows it (schemas/media.json).
type Media struct {
	ID                  string            `json:"id"`
	CustomerID          string            `json:"customer_id"`
	Kind                media.Kind        `json:"kind"`
	MimeType            string            `json:"mime_type"`
	SizeBytes           int64             `json:"size_bytes"`
	SHA256              string            `json:"sha256"`
	Filename            string            `json:"filename"`
	Caption             string            `json:"caption"`
	Tags                []string          `json:"tags"`
	Metadata            map[string]string `json:"metadata"`
	Source              media.Source      `json:"source"`
	CreatedAt           time.Time         `json:"created_at"`
	UpdatedAt           time.Time         `json:"updated_at"`
	ContentURL          string            `json:"content_url"`
	ContentURLExpiresAt time.Time         `json:"content_url_expires_at"`
	DurationMS          int64             `json:"duration_ms"`
	Width               int               `json:"width"`
	Height              int               `json:"height"`
	BitRate             int64             `json:"bit_rate"`
	AudioCodec          string            `json:"audio_codec"`
	VideoCodec          string            `json:"video_codec"`
	Processing          Processing        `json:"processing"`
	Renditions          []Rendition       `json:"renditions"`
	Original            Original          `json:"original"`
	CRMFields           map[string]string `json:"crm_fields"`
}

// Processing is a record's processing state (schemas/processing.json).
type Processing struct {
	State      string     `json:"state"`
	ProbeError string     `json:"probe_error"`
	Failures   []Failure  `json:"failures"`
	UpdatedAt  *time.Time `json:"updated_at"`
}

// Failure is a rendition that could not be made.
type Failure struct {
	Rendition string   `json:"rendition"`
	Error     JobError `json:"error"`
}

// JobError is an error as jobs and events show it (schemas/job-error.json).
type JobError struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// Rendition is a derived file with its signed URL (schemas/rendition.json).
type Rendition struct {
	Name       string `json:"name"`
	MimeType   string `json:"mime_type"`
	SizeBytes  int64  `json:"size_bytes"`
	SHA256     string `json:"sha256"`
	DurationMS int64  `json:"duration_ms"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	ContentURL string `json:"content_url"`
}

// Original says whether the original's bytes are still stored.
type Original struct {
	Stored        bool       `json:"stored"`
	ReplaceAfter  *time.Time `json:"replace_after"`
	ReplaceReason string     `json:"replace_reason"`
	ReplacedAt    *time.Time `json:"replaced_at"`
	ReplacedBy    string     `json:"replaced_by"`
}

// Presenter renders records; it holds the URL signer and lifetimes.
type Presenter struct {
	Signer *signedurl.Signer
	// CRMURLTTL is how long the URL in crm_fields lives: CRM records keep
	// it, so it outlives the short content_url.
	CRMURLTTL time.Duration
	Now       func() time.Time
	// Status maps an apperr kind to its HTTP status, for failures.
	Status func(kind string) int
}

// Media renders a record with fresh signed URLs under base (scheme and
// host, no trailing slash). Expiries are rounded up to the minute so
// repeated reads give the same, cacheable URL.
func (p *Presenter) Media(m media.Media, base string) Media {
	now := p.Now()
	exp := now.Add(p.Signer.TTL()).Truncate(time.Minute).Add(time.Minute).UTC()
	crmExp := now.Add(p.CRMURLTTL).Truncate(time.Hour).Add(time.Hour)
	contentURL := p.contentURL(base, m, "", exp)
	crmURL := p.contentURL(base, m, "", crmExp)
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	meta := m.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	return Media{
		ID: m.ID, CustomerID: m.CustomerID, Kind: m.Kind, MimeType: m.MimeType, SizeBytes: m.SizeBytes,
		SHA256: m.SHA256, Filename: m.Filename, Caption: m.Caption, Tags: tags, Metadata: meta,
		Source:    m.Source,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		ContentURL: contentURL, ContentURLExpiresAt: exp,
		DurationMS: m.Info.DurationMS, Width: m.Info.Width, Height: m.Info.Height, BitRate: m.Info.BitRate,
		AudioCodec: m.Info.AudioCodec, VideoCodec: m.Info.VideoCodec,
		Processing: p.processing(m.Processing),
		Renditions: p.renditions(base, m, exp),
		Original: Original{
			Stored: m.Original.ReplacedAt == nil, ReplaceAfter: m.Original.ReplaceAfter, ReplaceReason: m.Original.ReplaceReason,
			ReplacedAt: m.Original.ReplacedAt, ReplacedBy: m.Original.ReplacedBy,
		},
		CRMFields: map[string]string{
			"media_id":     m.ID,
			"url":          crmURL,
			"type":         string(m.Kind),
			"mime_type":    m.MimeType,
			"size":         humanSize(m.SizeBytes),
			"size_bytes":   strconv.FormatInt(m.SizeBytes, 10),
			"sha256":       m.SHA256,
			"filename":     m.Filename,
			"caption":      m.Caption,
			"duration":     duration(m),
			"width":        positive(m.Info.Width),
			"height":       positive(m.Info.Height),
			"playable_url": p.playableURL(base, m, crmExp),
			"preview_url":  p.previewURL(base, m, crmExp),
			"received_at":  m.Source.ReceivedAt.UTC().Format(time.RFC3339),
			"tags":         strings.Join(tags, ","),
		},
	}
}

func (p *Presenter) contentURL(base string, m media.Media, rendition string, exp time.Time) string {
	q := url.Values{}
	q.Set("tenant", m.TenantID)
	if rendition != "" {
		q.Set("rendition", rendition)
	}
	q.Set("expires", strconv.FormatInt(exp.Unix(), 10))
	q.Set("signature", p.Signer.Sign(m.TenantID, m.ID, rendition, exp))
	return base + "/v1/media/" + m.ID + "/content?" + q.Encode()
}

func (p *Presenter) processing(pr *media.Processing) Processing {
	if pr == nil {
		return Processing{State: media.ProcessingSkipped, Failures: []Failure{}}
	}
	out := Processing{State: pr.State, ProbeError: pr.ProbeError, Failures: p.Failures(pr.Failures)}
	if !pr.UpdatedAt.IsZero() {
		t := pr.UpdatedAt
		out.UpdatedAt = &t
	}
	return out
}

// Failures renders processing failures (schemas/processing-failure.json).
func (p *Presenter) Failures(fs []media.RenditionFailure) []Failure {
	out := make([]Failure, 0, len(fs))
	for _, f := range fs {
		out = append(out, Failure{Rendition: f.Rendition, Error: p.JobError(f.Kind, f.Detail)})
	}
	return out
}

// JobError renders an error kind and detail as jobs and events show them.
func (p *Presenter) JobError(kind, detail string) JobError {
	status := 500
	if p.Status != nil {
		status = p.Status(kind)
	}
	return JobError{Type: "urn:chatvault:problem:" + kind, Status: status, Detail: detail}
}

func (p *Presenter) renditions(base string, m media.Media, exp time.Time) []Rendition {
	out := make([]Rendition, 0, len(m.Renditions))
	for _, r := range m.Renditions {
		out = append(out, Rendition{
			Name: r.Name, MimeType: r.MimeType, SizeBytes: r.SizeBytes, SHA256: r.SHA256,
			DurationMS: r.Info.DurationMS, Width: r.Info.Width, Height: r.Info.Height,
			ContentURL: p.contentURL(base, m, r.Name, exp),
		})
	}
	return out
}

// playableURL is a long-lived URL of a version every browser plays: the
// audio or video rendition, or the original when it is MP3 or MP4 already.
func (p *Presenter) playableURL(base string, m media.Media, exp time.Time) string {
	if m.Kind != media.KindAudio && m.Kind != media.KindVideo {
		return ""
	}
	for _, name := range media.PlayableRenditions {
		if _, ok := m.Rendition(name); ok {
			return p.contentURL(base, m, name, exp)
		}
	}
	switch media.BaseMIME(m.MimeType) {
	case "audio/mpeg", "audio/mp4", "audio/aac", "video/mp4":
		return p.contentURL(base, m, "", exp)
	}
	return ""
}

// previewURL is a long-lived URL of a small image: a video's poster or an
// image's thumbnail.
func (p *Presenter) previewURL(base string, m media.Media, exp time.Time) string {
	for _, name := range []string{"thumb", "poster"} {
		if _, ok := m.Rendition(name); ok {
			return p.contentURL(base, m, name, exp)
		}
	}
	return ""
}

// duration is the playing time in seconds with one decimal ("10.0"), for
// audio and video once probed.
func duration(m media.Media) string {
	if (m.Kind != media.KindAudio && m.Kind != media.KindVideo) || m.Info.DurationMS <= 0 {
		return ""
	}
	return strconv.FormatFloat(float64(m.Info.DurationMS)/1000, 'f', 1, 64)
}

func positive(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
