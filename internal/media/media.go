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

	// Info is what probing the original found; zero until processed.
	Info Info `json:"info"`
	// Processing is the state of probing and renditions; nil for records
	// archived before processing existed, or never processed.
	Processing *Processing `json:"processing,omitempty"`
	// Renditions are the derived files stored beside the original.
	Renditions []Rendition `json:"renditions,omitempty"`
	// Original says whether the original's bytes are still stored. SHA256,
	// SizeBytes and MimeType always describe the original, even replaced.
	Original Original `json:"original"`
}

// Info is what ffprobe found in a media: zero fields are unknown.
type Info struct {
	DurationMS int64  `json:"duration_ms,omitempty"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	BitRate    int64  `json:"bit_rate,omitempty"`
	AudioCodec string `json:"audio_codec,omitempty"`
	VideoCodec string `json:"video_codec,omitempty"`
	Container  string `json:"container,omitempty"`
}

// Processing states.
const (
	ProcessingPending = "pending" // queued; probing and renditions follow
	ProcessingDone    = "done"    // probed, and every planned rendition made
	ProcessingFailed  = "failed"  // the probe or a rendition failed; Failures say why
	ProcessingSkipped = "skipped" // nothing to do: the kind has no renditions, or processing is off
)

// Processing is the state of a record's background processing.
type Processing struct {
	State string `json:"state"`
	// ProbeError says why the original could not be probed; "" if it was.
	ProbeError string             `json:"probe_error,omitempty"`
	Failures   []RenditionFailure `json:"failures,omitempty"`
	UpdatedAt  time.Time          `json:"updated_at"`
}

// RenditionFailure is a rendition that could not be made.
type RenditionFailure struct {
	Rendition string `json:"rendition"` // "" when processing as a whole failed
	Kind      string `json:"kind"`      // apperr kind
	Detail    string `json:"detail"`
}

// Rendition is a derived file (an MP3 of a voice note, an MP4, a poster, a
// thumbnail) stored beside the original under BlobKey.
type Rendition struct {
	Name      string    `json:"name"`
	MimeType  string    `json:"mime_type"`
	SizeBytes int64     `json:"size_bytes"`
	SHA256    string    `json:"sha256"`
	BlobKey   string    `json:"blob_key"`
	Info      Info      `json:"info"`
	CreatedAt time.Time `json:"created_at"`
}

// PlayableRenditions are the audio and video renditions every browser and
// CRM plays, in order of preference; one of them may stand in for the
// original.
var PlayableRenditions = []string{"mp4", "mp3", "m4a"}

// Rendition returns the rendition called name.
func (m Media) Rendition(name string) (Rendition, bool) {
	for _, r := range m.Renditions {
		if r.Name == name {
			return r, true
		}
	}
	return Rendition{}, false
}

// Why an original is to be replaced by its compressed rendition.
const (
	ReplaceAge      = "age"      // the tenant replaces originals after N days
	ReplaceOversize = "oversize" // accepted over the kind's limit on condition of compression
)

// Original is the state of the original's bytes.
type Original struct {
	// ReplaceAfter is when the original may be replaced by its compressed
	// rendition; nil when it is kept for good.
	ReplaceAfter  *time.Time `json:"replace_after,omitempty"`
	ReplaceReason string     `json:"replace_reason,omitempty"`
	// ReplacedAt and ReplacedBy are set once the original's bytes are gone;
	// content is then served from the rendition named ReplacedBy.
	ReplacedAt *time.Time `json:"replaced_at,omitempty"`
	ReplacedBy string     `json:"replaced_by,omitempty"`
}
