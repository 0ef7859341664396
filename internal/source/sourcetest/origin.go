package sourcetest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// Origin is a plain HTTP origin for url-source tests. It records every
// request it receives, so tests can tell what reached it and with which
// headers.
type Origin struct {
	// URL is the origin's base, "http://127.0.0.1:port".
	URL string

	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]http.Handler
	seen   []Seen
}

// Seen is one request an Origin received.
type Seen struct {
	Method string
	Path   string
	Header http.Header
}

// NewOrigin starts an empty origin; it stops when t ends. Unknown paths
// answer 404.
func NewOrigin(t testing.TB) *Origin {
	t.Helper()
	o := &Origin{routes: map[string]http.Handler{}}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	o.URL = o.srv.URL
	return o
}

// HostPort is the origin's address ("127.0.0.1:port"), for allowlists and
// url_auth rules.
func (o *Origin) HostPort() string { return o.srv.Listener.Addr().String() }

// Handle routes the exact path to h.
func (o *Origin) Handle(path string, h http.Handler) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.routes[path] = h
}

// Serve answers path with c; header lists extra "Name", "value" pairs.
func (o *Origin) Serve(path string, c Content, contentType string, header ...string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Add(header[i], header[i+1])
		}
		if c.Size() >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(c.Size(), 10))
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = io.Copy(w, c.Open())
		}
	}))
}

// Redirect answers path with a 302 to location.
func (o *Origin) Redirect(path, location string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusFound)
	}))
}

// Status answers path with an empty response of the given status.
func (o *Origin) Status(path string, code int) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
	}))
}

// Requests returns what the origin has received so far, oldest first.
func (o *Origin) Requests() []Seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Seen(nil), o.seen...)
}

func (o *Origin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.seen = append(o.seen, Seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	h := o.routes[r.URL.Path]
	o.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h.ServeHTTP(w, r)
}
