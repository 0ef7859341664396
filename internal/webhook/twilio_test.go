package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/apperr"
)

// The published test vector of Twilio's request validation: auth token
// 12345, this URL and these parameters, with the signatures Twilio's Go
// library (twilio/twilio-go client/request_validator_test.go) asserts.
const (
	twilioToken = "12345"
	twilioURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
)

func twilioParams() url.Values {
	return url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
}

func TestVerifyTwilioSignaturePublishedVectors(t *testing.T) {
	tests := []struct {
		name, url, sig string
	}{
		{"documented example", twilioURL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
		// Signed with :443 while the request names no port.
		{"signed with the default https port", twilioURL, "kvajT1Ptam85bY51eRf/AJRuM3w="},
		// The request names a port, Twilio signed without it.
		{"request with a port, signed without", strings.Replace(twilioURL, ".com", ".com:1234", 1), "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
		{"http signed with :80", "http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="},
		{"http with a port, signed with it", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !VerifyTwilioSignature(twilioToken, tt.url, twilioParams(), tt.sig) {
				t.Errorf("published signature %s refused for %s", tt.sig, tt.url)
			}
		})
	}
}

// The same example as it appears on Twilio's current security page, with
// caller +14158675310, signs to GvWf1cFY/Q7PnoempGyD5oXAezc=.
func TestVerifyTwilioSignatureDocsPageVector(t *testing.T) {
	p := twilioParams()
	p.Set("Caller", "+14158675310")
	p.Set("From", "+14158675310")
	if !VerifyTwilioSignature(twilioToken, twilioURL, p, "GvWf1cFY/Q7PnoempGyD5oXAezc=") {
		t.Error("the docs page vector was refused")
	}
}

func TestVerifyTwilioSignatureRefusals(t *testing.T) {
	const good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
	tampered := twilioParams()
	tampered.Set("Digits", "9999")
	extra := twilioParams()
	extra.Set("MediaUrl0", "https://evil.example/x")
	missing := twilioParams()
	missing.Del("Caller")
	tests := []struct {
		name  string
		token string
		url   string
		form  url.Values
		sig   string
	}{
		{"wrong token", "54321", twilioURL, twilioParams(), good},
		{"empty token", "", twilioURL, twilioParams(), good},
		{"tampered parameter", twilioToken, twilioURL, tampered, good},
		{"added parameter", twilioToken, twilioURL, extra, good},
		{"removed parameter", twilioToken, twilioURL, missing, good},
		{"other path", twilioToken, "https://mycompany.com/other.php?foo=1&bar=2", twilioParams(), good},
		{"other query", twilioToken, "https://mycompany.com/myapp.php?foo=1&bar=3", twilioParams(), good},
		{"other scheme", twilioToken, "http://mycompany.com/myapp.php?foo=1&bar=2", twilioParams(), good},
		{"other host", twilioToken, "https://evil.com/myapp.php?foo=1&bar=2", twilioParams(), good},
		{"missing signature", twilioToken, twilioURL, twilioParams(), ""},
		{"not base64", twilioToken, twilioURL, twilioParams(), "WRONG SIGNATURE"},
		{"base64 of the wrong length", twilioToken, twilioURL, twilioParams(), base64.StdEncoding.EncodeToString([]byte("short"))},
		{"hex instead of base64", twilioToken, twilioURL, twilioParams(), "4523981b7e13d5c5137…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if VerifyTwilioSignature(tt.token, tt.url, tt.form, tt.sig) {
				t.Error("accepted")
			}
		})
	}
}

