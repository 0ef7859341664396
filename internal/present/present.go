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
	CRMFields           map[string]string `json:"crm_fields"`
}

// Presenter renders records; it holds the URL signer and lifetimes.
type Presenter struct {
	Signer *signedurl.Signer
	// CRMURLTTL is how long the URL in crm_fields lives: CRM records keep
	// it, so it outlives the short content_url.
	CRMURLTTL time.Duration
	Now       func() time.Time
}

// Media renders a record with fresh signed URLs under base (scheme and
// host, no trailing slash). Expiries are rounded up to the minute so
// repeated reads give the same, cacheable URL.
func (p *Presenter) Media(m media.Media, base string) Media {
	now := p.Now()
	exp := now.Add(p.Signer.TTL()).Truncate(time.Minute).Add(time.Minute).UTC()
	contentURL := p.contentURL(base, m, exp)
	crmURL := p.contentURL(base, m, now.Add(p.CRMURLTTL).Truncate(time.Hour).Add(time.Hour))
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
		CRMFields: map[string]string{
			"media_id":    m.ID,
			"url":         crmURL,
			"type":        string(m.Kind),
			"mime_type":   m.MimeType,
			"size":        humanSize(m.SizeBytes),
			"size_bytes":  strconv.FormatInt(m.SizeBytes, 10),
			"sha256":      m.SHA256,
			"filename":    m.Filename,
			"caption":     m.Caption,
			"duration":    "",
			"received_at": m.Source.ReceivedAt.UTC().Format(time.RFC3339),
			"tags":        strings.Join(tags, ","),
		},
	}
}

func (p *Presenter) contentURL(base string, m media.Media, exp time.Time) string {
	q := url.Values{}
	q.Set("tenant", m.TenantID)
	q.Set("expires", strconv.FormatInt(exp.Unix(), 10))
	q.Set("signature", p.Signer.Sign(m.TenantID, m.ID, "", exp))
	return base + "/v1/media/" + m.ID + "/content?" + q.Encode()
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
