package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

// Doer sends an HTTP request. The caller injects an SSRF-guarded client: the
// lookup URL is tenant configuration, so it must not reach internal
// addresses the tenant could not reach itself.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// DefaultTemplate maps a sender to "wa:<wa_id>" when a tenant sets no
// template.
const DefaultTemplate = "wa:{wa_id}"

// LookupTimeout bounds one CRM lookup, so a slow CRM delays a queued job
// instead of holding a worker indefinitely.
const LookupTimeout = 5 * time.Second

// MaxCustomerIDLen is the longest customer ID the API accepts.
const MaxCustomerIDLen = 128

// maxLookupBody bounds the lookup answer read into memory; a customer ID
// answer is a few dozen bytes.
const maxLookupBody = 64 << 10

// customerIDPattern is the API's customer_id pattern (schemas/customer-id.json).
var customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@+\-]*$`)

// Mapping is a tenant's rule for turning a WhatsApp sender into a CRM
// customer ID.
type Mapping struct {
	// Template builds the ID from placeholders: {wa_id} (WhatsApp ID),
	// {phone} (E.164 with "+"), {user_id} (Meta's business-scoped user ID),
	// {phone_number_id} (the business number's Meta ID) and {provider}.
	// "" means DefaultTemplate. It must name at least one of {wa_id},
	// {phone} or {user_id}: a template without the sender would file every
	// customer's media under one ID.
	Template string
	// LookupURL, if set, is asked first: GET LookupURL?wa_id=…&phone=…&
	// provider=… (plus user_id and phone_number_id when known; empty values
	// are left out). 200 {"customer_id":"…"} is the answer; 404 falls back
	// to Template.
	LookupURL string
	// LookupHeader: LookupValue is sent with every lookup, for the CRM's
	// authentication.
	LookupHeader, LookupValue string
}

// Mapper applies one Mapping. It caches nothing, so a CRM change takes
// effect on the next message, and is safe for concurrent use.
type Mapper struct {
	parts   []templatePart
	lookup  *url.URL
	header  string
	value   string
	client  Doer
	timeout time.Duration
}

type templatePart struct {
	literal     string
	placeholder string // "" for a literal
}

var placeholders = map[string]bool{"wa_id": true, "phone": true, "user_id": true, "phone_number_id": true, "provider": true}

// NewMapper validates m and returns its Mapper. client is required when
// m.LookupURL is set. A *http.Client is copied and set never to follow
// redirects: a redirect would carry the lookup's auth header to wherever the
// CRM points, and Go forwards custom headers across hosts.
func NewMapper(m Mapping, client Doer) (*Mapper, error) {
	tmpl := m.Template
	if tmpl == "" {
		tmpl = DefaultTemplate
	}
	parts, err := parseTemplate(tmpl)
	if err != nil {
		return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/template", Detail: err.Error()})
	}
	mp := &Mapper{parts: parts, timeout: LookupTimeout}
	if m.LookupURL == "" {
		if m.LookupHeader != "" || m.LookupValue != "" {
			return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/lookup_header", Detail: "a lookup header needs a lookup URL"})
		}
		return mp, nil
	}
	u, err := url.Parse(m.LookupURL)
	switch {
	case err != nil, u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/lookup_url", Detail: "must be an absolute http(s) URL"})
	case u.User != nil:
		return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/lookup_url", Detail: "must not carry credentials; use the lookup header"})
	case u.Fragment != "":
		return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/lookup_url", Detail: "must not have a fragment"})
	}
	if m.LookupValue != "" && m.LookupHeader == "" {
		return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/lookup_header", Detail: "a lookup value needs a header name"})
	}
	if m.LookupHeader != "" && !validHeaderName(m.LookupHeader) {
		return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/lookup_header", Detail: "is not a valid HTTP header name"})
	}
	if strings.ContainsAny(m.LookupValue, "\r\n\x00") {
		return nil, apperr.WithFields("invalid customer mapping", apperr.FieldError{Pointer: "/lookup_value", Detail: "must not contain line breaks"})
	}
	if client == nil {
		return nil, apperr.New(apperr.Internal, "a customer lookup needs an HTTP client")
	}
	if hc, ok := client.(*http.Client); ok {
		c := *hc
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		client = &c
	}
	mp.lookup, mp.header, mp.value, mp.client = u, m.LookupHeader, m.LookupValue, client
	return mp, nil
}

func parseTemplate(t string) ([]templatePart, error) {
	if len(t) > MaxCustomerIDLen {
		return nil, fmt.Errorf("is longer than %d characters", MaxCustomerIDLen)
	}
	var parts []templatePart
	hasSender := false
	for rest := t; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			open = len(rest)
		}
		if lit := rest[:open]; lit != "" {
			for i := 0; i < len(lit); i++ {
				if !isCustomerIDChar(lit[i]) {
					return nil, fmt.Errorf("character %q is not allowed in a customer ID", lit[i])
				}
			}
			parts = append(parts, templatePart{literal: lit})
		}
		if open == len(rest) {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, errors.New("has a { without a closing }")
		}
		name := rest[open+1 : open+end]
		if !placeholders[name] {
			return nil, fmt.Errorf("unknown placeholder {%s}; use {wa_id}, {phone}, {user_id}, {phone_number_id} or {provider}", name)
		}
		hasSender = hasSender || name == "wa_id" || name == "phone" || name == "user_id"
		parts = append(parts, templatePart{placeholder: name})
		rest = rest[open+end+1:]
	}
	if !hasSender {
		return nil, errors.New("must contain {wa_id}, {phone} or {user_id}, or every customer would share one ID")
	}
	// A customer ID starts with a letter or digit; {phone} starts with "+",
	// so a template opening with it could never produce a valid ID.
	if first := parts[0]; first.placeholder == "phone" || first.placeholder == "" && !isAlnum(first.literal[0]) {
		return nil, errors.New("must start with a letter, a digit or a placeholder other than {phone} (try \"tel:{phone}\")")
	}
	return parts, nil
}

func isAlnum(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

func isCustomerIDChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '_' || b == '.' || b == ':' || b == '@' || b == '+' || b == '-'
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// CustomerID returns the customer ID for the sender of in: the CRM lookup's
// answer if a lookup is configured and knows the sender, else the template.
// An ID that does not fit the API's customer_id rules, or a template
// placeholder the message has no value for, is apperr.Invalid (retrying will
// not help). A lookup that fails, times out or answers other than 200 or 404
// is apperr.Unavailable, so the queue retries later.
func (m *Mapper) CustomerID(ctx context.Context, in InboundMedia) (string, error) {
	if m.lookup != nil {
		id, found, err := m.lookupID(ctx, in)
		if err != nil {
			return "", err
		}
		if found {
			if err := checkCustomerID(id); err != nil {
				return "", apperr.New(apperr.Invalid, "the customer lookup answered an invalid customer_id: %s", err)
			}
			return id, nil
		}
	}
	id, err := m.expand(in)
	if err != nil {
		return "", err
	}
	if err := checkCustomerID(id); err != nil {
		return "", apperr.New(apperr.Invalid, "the customer ID template produced %q, which %s", id, err)
	}
	return id, nil
}

func checkCustomerID(id string) error {
	switch {
	case id == "":
		return errors.New("is empty")
	case len(id) > MaxCustomerIDLen:
		return fmt.Errorf("is longer than %d characters", MaxCustomerIDLen)
	case !customerIDPattern.MatchString(id):
		return errors.New("must start with a letter or digit and contain only letters, digits and _ . : @ + -")
	}
	return nil
}

func (m *Mapper) expand(in InboundMedia) (string, error) {
	var b strings.Builder
	for _, p := range m.parts {
		if p.placeholder == "" {
			b.WriteString(p.literal)
			continue
		}
		v := placeholderValue(p.placeholder, in)
		if v == "" {
			// An empty value would silently merge different customers
			// (every username-only sender would become "wa:").
			return "", apperr.New(apperr.Invalid, "the message carries no {%s} for the customer ID template", p.placeholder)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func placeholderValue(name string, in InboundMedia) string {
	switch name {
	case "wa_id":
		return firstNonEmpty(in.WaID, in.From)
	case "phone":
		if p := firstNonEmpty(in.From, in.WaID); isDigits(p) {
			return "+" + p
		}
	case "user_id":
		return in.UserID
	case "phone_number_id":
		return in.PhoneNumberID
	case "provider":
		return in.Provider
	}
	return ""
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (m *Mapper) lookupID(ctx context.Context, in InboundMedia) (id string, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	u := *m.lookup
	q := u.Query()
	for _, name := range []string{"wa_id", "phone", "user_id", "phone_number_id", "provider"} {
		if v := placeholderValue(name, in); v != "" {
			q.Set(name, v)
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", false, apperr.Wrap(apperr.Internal, err, "building the customer lookup request")
	}
	req.Header.Set("Accept", "application/json")
	if m.header != "" {
		req.Header.Set(m.header, m.value)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", false, apperr.Wrap(apperr.Unavailable, err, "the customer lookup did not answer within %s", m.timeout)
		}
		return "", false, apperr.Wrap(apperr.Unavailable, err, "the customer lookup failed")
	}
	defer func() {
		// Drain a little so the connection can be reused, never a lot.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxLookupBody))
		resp.Body.Close()
	}()
	switch resp.StatusCode {
	case http.StatusOK:
		var body struct {
			CustomerID string `json:"customer_id"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxLookupBody)).Decode(&body); err != nil {
			return "", false, apperr.Wrap(apperr.Unavailable, err, "the customer lookup answered 200 without a JSON customer_id")
		}
		return body.CustomerID, true, nil
	case http.StatusNotFound:
		return "", false, nil
	default:
		e := apperr.New(apperr.Unavailable, "the customer lookup answered HTTP %d", resp.StatusCode)
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
		return "", false, e
	}
}

// retryAfter reads a Retry-After in seconds, the form CRMs use when they
// throttle; an HTTP date or garbage gives 0 and the queue's own backoff.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