// signTwilio builds the signature independently, following Twilio's docs
// step by step, to check the cases the published vector does not cover.
func signTwilio(token, u string, pairs ...string) string {
	s := u
	for i := 0; i < len(pairs); i += 2 {
		s += pairs[i] + pairs[i+1]
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestVerifyTwilioSignatureWhatsAppForm(t *testing.T) {
	const u = "https://hooks.chatvault.example/v1/webhooks/twilio/tnt_42"
	form := url.Values{
		"MessageSid": {"MM1f0e9c6d7a3b4c5d8e9f0a1b2c3d4e5f"},
		"From":       {"whatsapp:+4915112345678"},
		"Body":       {"Kassenbon und Schaden"},
		"NumMedia":   {"1"},
		"MediaUrl0":  {"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"},
	}
	// Sorted by name, byte order: upper case before lower case.
	sig := signTwilio("tok", u,
		"Body", "Kassenbon und Schaden",
		"From", "whatsapp:+4915112345678",
		"MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
		"MessageSid", "MM1f0e9c6d7a3b4c5d8e9f0a1b2c3d4e5f",
		"NumMedia", "1",
	)
	if !VerifyTwilioSignature("tok", u, form, sig) {
		t.Error("a form signed per Twilio's docs was refused")
	}
	// A repeated parameter is signed once per value, values sorted.
	form["Tag"] = []string{"b", "a"}
	sig = signTwilio("tok", u,
		"Body", "Kassenbon und Schaden",
		"From", "whatsapp:+4915112345678",
		"MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
		"MessageSid", "MM1f0e9c6d7a3b4c5d8e9f0a1b2c3d4e5f",
		"NumMedia", "1",
		"Tag", "a", "Tag", "b",
	)
	if !VerifyTwilioSignature("tok", u, form, sig) {
		t.Error("a repeated parameter was not signed per value")
	}
	// An empty form signs the URL alone.
	if !VerifyTwilioSignature("tok", u, nil, signTwilio("tok", u)) {
		t.Error("an empty form was refused")
	}
}

func TestTwilioURLVariants(t *testing.T) {
	tests := map[string][]string{
		"https://a.example/p?x=1":             {"https://a.example/p?x=1", "https://a.example:443/p?x=1"},
		"https://a.example:8443/p":            {"https://a.example:8443/p", "https://a.example/p"},
		"http://a.example":                    {"http://a.example", "http://a.example:80"},
		"https://u:p@a.example/p":             {"https://u:p@a.example/p", "https://u:p@a.example:443/p"},
		"https://[2001:db8::1]:8443/p":        {"https://[2001:db8::1]:8443/p", "https://[2001:db8::1]/p"},
		"https://[2001:db8::1]/p":             {"https://[2001:db8::1]/p", "https://[2001:db8::1]:443/p"},
		"https://a.example/p?next=http://b:1": {"https://a.example/p?next=http://b:1", "https://a.example:443/p?next=http://b:1"},
		"not a url":                           {"not a url"},
	}
	for in, want := range tests {
		if got := twilioURLVariants(in); !reflect.DeepEqual(got, want) {
			t.Errorf("twilioURLVariants(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTwilioTwoMedia(t *testing.T) {
	form, err := url.ParseQuery(string(readFixture(t, "twilio_two_media.form")))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTwilio(form)
	if err != nil {
		t.Fatal(err)
	}
	base := InboundMedia{
		Provider:       ProviderTwilio,
		MessageID:      "MM1f0e9c6d7a3b4c5d8e9f0a1b2c3d4e5f",
		From:           "4915112345678",
		WaID:           "4915112345678",
		ProfileName:    "Lena Vogel",
		BusinessNumber: "14155238886",
		Caption:        "Kassenbon und Schaden",
	}
	first, second := base, base
	first.Kind, first.MimeType = "image", "image/jpeg"
	first.URL = "https://api.twilio.com/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/MM1f0e9c6d7a3b4c5d8e9f0a1b2c3d4e5f/Media/ME0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	second.Index, second.Kind, second.MimeType = 1, "document", "application/pdf"
	second.URL = "https://api.twilio.com/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/MM1f0e9c6d7a3b4c5d8e9f0a1b2c3d4e5f/Media/ME9f8e7d6c5b4a39281706f5e4d3c2b1a0"
	want := []InboundMedia{first, second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTwilio:\n got %+v\nwant %+v", got, want)
	}
	if !got[0].Timestamp.IsZero() || got[0].PhoneNumberID != "" {
		t.Error("Twilio sends no timestamp or phone number ID")
	}
}

func TestParseTwilioKinds(t *testing.T) {
	tests := map[string]string{
		"audio/ogg":               "audio",
		"audio/ogg; codecs=opus":  "audio",
		"AUDIO/AMR":               "audio",
		"video/mp4":               "video",
		"image/jpeg":              "image",
		"image/webp":              "image",
		"application/pdf":         "document",
		"text/vcard":              "document",
		"":                        "document",
		"garbage/with; broken=\"": "document",
	}
	for ct, want := range tests {
		form := url.Values{"MessageSid": {"MM1"}, "NumMedia": {"1"}, "MediaUrl0": {"https://api.twilio.com/m"}, "MediaContentType0": {ct}}
		got, err := ParseTwilio(form)
		if err != nil {
			t.Fatalf("%q: %v", ct, err)
		}
		if got[0].Kind != want || got[0].Voice {
			t.Errorf("content type %q: kind %q voice %v, want %q and no voice", ct, got[0].Kind, got[0].Voice, want)
		}
	}
}

func TestParseTwilioNoMedia(t *testing.T) {
	for _, n := range []string{"0", ""} {
		form := url.Values{"MessageSid": {"SM1"}, "From": {"whatsapp:+4915112345678"}, "Body": {"hallo"}}
		if n != "" {
			form.Set("NumMedia", n)
		}
		got, err := ParseTwilio(form)
		if err != nil || len(got) != 0 {
			t.Errorf("NumMedia %q: got %v, %v; want nothing", n, got, err)
		}
	}
}

func TestParseTwilioInvalid(t *testing.T) {
	tests := []struct {
		name    string
		form    url.Values
		pointer string
	}{
		{"no MessageSid", url.Values{"NumMedia": {"1"}, "MediaUrl0": {"https://x.example/m"}}, "/MessageSid"},
		{"NumMedia not a number", url.Values{"MessageSid": {"MM1"}, "NumMedia": {"one"}}, "/NumMedia"},
		{"NumMedia negative", url.Values{"MessageSid": {"MM1"}, "NumMedia": {"-1"}}, "/NumMedia"},
		{"NumMedia over 10", url.Values{"MessageSid": {"MM1"}, "NumMedia": {"11"}}, "/NumMedia"},
		{"missing MediaUrl1", url.Values{"MessageSid": {"MM1"}, "NumMedia": {"2"}, "MediaUrl0": {"https://x.example/m"}}, "/MediaUrl1"},
		{"relative MediaUrl0", url.Values{"MessageSid": {"MM1"}, "NumMedia": {"1"}, "MediaUrl0": {"/2010-04-01/Media/ME1"}}, "/MediaUrl0"},
		{"file MediaUrl0", url.Values{"MessageSid": {"MM1"}, "NumMedia": {"1"}, "MediaUrl0": {"file:///etc/passwd"}}, "/MediaUrl0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTwilio(tt.form)
			e, ok := apperr.As(err)
			if !ok || e.Kind != apperr.Invalid || len(e.Fields) != 1 || e.Fields[0].Pointer != tt.pointer {
				t.Fatalf("err = %#v, want invalid at %s", err, tt.pointer)
			}
			if got != nil {
				t.Errorf("got %v alongside an error", got)
			}
		})
	}
}

func TestParseTwilioTenMedia(t *testing.T) {
	form := url.Values{"MessageSid": {"MM1"}, "NumMedia": {"10"}}
	for i := range 10 {
		form.Set("MediaUrl"+string(rune('0'+i)), "https://api.twilio.com/m/"+string(rune('0'+i)))
	}
	got, err := ParseTwilio(form)
	if err != nil || len(got) != 10 {
		t.Fatalf("got %d, %v", len(got), err)
	}
	for i, in := range got {
		if in.Index != i || !strings.HasSuffix(in.URL, "/"+string(rune('0'+i))) {
			t.Errorf("media %d = index %d url %s", i, in.Index, in.URL)
		}
	}
}
