// Package webhook verifies, parses and maps the inbound webhooks of WhatsApp
// providers (Meta Cloud API, 360dialog, Twilio) into InboundMedia, a customer
// ID and automatic tags. It holds pure functions and small types: no server,
// no queue, no storage.
package webhook

import (
	"time"

	"github.com/chatvault/chatvault/internal/media"
)

// Providers, spelled as the archive API's source.type so an InboundMedia
// becomes an archive request without translation.
const (
	ProviderWhatsAppCloud = "whatsapp_cloud"
	ProviderTwilio        = "twilio"
	ProviderDialog360     = "dialog360"
)

// InboundMedia is one media item a customer sent, as the provider described
// it. Values are claims from a signed webhook: the archiver still verifies the
// bytes it fetches (size, checksum, content sniffing).
type InboundMedia struct {
	Provider  string // ProviderWhatsAppCloud, ProviderTwilio or ProviderDialog360
	MessageID string // wamid… or Twilio MessageSid
	Index     int    // media position within the message (Twilio can carry up to 10; Meta always 0)
	// From is the sender's phone number as digits, without "whatsapp:" or
	// "+" (Meta messages[].from, Twilio From). It is "" for a WhatsApp user
	// who hides the number behind a username; UserID then identifies them.
	From string
	// WaID is the sender's WhatsApp ID (Meta contacts[].wa_id, Twilio WaId).
	// It usually equals From, but Meta documents that the two may differ, and
	// the customer mapping keys on it.
	WaID string
	// UserID is Meta's business-scoped user ID (BSUID, e.g.
	// "US.13491208655302741918"), sent since 2026 and the only sender
	// identity for users with a username; "" when not sent (always for Twilio).
	UserID         string
	ProfileName    string
	PhoneNumberID  string    // Meta metadata.phone_number_id (the business number); "" for Twilio
	BusinessNumber string    // Meta display_phone_number or Twilio To, digits without prefix
	Timestamp      time.Time // Meta's message timestamp (UTC); zero for Twilio, which sends none
	Kind           string    // audio, video, image, document, sticker
	Voice          bool      // Meta audio.voice == true: a recorded voice note, not an audio file
	MediaID        string    // Meta / 360dialog media ID
	URL            string    // Twilio MediaUrlN; Meta's optional url field
	MimeType       string
	SHA256         string // as sent: Meta sends base64 in webhooks
	Filename       string
	Caption        string
}

// ArchiveInput turns the media into an archive request for customerID with
// the given tags (for example from Rules.Tags). The archive service
// normalises and validates everything again; this only moves fields.
func (in InboundMedia) ArchiveInput(customerID string, tags []string) media.ArchiveInput {
	src := media.SourceRequest{Type: in.Provider}
	switch in.Provider {
	case ProviderTwilio:
		// Twilio names media by URL only; the URL is the source identity.
		src.URL = in.URL
	default:
		// Meta's media URLs are short-lived and signed, so the media ID is
		// the stable identity for Meta and 360dialog.
		src.MediaID = in.MediaID
	}
	return media.ArchiveInput{
		CustomerID: customerID,
		Kind:       media.Kind(in.Kind),
		Source:     src,
		Hints: media.SourceHints{
			MimeType: in.MimeType,
			SHA256:   in.SHA256,
			Filename: in.Filename,
		},
		Message: media.Message{
			ID:        in.MessageID,
			From:      in.senderID(),
			Timestamp: in.Timestamp,
			Caption:   in.Caption,
		},
		Tags: tags,
	}
}

// senderID is the best identity of the sender for records: the phone
// number when known, else the WhatsApp ID, else the BSUID.
func (in InboundMedia) senderID() string {
	switch {
	case in.From != "":
		return in.From
	case in.WaID != "":
		return in.WaID
	default:
		return in.UserID
	}
}
