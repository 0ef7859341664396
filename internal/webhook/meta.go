package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

// metaSignaturePrefix starts Meta's X-Hub-Signature-256 header value.
const metaSignaturePrefix = "sha256="

// VerifyMetaSignature reports whether header (the X-Hub-Signature-256 value,
// "sha256=<hex>") is the HMAC-SHA256 of rawBody under appSecret. rawBody must
// be the bytes as received: Meta signs the body as sent, and re-encoding
// parsed JSON changes escapes and breaks the match. Any malformation, and an
// empty secret, is false: an unconfigured secret must never accept.
func VerifyMetaSignature(appSecret string, rawBody []byte, header string) bool {
	if appSecret == "" || !strings.HasPrefix(header, metaSignaturePrefix) {
		return false
	}
	got, err := hex.DecodeString(header[len(metaSignaturePrefix):])
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(rawBody)
	return hmac.Equal(mac.Sum(nil), got)
}

// VerifyToken compares a configured shared secret with the one a request
// presented, in time independent of where they differ and of their lengths
// (both are hashed first). It serves Meta's verify token and, for 360dialog,
// the custom header secret an admin sets on the webhook URL, since 360dialog
// does not forward Meta's X-Hub-Signature-256. An empty expected value never
// matches.
func VerifyToken(expected, presented string) bool {
	if expected == "" {
		return false
	}
	a := sha256.Sum256([]byte(expected))
	b := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// maxChallengeLen bounds the echoed challenge; Meta sends a short integer.
const maxChallengeLen = 128

// VerifyChallenge answers Meta's GET subscription handshake: with
// hub.mode=subscribe and hub.verify_token equal to verifyToken it returns
// hub.challenge, which the handler echoes as the response body. The
// challenge is restricted to [A-Za-z0-9._-] because it is reflected
// verbatim: anything else could turn the endpoint into a reflection vector.
func VerifyChallenge(q url.Values, verifyToken string) (challenge string, ok bool) {
	if q.Get("hub.mode") != "subscribe" || !VerifyToken(verifyToken, q.Get("hub.verify_token")) {
		return "", false
	}
	c := q.Get("hub.challenge")
	if c == "" || len(c) > maxChallengeLen {
		return "", false
	}
	for i := 0; i < len(c); i++ {
		if !isIDChar(c[i]) {
			return "", false
		}
	}
	return c, true
}

func isIDChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-'
}

// metaObject is the only object WhatsApp webhooks carry.
const metaObject = "whatsapp_business_account"

// The structs below name only what chatvault reads; encoding/json skips the
// rest, so fields Meta adds later never break parsing.
type metaPayload struct {
	Object string      `json:"object"`
	Entry  []metaEntry `json:"entry"`
}

type metaEntry struct {
	ID      string       `json:"id"`
	Changes []metaChange `json:"changes"`
}

type metaChange struct {
	Field string    `json:"field"`
	Value metaValue `json:"value"`
}

type metaValue struct {
	Metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []metaContact     `json:"contacts"`
	Messages []metaMessage     `json:"messages"`
	Statuses []json.RawMessage `json:"statuses"`
}

type metaContact struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID   string `json:"wa_id"`
	UserID string `json:"user_id"`
}

type metaMessage struct {
	From       string        `json:"from"`
	FromUserID string        `json:"from_user_id"`
	ID         string        `json:"id"`
	Timestamp  metaTimestamp `json:"timestamp"`
	Type       string        `json:"type"`
	Audio      *metaMedia    `json:"audio"`
	Video      *metaMedia    `json:"video"`
	Image      *metaMedia    `json:"image"`
	Document   *metaMedia    `json:"document"`
	Sticker    *metaMedia    `json:"sticker"`
}

type metaMedia struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
	Voice    bool   `json:"voice"`
}

// metaTimestamp is unix seconds. Meta sends it as a string; a number is
// accepted too, as some relays re-encode payloads.
type metaTimestamp struct {
	t   time.Time
	set bool
}

func (ts *metaTimestamp) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("timestamp %q is not unix seconds", s)
	}
	ts.t, ts.set = time.Unix(n, 0).UTC(), true
	return nil
}

// media returns the media object of a media message, nil for other types.
func (m *metaMessage) media() *metaMedia {
	switch m.Type {
	case "audio":
		return m.Audio
	case "video":
		return m.Video
	case "image":
		return m.Image
	case "document":
		return m.Document
	case "sticker":
		return m.Sticker
	}
	return nil
}

func isMediaType(t string) bool {
	switch t {
	case "audio", "video", "image", "document", "sticker":
		return true
	}
	return false
}

