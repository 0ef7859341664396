package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"mime"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/chatvault/chatvault/internal/apperr"
)

// VerifyTwilioSignature reports whether signature (the X-Twilio-Signature
// value) is Twilio's signature of the request: base64 of HMAC-SHA1 keyed with
// authToken over fullURL followed by every POST parameter, sorted by name,
// each written as name then value (a repeated name once per value, values
// sorted, as Twilio's own libraries do).
//
// fullURL is the URL Twilio was configured to call, query string included,
// as Twilio sees it (scheme and host of the public address, not of the
// reverse proxy in front of chatvault). form holds the POST body parameters
// only (http.Request.PostForm, not Form: query parameters are already part
// of the URL). Like Twilio's libraries, the URL is also tried without its
// port and, when it has none, with the scheme's default port, because Twilio
// does not sign those consistently.
//
// An empty token or signature, or a signature that is not base64 of 20
// bytes, is false.
func VerifyTwilioSignature(authToken, fullURL string, form url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(want) != sha1.Size {
		return false
	}
	params := twilioParamString(form)
	ok := false
	for _, u := range twilioURLVariants(fullURL) {
		mac := hmac.New(sha1.New, []byte(authToken))
		mac.Write([]byte(u))
		mac.Write([]byte(params))
		// Every variant is checked, so the time taken does not say which
		// variant, if any, matched.
		if hmac.Equal(mac.Sum(nil), want) {
			ok = true
		}
	}
	return ok
}

func twilioParamString(form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	return b.String()
}

// twilioURLVariants returns u, then u without its port if it has one, or
// with the scheme's default port if it has none. The host is edited as
// text so the rest of the URL keeps exactly the bytes Twilio signed
// (re-serialising a parsed URL may re-escape the query).
func twilioURLVariants(u string) []string {
	out := []string{u}
	i := strings.Index(u, "://")
	if i < 0 {
		return out
	}
	scheme := strings.ToLower(u[:i])
	start := i + 3
	end := len(u)
	if j := strings.IndexAny(u[start:], "/?#"); j >= 0 {
		end = start + j
	}
	authority := u[start:end]
	hostStart := start + strings.LastIndex(authority, "@") + 1
	hostport := u[hostStart:end]
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		// An IPv6 literal: the port, if any, follows the closing bracket.
		if k := strings.Index(hostport, "]"); k >= 0 {
			host = hostport[:k+1]
			if rest := hostport[k+1:]; strings.HasPrefix(rest, ":") {
				port = rest[1:]
			}
		}
	} else if k := strings.LastIndex(hostport, ":"); k >= 0 {
		host, port = hostport[:k], hostport[k+1:]
	}
	if host == "" {
		return out
	}
	switch {
	case port != "":
		out = append(out, u[:hostStart]+host+u[end:])
	case scheme == "https":
		out = append(out, u[:hostStart]+host+":443"+u[end:])
	case scheme == "http":
		out = append(out, u[:hostStart]+host+":80"+u[end:])
	}
	return out
}

// maxTwilioMedia is the most media Twilio attaches to one message.
const maxTwilioMedia = 10

// ParseTwilio reads the form of a Twilio inbound WhatsApp message webhook
// and returns one InboundMedia per MediaUrlN (N from 0 to NumMedia-1). A
// message without media (NumMedia 0 or absent) yields none and no error.
// A missing MessageSid, a NumMedia that is not 0…10, or a missing or
// non-HTTP(S) MediaUrlN is apperr.Invalid.
//
// Kind comes from MediaContentTypeN: audio/*, video/*, image/* (image/webp
// included: Twilio does not say whether an image is a sticker), anything
// else is a document. Voice is never set, as Twilio does not tell a voice
// note from an audio file.
func ParseTwilio(form url.Values) ([]InboundMedia, error) {
	sid := form.Get("MessageSid")
	if sid == "" {
		return nil, apperr.WithFields("not a Twilio message webhook", apperr.FieldError{Pointer: "/MessageSid", Detail: "is required"})
	}
	n := 0
	if s := form.Get("NumMedia"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > maxTwilioMedia {
			return nil, apperr.WithFields("invalid Twilio webhook", apperr.FieldError{Pointer: "/NumMedia", Detail: "must be a whole number from 0 to 10"})
		}
		n = v
	}
	if n == 0 {
		return nil, nil
	}
	from := phone(form.Get("From"))
	base := InboundMedia{
		Provider:       ProviderTwilio,
		MessageID:      sid,
		From:           from,
		WaID:           phone(form.Get("WaId")),
		ProfileName:    form.Get("ProfileName"),
		BusinessNumber: phone(form.Get("To")),
		Caption:        form.Get("Body"),
	}
	out := make([]InboundMedia, 0, n)
	for i := range n {
		key := "MediaUrl" + strconv.Itoa(i)
		raw := form.Get(key)
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, apperr.WithFields("invalid Twilio webhook", apperr.FieldError{Pointer: "/" + key, Detail: "must be an http(s) URL"})
		}
		ct := form.Get("MediaContentType" + strconv.Itoa(i))
		in := base
		in.Index = i
		in.URL = raw
		in.MimeType = ct
		in.Kind = kindOfContentType(ct)
		out = append(out, in)
	}
	return out, nil
}

func kindOfContentType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	switch {
	case strings.HasPrefix(mt, "audio/"):
		return "audio"
	case strings.HasPrefix(mt, "video/"):
		return "video"
	case strings.HasPrefix(mt, "image/"):
		return "image"
	default:
		return "document"
	}
}
