package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

var metaSender = InboundMedia{
	Provider:      ProviderWhatsAppCloud,
	From:          "16505551234",
	WaID:          "16505551234",
	PhoneNumberID: "106540352242922",
}

func TestMapperTemplates(t *testing.T) {
	twilio := InboundMedia{Provider: ProviderTwilio, From: "4915112345678", WaID: "4915112345678"}
	username := InboundMedia{Provider: ProviderWhatsAppCloud, UserID: "US.13491208655302741918", PhoneNumberID: "106540352242922"}
	differs := InboundMedia{Provider: ProviderWhatsAppCloud, From: "5215512345678", WaID: "525512345678"}
	tests := []struct {
		name     string
		template string
		in       InboundMedia
		want     string
		wantErr  apperr.Kind
	}{
		{"default", "", metaSender, "wa:16505551234", ""},
		{"phone in E.164", "tel:{phone}", metaSender, "tel:+16505551234", ""},
		{"provider and wa_id", "{provider}:{wa_id}", twilio, "twilio:4915112345678", ""},
		{"per business number", "wa-{phone_number_id}-{wa_id}", metaSender, "wa-106540352242922-16505551234", ""},
		{"email-like", "{wa_id}@whatsapp", metaSender, "16505551234@whatsapp", ""},
		{"BSUID", "bsuid:{user_id}", username, "bsuid:US.13491208655302741918", ""},
		{"wa_id keys on the WhatsApp ID when it differs", "{wa_id}", differs, "525512345678", ""},
		{"phone keys on the number when it differs", "tel:{phone}", differs, "tel:+5215512345678", ""},
		{"wa_id falls back to From", "{wa_id}", InboundMedia{From: "123"}, "123", ""},
		{"no wa_id for a username-only sender", "", username, "", apperr.Invalid},
		{"no phone for a username-only sender", "tel:{phone}", username, "", apperr.Invalid},
		{"no phone number ID from Twilio", "{phone_number_id}:{wa_id}", twilio, "", apperr.Invalid},
		{"no BSUID from Twilio", "{user_id}", twilio, "", apperr.Invalid},
		{"non-phone sender has no {phone}", "tel:{phone}", InboundMedia{From: "US.1"}, "", apperr.Invalid},
		{"result too long", strings.Repeat("x", 100) + "{wa_id}", InboundMedia{WaID: strings.Repeat("1", 29)}, "", apperr.Invalid},
		{"result at the limit", strings.Repeat("x", 100) + "{wa_id}", InboundMedia{WaID: strings.Repeat("1", 28)}, strings.Repeat("x", 100) + strings.Repeat("1", 28), ""},
		{"invalid character from the payload", "{wa_id}", InboundMedia{WaID: "1 2"}, "", apperr.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMapper(Mapping{Template: tt.template}, nil)
			if err != nil {
				t.Fatalf("NewMapper: %v", err)
			}
			got, err := m.CustomerID(context.Background(), tt.in)
			if tt.wantErr != "" {
				if apperr.KindOf(err) != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("CustomerID() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNewMapperRefuses(t *testing.T) {
	client := http.DefaultClient
	tests := []struct {
		name    string
		m       Mapping
		client  Doer
		pointer string
	}{
		{"unknown placeholder", Mapping{Template: "wa:{waid}"}, nil, "/template"},
		{"unclosed brace", Mapping{Template: "wa:{wa_id"}, nil, "/template"},
		{"stray closing brace", Mapping{Template: "wa:}{wa_id}"}, nil, "/template"},
		{"no sender placeholder", Mapping{Template: "{provider}-{phone_number_id}"}, nil, "/template"},
		{"constant", Mapping{Template: "everyone"}, nil, "/template"},
		{"space in literal", Mapping{Template: "wa {wa_id}"}, nil, "/template"},
		{"slash in literal", Mapping{Template: "wa/{wa_id}"}, nil, "/template"},
		{"starts with {phone}, so with +", Mapping{Template: "{phone}"}, nil, "/template"},
		{"starts with a dash", Mapping{Template: "-{wa_id}"}, nil, "/template"},
		{"template too long", Mapping{Template: strings.Repeat("a", 125) + "{wa_id}"}, nil, "/template"},
		{"relative lookup URL", Mapping{LookupURL: "/customers"}, client, "/lookup_url"},
		{"ftp lookup URL", Mapping{LookupURL: "ftp://crm.example/x"}, client, "/lookup_url"},
		{"credentials in lookup URL", Mapping{LookupURL: "https://u:p@crm.example/x"}, client, "/lookup_url"},
		{"fragment in lookup URL", Mapping{LookupURL: "https://crm.example/x#y"}, client, "/lookup_url"},
		{"header without URL", Mapping{LookupHeader: "X-Api-Key", LookupValue: "k"}, nil, "/lookup_header"},
		{"value without header", Mapping{LookupURL: "https://crm.example/x", LookupValue: "k"}, client, "/lookup_header"},
		{"bad header name", Mapping{LookupURL: "https://crm.example/x", LookupHeader: "X Api Key", LookupValue: "k"}, client, "/lookup_header"},
		{"header value with CRLF", Mapping{LookupURL: "https://crm.example/x", LookupHeader: "X-Api-Key", LookupValue: "k\r\nX-Evil: 1"}, client, "/lookup_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMapper(tt.m, tt.client)
			e, ok := apperr.As(err)
			if !ok || e.Kind != apperr.Invalid || len(e.Fields) != 1 || e.Fields[0].Pointer != tt.pointer {
				t.Fatalf("err = %#v, want invalid at %s", err, tt.pointer)
			}
		})
	}
	if _, err := NewMapper(Mapping{LookupURL: "https://crm.example/x"}, nil); apperr.KindOf(err) != apperr.Internal {
		t.Errorf("lookup without a client: err = %v, want internal", err)
	}
}

// crm is a stand-in CRM lookup endpoint that records what it was asked.
type crm struct {
	mu      sync.Mutex
	queries []url.Values
	headers []http.Header
	handler func(w http.ResponseWriter, r *http.Request)
}

func (c *crm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.queries = append(c.queries, r.URL.Query())
	c.headers = append(c.headers, r.Header.Clone())
	c.mu.Unlock()
	c.handler(w, r)
}

func newCRM(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) (*crm, *httptest.Server) {
	t.Helper()
	c := &crm{handler: h}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv
}

func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestMapperLookup(t *testing.T) {
	tests := []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request)
		want    string
		wantErr apperr.Kind
	}{
		{"200 answers", answer(200, `{"customer_id":"hubspot:90210","extra":{"ignored":true}}`), "hubspot:90210", ""},
		{"404 falls back to the template", answer(404, `{"error":"not found"}`), "wa:16505551234", ""},
		{"500 is unavailable", answer(500, `oops`), "", apperr.Unavailable},
		{"429 is unavailable", answer(429, ``), "", apperr.Unavailable},
		{"401 is unavailable", answer(401, ``), "", apperr.Unavailable},
		{"200 with an invalid id", answer(200, `{"customer_id":"hubspot 90210"}`), "", apperr.Invalid},
		{"200 with a leading dash", answer(200, `{"customer_id":"-1"}`), "", apperr.Invalid},
		{"200 with an empty id", answer(200, `{"customer_id":""}`), "", apperr.Invalid},
		{"200 without the field", answer(200, `{}`), "", apperr.Invalid},
		{"200 with a too long id", answer(200, `{"customer_id":"`+strings.Repeat("a", 129)+`"}`), "", apperr.Invalid},
		{"200 that is not JSON", answer(200, `<html>`), "", apperr.Unavailable},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
		}, "", apperr.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newCRM(t, tt.handler)
			m, err := NewMapper(Mapping{LookupURL: srv.URL + "/lookup"}, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.CustomerID(context.Background(), metaSender)
			if tt.wantErr != "" {
				if apperr.KindOf(err) != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("CustomerID() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMapperLookupRequest(t *testing.T) {
	c, srv := newCRM(t, answer(200, `{"customer_id":"cust_4821"}`))
	m, err := NewMapper(Mapping{
		LookupURL:    srv.URL + "/lookup?tenant=acme",
		LookupHeader: "X-Api-Key",
		LookupValue:  "k-123",
	}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CustomerID(context.Background(), metaSender); err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"tenant":          {"acme"},
		"wa_id":           {"16505551234"},
		"phone":           {"+16505551234"},
		"phone_number_id": {"106540352242922"},
		"provider":        {"whatsapp_cloud"},
	}
	if got := c.queries[0]; got.Encode() != want.Encode() {
		t.Errorf("query = %s, want %s", got.Encode(), want.Encode())
	}
	if got := c.headers[0].Get("X-Api-Key"); got != "k-123" {
		t.Errorf("X-Api-Key = %q", got)
	}

	// A username-only sender is looked up by BSUID; absent values are not sent.
	if _, err := m.CustomerID(context.Background(), InboundMedia{Provider: ProviderWhatsAppCloud, UserID: "US.1"}); err != nil {
		t.Fatal(err)
	}
	if got := c.queries[1].Encode(); got != "provider=whatsapp_cloud&tenant=acme&user_id=US.1" {
		t.Errorf("query = %s", got)
	}
}

func TestMapperLookupDoesNotFollowRedirectWithHeader(t *testing.T) {
	target, tsrv := newCRM(t, answer(200, `{"customer_id":"stolen"}`))
	_, srv := newCRM(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, tsrv.URL+"/steal", http.StatusTemporaryRedirect)
	})
	m, err := NewMapper(Mapping{LookupURL: srv.URL, LookupHeader: "X-Api-Key", LookupValue: "secret"}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CustomerID(context.Background(), metaSender); apperr.KindOf(err) != apperr.Unavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if len(target.queries) != 0 {
		t.Error("the redirect was followed and the key sent on")
	}
}

func TestMapperLookupTimeout(t *testing.T) {
	release := make(chan struct{})
	_, srv := newCRM(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	m, err := NewMapper(Mapping{LookupURL: srv.URL}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if m.timeout != LookupTimeout || LookupTimeout != 5*time.Second {
		t.Fatalf("timeout = %s, want 5s", m.timeout)
	}
	m.timeout = 50 * time.Millisecond // the 5 s bound, shortened for the test
	start := time.Now()
	_, err = m.CustomerID(context.Background(), metaSender)
	if apperr.KindOf(err) != apperr.Unavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want unavailable from the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestMapperLookupConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	m, err := NewMapper(Mapping{LookupURL: u}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CustomerID(context.Background(), metaSender); apperr.KindOf(err) != apperr.Unavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
}

func TestMapperLookupRetryAfter(t *testing.T) {
	_, srv := newCRM(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	m, err := NewMapper(Mapping{LookupURL: srv.URL}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.CustomerID(context.Background(), metaSender)
	e, ok := apperr.As(err)
	if !ok || e.Kind != apperr.Unavailable || e.RetryAfter != 30*time.Second {
		t.Fatalf("err = %#v, want unavailable with a 30s retry", err)
	}
}

// doerFunc adapts a function to Doer, as a caller's own guarded client might.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func TestMapperLookupAnyDoer(t *testing.T) {
	var seen *http.Request
	m, err := NewMapper(Mapping{LookupURL: "https://crm.example/lookup"}, doerFunc(func(r *http.Request) (*http.Response, error) {
		seen = r
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"customer_id":"c-1"}`)), Header: http.Header{}}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.CustomerID(context.Background(), metaSender)
	if err != nil || got != "c-1" {
		t.Fatalf("CustomerID() = %q, %v", got, err)
	}
	if seen.Method != http.MethodGet || seen.Host != "crm.example" || seen.Header.Get("Accept") != "application/json" {
		t.Errorf("request = %s %s %v", seen.Method, seen.URL, seen.Header)
	}
	if _, ok := seen.Context().Deadline(); !ok {
		t.Error("the lookup request has no deadline")
	}
}

func TestMapperLookupConcurrent(t *testing.T) {
	_, srv := newCRM(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"customer_id":"c-`+r.URL.Query().Get("wa_id")+`"}`)
	})
	m, err := NewMapper(Mapping{LookupURL: srv.URL}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := strings.Repeat("1", i+1)
			got, err := m.CustomerID(context.Background(), InboundMedia{WaID: id})
			if err != nil || got != "c-"+id {
				t.Errorf("CustomerID(%s) = %q, %v", id, got, err)
			}
		}()
	}
	wg.Wait()
}
