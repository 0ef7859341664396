package api

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/media"
)

// mediaView is the Media record as the API shows it (schemas/media.json).
type mediaView struct {
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
	Source              sourceView        `json:"source"`
	CreatedAt           time.Time         `json:"created_at"`
	UpdatedAt           time.Time         `json:"updated_at"`
	ContentURL          string            `json:"content_url"`
	ContentURLExpiresAt time.Time         `json:"content_url_expires_at"`
	CRMFields           map[string]string `json:"crm_fields"`
}

type sourceView struct {
	Type       string    `json:"type"`
	MediaID    string    `json:"media_id,omitempty"`
	URL        string    `json:"url,omitempty"`
	MessageID  string    `json:"message_id,omitempty"`
	From       string    `json:"from,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
}

type mediaListView struct {
	Data       []mediaView `json:"data"`
	NextCursor *string     `json:"next_cursor"`
}

// viewOf renders a record with fresh signed URLs. Expiries are rounded up to
// the minute so repeated reads give the same, cacheable URL.
func (s *server) viewOf(c *gin.Context, m media.Media) mediaView {
	now := s.Now()
	exp := now.Add(s.Signer.TTL()).Truncate(time.Minute).Add(time.Minute).UTC()
	contentURL := s.contentURL(c, m, exp)
	crmURL := s.contentURL(c, m, now.Add(s.CRMURLTTL).Truncate(time.Hour).Add(time.Hour))
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	meta := m.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	return mediaView{
		ID: m.ID, CustomerID: m.CustomerID, Kind: m.Kind, MimeType: m.MimeType, SizeBytes: m.SizeBytes,
		SHA256: m.SHA256, Filename: m.Filename, Caption: m.Caption, Tags: tags, Metadata: meta,
		Source: sourceView{Type: m.Source.Type, MediaID: m.Source.MediaID, URL: m.Source.URL,
			MessageID: m.Source.MessageID, From: m.Source.From, ReceivedAt: m.Source.ReceivedAt},
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

func (s *server) contentURL(c *gin.Context, m media.Media, exp time.Time) string {
	q := url.Values{}
	q.Set("tenant", m.TenantID)
	q.Set("expires", strconv.FormatInt(exp.Unix(), 10))
	q.Set("signature", s.Signer.Sign(m.TenantID, m.ID, "", exp))
	return s.baseURL(c) + "/v1/media/" + m.ID + "/content?" + q.Encode()
}

// baseURL is the configured public URL, or the one the request came to.
func (s *server) baseURL(c *gin.Context) string {
	if s.PublicURL != "" {
		return s.PublicURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
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