// ParseMeta reads a Meta Cloud API webhook body (also what 360dialog sends)
// and returns one InboundMedia per audio, video, image, document or sticker
// message. Everything else in the payload (statuses, text, reactions,
// locations, changes of other fields) is counted in ignored so the caller
// can acknowledge it without work. provider is ProviderWhatsAppCloud or
// ProviderDialog360 and is copied into each result.
//
// A body that is not JSON, not a whatsapp_business_account payload, or a
// media message with no media object, ID or URL is apperr.Invalid: those
// cannot come from Meta, and silently dropping a customer's media is worse
// than refusing the delivery.
func ParseMeta(rawBody []byte, provider string) (media []InboundMedia, ignored int, err error) {
	if provider != ProviderWhatsAppCloud && provider != ProviderDialog360 {
		return nil, 0, apperr.New(apperr.Internal, "ParseMeta called for provider %q", provider)
	}
	var p metaPayload
	if err := json.Unmarshal(rawBody, &p); err != nil {
		return nil, 0, apperr.Wrap(apperr.Invalid, err, "the webhook body is not a valid WhatsApp payload")
	}
	if p.Object != metaObject {
		return nil, 0, apperr.New(apperr.Invalid, "the webhook object is %q, not %q", p.Object, metaObject)
	}
	for _, e := range p.Entry {
		for _, ch := range e.Changes {
			// Only "messages" carries what customers send; echoes, template
			// and account updates are someone else's concern. An absent field
			// is read as "messages" for relays that drop it.
			if ch.Field != "messages" && ch.Field != "" {
				ignored++
				continue
			}
			v := &ch.Value
			ignored += len(v.Statuses)
			for i := range v.Messages {
				m := &v.Messages[i]
				if !isMediaType(m.Type) {
					ignored++
					continue
				}
				in, err := metaInbound(provider, v, m)
				if err != nil {
					return nil, 0, err
				}
				media = append(media, in)
			}
		}
	}
	return media, ignored, nil
}

func metaInbound(provider string, v *metaValue, m *metaMessage) (InboundMedia, error) {
	md := m.media()
	if md == nil {
		return InboundMedia{}, apperr.New(apperr.Invalid, "message %s has type %s but no %s object", m.ID, m.Type, m.Type)
	}
	if md.ID == "" && md.URL == "" {
		return InboundMedia{}, apperr.New(apperr.Invalid, "message %s carries %s without an id or url", m.ID, m.Type)
	}
	if m.ID == "" {
		return InboundMedia{}, apperr.New(apperr.Invalid, "a %s message has no id", m.Type)
	}
	in := InboundMedia{
		Provider:       provider,
		MessageID:      m.ID,
		From:           phone(m.From),
		UserID:         m.FromUserID,
		PhoneNumberID:  v.Metadata.PhoneNumberID,
		BusinessNumber: phone(v.Metadata.DisplayPhoneNumber),
		Timestamp:      m.Timestamp.t,
		Kind:           m.Type,
		Voice:          m.Type == "audio" && md.Voice,
		MediaID:        md.ID,
		URL:            md.URL,
		MimeType:       md.MimeType,
		SHA256:         md.SHA256,
		Filename:       md.Filename,
		Caption:        md.Caption,
	}
	if c := matchContact(v.Contacts, m); c != nil {
		in.WaID = phone(c.WaID)
		in.ProfileName = c.Profile.Name
		if in.UserID == "" {
			in.UserID = c.UserID
		}
	}
	return in, nil
}

// matchContact finds the sender's contact entry: by wa_id, then by BSUID,
// then the only contact there is, because Meta notes that a user's wa_id and
// phone number may differ while it still sends one contact per sender.
func matchContact(cs []metaContact, m *metaMessage) *metaContact {
	from := phone(m.From)
	for i := range cs {
		if from != "" && phone(cs[i].WaID) == from {
			return &cs[i]
		}
	}
	for i := range cs {
		if m.FromUserID != "" && cs[i].UserID == m.FromUserID {
			return &cs[i]
		}
	}
	if len(cs) == 1 {
		return &cs[0]
	}
	return nil
}

// phone strips the decorations providers put around a phone number
// ("whatsapp:", "+", spaces, dashes, parentheses) and returns its digits. A
// value that is not a phone number is returned as given (without
// "whatsapp:"), never reduced to the digits it happens to contain: that could
// turn an unknown identifier into somebody else's number.
func phone(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "whatsapp:")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			b.WriteByte(c)
		case c == '+' || c == ' ' || c == '-' || c == '(' || c == ')':
		default:
			return s
		}
	}
	return b.String()
}
