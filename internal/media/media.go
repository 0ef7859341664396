// Package media holds the Media record and the archive, tag, list, get and
// delete use cases. It knows no HTTP, gin or Redis type: only the small
// interfaces it declares in ports.go.
package media

import "time"

// Kind is the WhatsApp media category of a record.
type Kind string

const (
	KindAudio    Kind = "audio"
	KindVideo    Kind = "video"
	KindImage    Kind = "image"
	KindDocument Kind = "document"
	KindSticker  Kind = "sticker"
)

// Kinds lists every kind, in a stable order.
var Kinds = []Kind{KindAudio, KindVideo, KindImage, KindDocument, KindSticker}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if v == k {
			return true
		}
	}
	return false
}

// Source types accepted by Archive.
const (
	SourceURL           = "url"
	SourceWhatsAppCloud = "whatsapp_cloud"
)

// Source records where a media came from and why it was sent.
type Source struct {
	Type       string    `json:"type"`
	MediaID    string    `json:"media_id,omitempty"`
	URL        string    `json:"url,omitempty"`
	MessageID  string    `json:"message_id,omitempty"`
	From       string    `json:"from,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
}

// Media is the stored record, kept as media.json next to the original blob.
// It is the truth; the Redis index is rebuilt from it.
type Media struct {
	ID         string            `json:"id"`
	TenantID   string            `json:"tenant_id"`
	CustomerID string            `json:"customer_id"`
	Kind       Kind              `json:"kind"`
	MimeType   string            `json:"mime_type"`
	SizeBytes  int64             `json:"size_bytes"`
	SHA256     string            `json:"sha256"`
	Filename   string            `json:"filename,omitempty"`
	Caption    string            `json:"caption,omitempty"`
	Tags       []string          `json:"tags"`
	Metadata   map[string]string `json:"metadata"`
	Source     Source            `json:"source"`
	// SourceKey is the natural dedupe identity (provider and media ID, or URL
	// and sha256), hashed; reindex restores dedupe from it.
	SourceKey string    `json:"source_key"`
	BlobKey   string    `json:"blob_key"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
