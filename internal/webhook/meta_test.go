package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

const testAppSecret = "6f1c0d2e9b8a7f3e4d5c6b7a8f9e0d1c"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signMeta signs body as Meta does: HMAC-SHA256 of the raw bytes keyed
// with the app secret, hex, prefixed "sha256=".
func signMeta(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifyMetaSignature(t *testing.T) {
	body := readFixture(t, "meta_audio_voice.json")
	good := signMeta(testAppSecret, body)
	digest := strings.TrimPrefix(good, "sha256=")
	flipped := []byte(digest)
	if flipped[0] == '0' {
		flipped[0] = '1'
	} else {
		flipped[0] = '0'
	}
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] = ' '

	tests := []struct {
		name   string
		secret string
		body   []byte
		header string
		want   bool
	}{
		{"valid", testAppSecret, body, good, true},
		{"valid with upper-case hex", testAppSecret, body, "sha256=" + strings.ToUpper(digest), true},
		{"other secret", "another-secret", body, good, false},
		{"tampered body", testAppSecret, tampered, good, false},
		{"one digit changed", testAppSecret, body, "sha256=" + string(flipped), false},
		{"missing header", testAppSecret, body, "", false},
		{"prefix only", testAppSecret, body, "sha256=", false},
		{"no prefix", testAppSecret, body, digest, false},
		{"sha1 prefix", testAppSecret, body, "sha1=" + digest, false},
		{"upper-case prefix", testAppSecret, body, "SHA256=" + digest, false},
		{"not hex", testAppSecret, body, "sha256=" + strings.Repeat("zz", 32), false},
		{"odd length", testAppSecret, body, "sha256=" + digest[:63], false},
		{"truncated digest", testAppSecret, body, "sha256=" + digest[:62], false},
		{"digest too long", testAppSecret, body, good + "00", false},
		{"trailing space", testAppSecret, body, good + " ", false},
		{"empty secret never verifies", "", body, signMeta("", body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyMetaSignature(tt.secret, tt.body, tt.header); got != tt.want {
				t.Errorf("VerifyMetaSignature() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerifyMetaSignatureEveryFixture(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "meta_*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !VerifyMetaSignature(testAppSecret, body, signMeta(testAppSecret, body)) {
			t.Errorf("%s: a correctly signed fixture was refused", f)
		}
	}
}

func TestVerifyChallenge(t *testing.T) {
	const token = "meatyhamhock"
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name   string
		q      url.Values
		token  string
		want   string
		wantOK bool
	}{
		{"Meta's documented handshake", q("hub.mode", "subscribe", "hub.challenge", "1158201444", "hub.verify_token", token), token, "1158201444", true},
		{"wrong token", q("hub.mode", "subscribe", "hub.challenge", "1158201444", "hub.verify_token", "meatyhamhoc"), token, "", false},
		{"token prefix of the real one", q("hub.mode", "subscribe", "hub.challenge", "1", "hub.verify_token", token[:4]), token, "", false},
		{"missing token", q("hub.mode", "subscribe", "hub.challenge", "1158201444"), token, "", false},
		{"wrong mode", q("hub.mode", "unsubscribe", "hub.challenge", "1158201444", "hub.verify_token", token), token, "", false},
		{"missing mode", q("hub.challenge", "1158201444", "hub.verify_token", token), token, "", false},
		{"missing challenge", q("hub.mode", "subscribe", "hub.verify_token", token), token, "", false},
		{"challenge with markup", q("hub.mode", "subscribe", "hub.challenge", "<script>alert(1)</script>", "hub.verify_token", token), token, "", false},
		{"overlong challenge", q("hub.mode", "subscribe", "hub.challenge", strings.Repeat("9", 129), "hub.verify_token", token), token, "", false},
		{"unconfigured token refuses an empty one", q("hub.mode", "subscribe", "hub.challenge", "1", "hub.verify_token", ""), "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := VerifyChallenge(tt.q, tt.token)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("VerifyChallenge() = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestVerifyToken(t *testing.T) {
	if !VerifyToken("s3cret", "s3cret") {
		t.Error("equal tokens refused")
	}
	for _, p := range []string{"", "s3cre", "s3cret ", "S3cret"} {
		if VerifyToken("s3cret", p) {
			t.Errorf("VerifyToken(%q) accepted", p)
		}
	}
	if VerifyToken("", "") {
		t.Error("an empty configured token matched")
	}
}

const (
	sheenaWamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
	lookaside   = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid="
)

// sheena is the sender fields every single-message fixture shares.
func sheena(in InboundMedia) InboundMedia {
	in.Provider = ProviderWhatsAppCloud
	in.From = "16505551234"
	in.WaID = "16505551234"
	in.ProfileName = "Sheena Nelson"
	in.PhoneNumberID = "106540352242922"
	in.BusinessNumber = "15550783881"
	return in
}

func TestParseMetaMedia(t *testing.T) {
	tests := []struct {
		file        string
		want        []InboundMedia
		wantIgnored int
	}{
		{"meta_audio_voice.json", []InboundMedia{sheena(InboundMedia{
			MessageID: sheenaWamid,
			Timestamp: time.Date(2025, 2, 12, 0, 43, 44, 0, time.UTC),
			Kind:      "audio", Voice: true,
			MediaID:  "1003383421387256",
			URL:      lookaside + "1003383421387256&ext=1739321026&hash=ATuRpWv9A6mOE1XjvXhzAzHgUFcYyk3N7hq4AbqZJmqJqA",
			MimeType: "audio/ogg; codecs=opus",
			SHA256:   "btiRnOIEkKXjrYYwpPq2lHUper0H23ORjdXzb8+usRs=",
		})}, 0},
		{"meta_video_caption.json", []InboundMedia{sheena(InboundMedia{
			MessageID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUI4RjM0NjNDQzFFOTc0N0U1RQA=",
			Timestamp: time.Unix(1739321030, 0).UTC(),
			Kind:      "video",
			MediaID:   "1166846181421424",
			URL:       lookaside + "1166846181421424&ext=1739321032&hash=ATsWxKpM6kz2cbH9A4l3Gg3nUqKk1sQmP6jS7o4JkS0yVw",
			MimeType:  "video/mp4",
			SHA256:    "DKsclhdAT68rJOIh4YnKWUWBPhTT92Y0WwnKE7vij/w=",
			Caption:   "Here's the damaged packaging 📦",
		})}, 0},
		{"meta_image_caption.json", []InboundMedia{sheena(InboundMedia{
			MessageID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
			Timestamp: time.Date(2025, 6, 18, 19, 46, 32, 0, time.UTC),
			Kind:      "image",
			MediaID:   "1479537139650973",
			URL:       lookaside + "1479537139650973&ext=1750275994&hash=ATv2FfOaU7s3Rrj1l3c9eKXxXq8T3nHc0aH7gYb5oW0e2A",
			MimeType:  "image/jpeg",
			SHA256:    "YQXWzHavQAMl6U1YjOURvlv9u3O0N9xR7KQ5F9ekPj0=",
			Caption:   "Invoice #4821 — photo of the receipt",
		})}, 0},
		{"meta_document.json", []InboundMedia{sheena(InboundMedia{
			MessageID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTg0NzQ4RjlBNjFCMkMyNDhCQwA=",
			Timestamp: time.Unix(1744344496, 0).UTC(),
			Kind:      "document",
			MediaID:   "1376223850470843",
			URL:       lookaside + "1376223850470843&ext=1744344498&hash=ATuFoH5kQm2Xx8cZ0vI9y4oYq3r8m2NnV0dA4tQwZ1cXlg",
			MimeType:  "application/pdf",
			SHA256:    "E51US4IbE+vqFPGw/hhXciLkFcKWbjo1EcQZYFUjIgI=",
			Filename:  "lucky-shrub-contract.pdf",
			Caption:   "Signed contract",
		})}, 0},
		{"meta_sticker.json", []InboundMedia{sheena(InboundMedia{
			MessageID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQjI2MUQ3OEQ1NjZBNzJCNEY2MgA=",
			Timestamp: time.Unix(1744344510, 0).UTC(),
			Kind:      "sticker",
			MediaID:   "1229485462224155",
			URL:       lookaside + "1229485462224155&ext=1744344512&hash=ATt7Vd3r0a9kS1mHq0z2Lw5GxE4pJd8Rk3yUoT6nBc1Qxw",
			MimeType:  "image/webp",
			SHA256:    "V8SxOkxzNecvFmngUG6ZII3x2gUMEl2meLI+u1W/TGE=",
		})}, 0},
		{"meta_statuses.json", nil, 2},
		{"meta_text.json", nil, 1},
		{"meta_two_contacts.json", []InboundMedia{
			{
				Provider: ProviderWhatsAppCloud, MessageID: "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYFDNFQjBDMkQ1QjZBNjQ4RUFBMjdFAA==",
				From: "5215512345678", WaID: "5215512345678", ProfileName: "Pablo Morales",
				PhoneNumberID: "106540352242922", BusinessNumber: "15550783881",
				Timestamp: time.Unix(1744344600, 0).UTC(), Kind: "audio", Voice: false,
				MediaID: "2298134573947012", MimeType: "audio/mpeg", SHA256: "XLQJJvbqv+oLfb4zfOygy3BU8wDnDZTLCukpH2U1OAo=",
			},
			sheena(InboundMedia{
				MessageID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzRUIwNUVDMEE3N0Y0RTgxMkE4RgA=",
				Timestamp: time.Unix(1744344601, 0).UTC(), Kind: "image",
				MediaID: "1104480873777230", MimeType: "image/png", SHA256: "aYd0D7Yk4+mUPsXZrFUZtyzqGzX7S95XGd85I6NsCPc=",
			}),
		}, 0},
		{"meta_bsuid_username.json", []InboundMedia{{
			Provider: ProviderWhatsAppCloud, MessageID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUM4Q0I2MzlGQzA0NDhFOUIwOTJGAA==",
			UserID: "US.13491208655302741918", ProfileName: "Sheena Nelson",
			PhoneNumberID: "106540352242922", BusinessNumber: "15550783881",
			Timestamp: time.Unix(1779372805, 0).UTC(), Kind: "image",
			MediaID: "1479537139650999", MimeType: "image/jpeg", SHA256: "YQXWzHavQAMl6U1YjOURvlv9u3O0N9xR7KQ5F9ekPj0=",
		}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, ignored, err := ParseMeta(readFixture(t, tt.file), ProviderWhatsAppCloud)
			if err != nil {
				t.Fatalf("ParseMeta: %v", err)
			}
			if ignored != tt.wantIgnored {
				t.Errorf("ignored = %d, want %d", ignored, tt.wantIgnored)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d media, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], tt.want[i]) {
					t.Errorf("media %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseMetaKeepsBase64SHA256AsSent(t *testing.T) {
	got, _, err := ParseMeta(readFixture(t, "meta_image_caption.json"), ProviderWhatsAppCloud)
	if err != nil {
		t.Fatal(err)
	}
	// Meta sends base64; the archiver normalises, this layer must not.
	if got[0].SHA256 != "YQXWzHavQAMl6U1YjOURvlv9u3O0N9xR7KQ5F9ekPj0=" {
		t.Errorf("SHA256 = %q, want the base64 value as sent", got[0].SHA256)
	}
}

func TestParseMetaDialog360(t *testing.T) {
	got, _, err := ParseMeta(readFixture(t, "meta_audio_voice.json"), ProviderDialog360)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Provider != ProviderDialog360 {
		t.Errorf("Provider = %q, want %q", got[0].Provider, ProviderDialog360)
	}
}

// mixedPayload exercises counting: other fields, unknown message types,
// unknown fields inside media objects, a numeric timestamp and several
// entries in one delivery.
const mixedPayload = `{
  "object": "whatsapp_business_account",
  "entry": [
    {"id": "1", "changes": [
      {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
      {"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "+1 555-078-3881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "A"}, "wa_id": "491701234567"}],
        "messages": [
          {"from": "491701234567", "id": "wamid.r", "timestamp": "1", "type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}},
          {"from": "491701234567", "id": "wamid.l", "timestamp": "1", "type": "location", "location": {"latitude": 1, "longitude": 2}},
          {"from": "491701234567", "id": "wamid.u", "timestamp": "1", "type": "unsupported", "errors": [{"code": 131051}]},
          {"from": "491701234567", "id": "wamid.i", "timestamp": 1744344601, "type": "image",
           "image": {"id": "42", "mime_type": "image/jpeg", "sha256": "x", "new_field": {"nested": [1, 2]}}}
        ],
        "statuses": [{"id": "wamid.s", "status": "read", "timestamp": "1", "recipient_id": "491701234567"}]
      }}
    ]},
    {"id": "2", "changes": [{"field": "messages", "value": {"messages": [
      {"from": "491701234567", "id": "wamid.d", "timestamp": "2", "type": "document", "document": {"id": "43", "filename": "a.pdf"}}
    ]}}]}
  ]
}`

func TestParseMetaMixed(t *testing.T) {
	got, ignored, err := ParseMeta([]byte(mixedPayload), ProviderWhatsAppCloud)
	if err != nil {
		t.Fatal(err)
	}
	// template update + reaction + location + unsupported + one status
	if ignored != 5 {
		t.Errorf("ignored = %d, want 5", ignored)
	}
	if len(got) != 2 {
		t.Fatalf("got %d media, want 2", len(got))
	}
	if got[0].MediaID != "42" || got[0].Timestamp != time.Unix(1744344601, 0).UTC() || got[0].BusinessNumber != "15550783881" || got[0].ProfileName != "A" {
		t.Errorf("image = %+v", got[0])
	}
	if got[1].MediaID != "43" || got[1].Filename != "a.pdf" || got[1].PhoneNumberID != "" || got[1].ProfileName != "" {
		t.Errorf("document = %+v", got[1])
	}
}

func TestParseMetaInvalid(t *testing.T) {
	tests := []struct {
		name string
		body string
		want apperr.Kind
	}{
		{"empty body", ``, apperr.Invalid},
		{"not JSON", `object=whatsapp_business_account`, apperr.Invalid},
		{"truncated", `{"object": "whatsapp_business_account", "entry": [`, apperr.Invalid},
		{"trailing garbage", `{"object": "whatsapp_business_account"} x`, apperr.Invalid},
		{"other object", `{"object": "page", "entry": []}`, apperr.Invalid},
		{"no object", `{"entry": []}`, apperr.Invalid},
		{"entry of wrong type", `{"object": "whatsapp_business_account", "entry": {}}`, apperr.Invalid},
		{"media message without media", `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "wamid.1", "type": "image"}]}}]}]}`, apperr.Invalid},
		{"media without id or url", `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "wamid.1", "type": "audio", "audio": {"mime_type": "audio/ogg"}}]}}]}]}`, apperr.Invalid},
		{"media message without id", `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"type": "audio", "audio": {"id": "1"}}]}}]}]}`, apperr.Invalid},
		{"timestamp not a number", `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "wamid.1", "timestamp": "yesterday", "type": "audio", "audio": {"id": "1"}}]}}]}]}`, apperr.Invalid},
		{"voice of wrong type", `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "wamid.1", "type": "audio", "audio": {"id": "1", "voice": "yes"}}]}}]}]}`, apperr.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ignored, err := ParseMeta([]byte(tt.body), ProviderWhatsAppCloud)
			if apperr.KindOf(err) != tt.want {
				t.Fatalf("err = %v, want kind %s", err, tt.want)
			}
			if got != nil || ignored != 0 {
				t.Errorf("got %v, %d alongside an error", got, ignored)
			}
		})
	}
	if _, _, err := ParseMeta(readFixture(t, "meta_text.json"), ProviderTwilio); apperr.KindOf(err) != apperr.Internal {
		t.Errorf("ParseMeta for twilio: err = %v, want internal", err)
	}
}

func TestParseMetaEmptyPayloads(t *testing.T) {
	for _, body := range []string{
		`{"object": "whatsapp_business_account"}`,
		`{"object": "whatsapp_business_account", "entry": []}`,
		`{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": []}]}`,
	} {
		got, ignored, err := ParseMeta([]byte(body), ProviderWhatsAppCloud)
		if err != nil || len(got) != 0 || ignored != 0 {
			t.Errorf("ParseMeta(%s) = %v, %d, %v; want nothing", body, got, ignored, err)
		}
	}
}

func TestPhone(t *testing.T) {
	tests := map[string]string{
		"16505551234":             "16505551234",
		"+16505551234":            "16505551234",
		"whatsapp:+4915112345678": "4915112345678",
		"+1 (555) 078-3881":       "15550783881",
		"":                        "",
		"US.13491208655302741918": "US.13491208655302741918",
		"whatsapp:US.1349":        "US.1349",
	}
	for in, want := range tests {
		if got := phone(in); got != want {
			t.Errorf("phone(%q) = %q, want %q", in, got, want)
		}
	}
}
