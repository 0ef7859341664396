package webhook

import (
	"context"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/media"
)

func TestArchiveInput(t *testing.T) {
	ts := time.Unix(1739321024, 0).UTC()
	meta := InboundMedia{
		Provider: ProviderWhatsAppCloud, MessageID: "wamid.1", From: "16505551234", WaID: "16505551234",
		Timestamp: ts, Kind: "document", MediaID: "1376223850470843", URL: "https://lookaside.fbsbx.com/x",
		MimeType: "application/pdf", SHA256: "E51US4IbE+vqFPGw/hhXciLkFcKWbjo1EcQZYFUjIgI=", Filename: "a.pdf", Caption: "Signed",
	}
	got := meta.ArchiveInput("wa:16505551234", []string{"invoice"})
	want := media.ArchiveInput{
		CustomerID: "wa:16505551234",
		Kind:       media.KindDocument,
		Source:     media.SourceRequest{Type: "whatsapp_cloud", MediaID: "1376223850470843"},
		Hints:      media.SourceHints{MimeType: "application/pdf", SHA256: "E51US4IbE+vqFPGw/hhXciLkFcKWbjo1EcQZYFUjIgI=", Filename: "a.pdf"},
		Message:    media.Message{ID: "wamid.1", From: "16505551234", Timestamp: ts, Caption: "Signed"},
		Tags:       []string{"invoice"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Meta:\n got %+v\nwant %+v", got, want)
	}

	d360 := meta
	d360.Provider = ProviderDialog360
	if src := d360.ArchiveInput("c", nil).Source; src != (media.SourceRequest{Type: "dialog360", MediaID: "1376223850470843"}) {
		t.Errorf("360dialog source = %+v", src)
	}

	tw := InboundMedia{Provider: ProviderTwilio, MessageID: "MM1", From: "4915112345678", Kind: "image", URL: "https://api.twilio.com/m", MimeType: "image/jpeg"}
	if src := tw.ArchiveInput("c", nil).Source; src != (media.SourceRequest{Type: "twilio", URL: "https://api.twilio.com/m"}) {
		t.Errorf("Twilio source = %+v", src)
	}

	username := InboundMedia{Provider: ProviderWhatsAppCloud, UserID: "US.1", Kind: "image", MediaID: "1"}
	if from := username.ArchiveInput("c", nil).Message.From; from != "US.1" {
		t.Errorf("username-only sender recorded as %q, want the BSUID", from)
	}
}

// TestEndToEnd runs a signed Meta delivery and a Twilio form through
// verification, parsing, mapping and tagging, as a handler would.
func TestEndToEnd(t *testing.T) {
	rules, err := CompileRules([]TagRule{{Tag: "receipt", CaptionContains: []string{"receipt"}}})
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := NewMapper(Mapping{Template: "{provider}:{wa_id}"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	body := readFixture(t, "meta_image_caption.json")
	if !VerifyMetaSignature(testAppSecret, body, signMeta(testAppSecret, body)) {
		t.Fatal("signature refused")
	}
	items, _, err := ParseMeta(body, ProviderWhatsAppCloud)
	if err != nil {
		t.Fatal(err)
	}
	id, err := mapper.CustomerID(context.Background(), items[0])
	if err != nil {
		t.Fatal(err)
	}
	in := items[0].ArchiveInput(id, rules.Tags(items[0]))
	if in.CustomerID != "whatsapp_cloud:16505551234" || !reflect.DeepEqual(in.Tags, []string{"receipt"}) {
		t.Errorf("archive input = %+v", in)
	}

	raw := string(readFixture(t, "twilio_two_media.form"))
	form, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	const hook = "https://hooks.chatvault.example/v1/webhooks/twilio/tnt_42"
	pairs := []string{}
	for _, k := range []string{"AccountSid", "ApiVersion", "Body", "From", "MediaContentType0", "MediaContentType1", "MediaUrl0", "MediaUrl1", "MessageSid", "MessageType", "NumMedia", "NumSegments", "ProfileName", "ReferralNumMedia", "SmsMessageSid", "SmsSid", "SmsStatus", "To", "WaId"} {
		pairs = append(pairs, k, form.Get(k))
	}
	if len(pairs)/2 != len(form) {
		t.Fatalf("the fixture has %d parameters, the list %d", len(form), len(pairs)/2)
	}
	if !VerifyTwilioSignature("tok", hook, form, signTwilio("tok", hook, pairs...)) {
		t.Fatal("Twilio signature refused")
	}
	tw, err := ParseTwilio(form)
	if err != nil {
		t.Fatal(err)
	}
	id, err = mapper.CustomerID(context.Background(), tw[1])
	if err != nil || id != "twilio:4915112345678" {
		t.Errorf("Twilio customer = %q, %v", id, err)
	}
}
