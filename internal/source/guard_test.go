package source

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
)

func TestDeniedReason(t *testing.T) {
	denied := []string{
		"127.0.0.1", "127.255.255.254", "::1",
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "169.254.0.1", "fe80::1", "febf::1",
		"fc00::1", "fd12:3456::1", "fd00:ec2::254",
		"0.0.0.0", "0.1.2.3", "::",
		"100.64.0.1", "100.127.255.255",
		"192.0.0.170", "192.0.0.8",
		"198.18.0.1", "198.19.255.255",
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2",
		"255.255.255.255", "240.0.0.1",
		"192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1",
		// IPv4-mapped, -compatible and -translated forms.
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"::127.0.0.1", "::10.0.0.1", "::ffff:0:7f00:1",
		// NAT64 and 6to4 embedding forbidden IPv4 addresses.
		"64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::10.1.2.3", "64:ff9b:1::1",
		"2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:c0a8:101::",
		"2001::1", "fec0::1", "100::1",
	}
	for _, s := range denied {
		if r := deniedReason(netip.MustParseAddr(s)); r == "" {
			t.Errorf("%s: allowed, want denied", s)
		}
	}
	zoned := netip.MustParseAddr("fe80::1%eth0")
	if deniedReason(zoned) == "" {
		t.Errorf("%s: allowed, want denied", zoned)
	}

	public := []string{
		"8.8.8.8", "1.1.1.1", "93.184.215.14", "157.240.1.1",
		"2606:4700:4700::1111", "2a03:2880:f10d:83:face:b00c:0:25de",
		"::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1",
		"100.63.255.255", "100.128.0.1", "172.32.0.1", "198.20.0.1",
	}
	for _, s := range public {
		if r := deniedReason(netip.MustParseAddr(s)); r != "" {
			t.Errorf("%s: denied as %s, want allowed", s, r)
		}
	}
}

func TestNumericHost(t *testing.T) {
	numeric := []string{"2130706433", "017700000001", "0x7f000001", "0x7f.1", "127.1", "0177.0.0.1", "127.0.0.1.", "example.123", "0x"}
	for _, h := range numeric {
		if !numericHost(h) {
			t.Errorf("%q: not numeric, want numeric", h)
		}
	}
	names := []string{"example.com", "123.example.com", "0x7f.example", "a1", "cdn-1.example.net."}
	for _, h := range names {
		if numericHost(h) {
			t.Errorf("%q: numeric, want a name", h)
		}
	}
}

func TestCheckAllowlist(t *testing.T) {
	good := []string{"cdn.example.com", "CDN.Example.com.", "cdn.example.com:8443", "127.0.0.1:8443", "[::1]:8443", "10.0.0.0/8", "fd00::/8", "10.1.2.3", "::1", "::ffff:10.0.0.0/104"}
	if err := CheckAllowlist(good); err != nil {
		t.Errorf("CheckAllowlist(%q) = %v", good, err)
	}
	for _, bad := range []string{"", "http://cdn.example.com", "10.0.0.0/33", "cdn.example.com:0", "cdn.example.com:99999", "2130706433", "a b", "fe80::1%eth0", "*.example.com"} {
		if err := CheckAllowlist([]string{bad}); err == nil {
			t.Errorf("CheckAllowlist(%q) accepted", bad)
		}
	}

	al := parseAllowlist([]string{"CDN.example.com", "api.example.com:8443", "127.0.0.1:9000", "10.0.0.0/8", "::ffff:192.168.0.0/112", "not valid!"})
	ip := netip.MustParseAddr
	cases := []struct {
		host string
		port uint16
		ip   string
		want bool
	}{
		{"cdn.example.com", 443, "10.9.9.9", true},
		{"cdn.example.com", 8080, "127.0.0.1", true},
		{"other.example.com", 443, "127.0.0.1", false},
		{"api.example.com", 8443, "127.0.0.1", true},
		{"api.example.com", 443, "127.0.0.1", false},
		{"127.0.0.1", 9000, "127.0.0.1", true},
		{"loop.test", 9000, "127.0.0.1", true}, // same destination, any name
		{"127.0.0.1", 9001, "127.0.0.1", false},
		{"evil.test", 80, "10.0.0.1", true},
		{"evil.test", 80, "::ffff:10.0.0.1", true},
		{"x.test", 80, "192.168.3.4", true},
		{"x.test", 80, "192.169.0.1", false},
	}
	for _, c := range cases {
		if got := al.allows(c.host, c.port, ip(c.ip)); got != c.want {
			t.Errorf("allows(%s, %d, %s) = %v, want %v", c.host, c.port, c.ip, got, c.want)
		}
	}
	if al2 := parseAllowlist([]string{"10.0.0.0/8", "api.example.com:8443", "cdn.example.com", "127.0.0.1:9000", "::ffff:192.168.0.0/112"}); al2.key != al.key {
		t.Errorf("equivalent allowlists have keys %q and %q", al.key, al2.key)
	}
}

// TestGuardRefusesHostileURLs throws SSRF classics at the url source. A
// loopback "victim" server that nothing may reach proves refusals happen
// before a connection, not after.
func TestGuardRefusesHostileURLs(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	origin.Serve("/ok", sourcetest.Bytes([]byte("ok")), "text/plain")
	victim := sourcetest.NewOrigin(t)
	victim.Serve("/secret", sourcetest.Bytes([]byte("secret")), "text/plain")
	_, vport, _ := strings.Cut(victim.HostPort(), ":")

	f := newTestFetcher(t, tenants{"t": {Allowlist: []string{origin.HostPort()}}})
	hostile := []string{
		"http://127.0.0.1:" + vport + "/secret",
		"http://127.0.0.1/",
		"http://127.0.0.2:" + vport + "/secret",
		"http://[::1]:" + vport + "/secret",
		"http://[::1]/",
		"http://localhost:" + vport + "/secret",
		"http://LOCALHOST.:" + vport + "/secret",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://10.0.0.1/",
		"http://10.255.255.255:8080/",
		"http://172.16.0.1/",
		"http://192.168.0.1/",
		"http://100.64.0.1/",
		"http://192.0.0.170/",
		"http://198.18.0.1/",
		"http://0.0.0.0:" + vport + "/secret",
		"http://[::]:" + vport + "/secret",
		"http://255.255.255.255/",
		"http://224.0.0.251/",
		"http://[ff02::1]/",
		"http://[fe80::1]/",
		"http://[fe80::1%25lo]:" + vport + "/secret",
		"http://[fc00::1]/",
		"http://[::ffff:127.0.0.1]:" + vport + "/secret",
		"http://[::ffff:7f00:1]:" + vport + "/secret",
		"http://[::ffff:169.254.169.254]/",
		"http://[::127.0.0.1]:" + vport + "/secret",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://[64:ff9b::127.0.0.1]/",
		"http://[2002:7f00:1::]/",
		"http://2130706433:" + vport + "/secret",
		"http://017700000001:" + vport + "/secret",
		"http://0x7f000001:" + vport + "/secret",
		"http://0x7f.0.0.1:" + vport + "/secret",
		"http://127.1:" + vport + "/secret",
		"http://0177.0.0.1:" + vport + "/secret",
		"http://127.000.000.001:" + vport + "/secret",
		"http://evil.test/",
		"http://loop.test:" + vport + "/secret",
		"http://meta.test/latest/meta-data/",
		"http://mixed.test/",
		"http://mapped.test:" + vport + "/secret",
		"http://nat64.test/",
		"https://evil.test/",
		"ftp://example.com/file",
		"file:///etc/passwd",
		"gopher://127.0.0.1:" + vport + "/_secret",
		"dict://127.0.0.1:11211/stat",
		"javascript:alert(1)",
		"http://user:pass@127.0.0.1:" + vport + "/secret",
		"http://example.com@127.0.0.1:" + vport + "/secret",
		"http:///secret",
		"http://:" + vport + "/secret",
		"//127.0.0.1:" + vport + "/secret",
	}
	for _, u := range hostile {
		t.Run(u, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: u})
			e := wantKind(t, err, apperr.Invalid)
			if len(e.Fields) != 1 || e.Fields[0].Pointer != "/source/url" {
				t.Errorf("fields = %+v, want one for /source/url", e.Fields)
			}
		})
	}
	if n := len(victim.Requests()); n != 0 {
		t.Fatalf("victim received %d requests", n)
	}
	// The allowlisted origin itself stays reachable.
	r, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: origin.URL + "/ok"})
	if err != nil {
		t.Fatalf("allowlisted origin: %v", err)
	}
	r.Body.Close()
}

func TestGuardRefusalDetails(t *testing.T) {
	f := newTestFetcher(t, nil)
	cases := map[string]string{
		"http://127.0.0.1/":          "destination not allowed: 127.0.0.1 is a loopback address",
		"http://169.254.169.254/":    "destination not allowed: 169.254.169.254 is the cloud metadata address",
		"http://evil.test/":          "destination not allowed: evil.test resolves to a private address",
		"http://2130706433/":         `destination not allowed: ambiguous numeric host "2130706433"`,
		"file:///etc/passwd":         `destination not allowed: scheme "file" (only http and https)`,
		"http://[64:ff9b::a00:1]/":   "destination not allowed: 64:ff9b::a00:1 is an IPv6 address embedding a private address",
		"http://[::ffff:10.0.0.1]/":  "destination not allowed: ::ffff:10.0.0.1 is a private address",
		"http://u:p@example.com/":    "destination not allowed: URLs with credentials (configure url_auth instead)",
		"http://no-such-host.test/x": "",
	}
	for u, want := range cases {
		_, err := f.Fetch(context.Background(), "nobody", Request{Type: TypeURL, URL: u})
		if want == "" {
			e := wantKind(t, err, apperr.BadGateway)
			wantDetail(t, e, "could not be resolved")
			continue
		}
		e := wantKind(t, err, apperr.Invalid)
		if e.Detail != want {
			t.Errorf("%s: detail %q, want %q", u, e.Detail, want)
		}
		if strings.Contains(e.Detail, "10.0.0.1") && strings.Contains(u, "evil.test") {
			t.Errorf("%s: detail leaks the resolved address: %q", u, e.Detail)
		}
	}
}

func TestGuardRefusesRedirects(t *testing.T) {
	victim := sourcetest.NewOrigin(t)
	victim.Serve("/secret", sourcetest.Bytes([]byte("secret")), "text/plain")
	_, vport, _ := strings.Cut(victim.HostPort(), ":")

	origin := sourcetest.NewOrigin(t)
	_, oport, _ := strings.Cut(origin.HostPort(), ":")
	targets := map[string]string{
		"/to-victim":        victim.URL + "/secret",
		"/to-victim-v6":     "http://[::1]:" + vport + "/secret",
		"/to-victim-mapped": "http://[::ffff:127.0.0.1]:" + vport + "/secret",
		"/to-victim-name":   "http://loop.test:" + vport + "/secret",
		"/to-victim-dec":    "http://2130706433:" + vport + "/secret",
		"/to-metadata":      "http://169.254.169.254/latest/meta-data/",
		"/to-metadata-v6":   "http://[fd00:ec2::254]/latest/meta-data/",
		"/to-private-name":  "http://evil.test/",
		"/to-file":          "file:///etc/passwd",
		"/to-ftp":           "ftp://example.com/x",
		"/to-gopher":        "gopher://127.0.0.1:" + vport + "/_x",
		"/to-relative-evil": "//169.254.169.254/latest/",
		// Two hops: allowed, allowed, then forbidden.
		"/hop1": origin.URL + "/hop2",
		"/hop2": "http://127.0.0.1:" + vport + "/secret",
	}
	for path, to := range targets {
		origin.Redirect(path, to)
	}

	for name, allow := range map[string][]string{
		"host:port": {origin.HostPort()},
		// A host allowlist entry must not extend to whatever the host
		// redirects to, even though it resolves to the same loopback IP.
		"host name": {"origin.test"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newTestFetcher(t, tenants{"t": {Allowlist: allow}})
			base := origin.URL
			if name == "host name" {
				base = "http://origin.test:" + oport
			}
			for path := range targets {
				if path == "/hop2" {
					continue
				}
				_, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: base + path})
				e := wantKind(t, err, apperr.Invalid)
				wantDetail(t, e, "destination not allowed")
			}
		})
	}
	if n := len(victim.Requests()); n != 0 {
		t.Fatalf("victim received %d requests", n)
	}
}

func TestGuardRedirectLimit(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	origin.Serve("/end", sourcetest.Bytes([]byte("end")), "text/plain")
	for i := 1; i <= 6; i++ {
		next := fmt.Sprintf("/r%d", i-1)
		if i == 1 {
			next = "/end"
		}
		origin.Redirect(fmt.Sprintf("/r%d", i), next)
	}
	f := newTestFetcher(t, tenants{"t": {Allowlist: []string{origin.HostPort()}}})

	r, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: origin.URL + "/r5"})
	if err != nil {
		t.Fatalf("5 redirects: %v", err)
	}
	r.Body.Close()
	_, err = f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: origin.URL + "/r6"})
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "redirects")
}

func TestGuardAllowlistForms(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	origin.Serve("/f", sourcetest.Bytes([]byte("hello")), "text/plain")
	_, port, _ := strings.Cut(origin.HostPort(), ":")

	cases := []struct {
		name  string
		allow []string
		url   string
	}{
		{"host:port", []string{origin.HostPort()}, origin.URL + "/f"},
		{"CIDR", []string{"127.0.0.0/8"}, origin.URL + "/f"},
		{"IPv4-mapped CIDR", []string{"::ffff:127.0.0.0/104"}, origin.URL + "/f"},
		{"bare IP", []string{"127.0.0.1"}, origin.URL + "/f"},
		{"host name", []string{"origin.test"}, "http://origin.test:" + port + "/f"},
		{"host name and port", []string{"origin.test:" + port}, "http://ORIGIN.test:" + port + "/f"},
		{"name reaching an allowlisted address", []string{origin.HostPort()}, "http://loop.test:" + port + "/f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newTestFetcher(t, tenants{"t": {Allowlist: c.allow}})
			r, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: c.url})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if n, _ := readAll(t, r); n != 5 {
				t.Errorf("read %d bytes, want 5", n)
			}
		})
	}

	// Entries that do not cover the destination.
	for _, allow := range [][]string{{"127.0.0.1:1"}, {"10.0.0.0/8"}, {"origin.test"}, {"origin.test:" + port}} {
		f := newTestFetcher(t, tenants{"t": {Allowlist: allow}})
		_, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: origin.URL + "/f"})
		wantKind(t, err, apperr.Invalid)
	}
}

// TestGuardPoolsPerAllowlist: a connection opened under one tenant's
// allowlist must not be reused for a tenant without that exception.
func TestGuardPoolsPerAllowlist(t *testing.T) {
	origin := sourcetest.NewOrigin(t)
	origin.Serve("/f", sourcetest.Bytes([]byte("hello")), "text/plain")
	f := newTestFetcher(t, tenants{
		"trusted": {Allowlist: []string{origin.HostPort()}},
		"plain":   {},
	})
	r, err := f.Fetch(context.Background(), "trusted", Request{Type: TypeURL, URL: origin.URL + "/f"})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r) // returns the connection to the pool
	_, err = f.Fetch(context.Background(), "plain", Request{Type: TypeURL, URL: origin.URL + "/f"})
	wantKind(t, err, apperr.Invalid)
	_, err = f.Fetch(context.Background(), "unknown-tenant", Request{Type: TypeURL, URL: origin.URL + "/f"})
	wantKind(t, err, apperr.Invalid)
	if n := len(origin.Requests()); n != 1 {
		t.Fatalf("origin received %d requests, want 1", n)
	}
}

func TestGuardResolverErrors(t *testing.T) {
	calls := 0
	f := New(nil, WithResolver(func(ctx context.Context, host string) ([]netip.Addr, error) {
		calls++
		return nil, nil
	}))
	_, err := f.Fetch(context.Background(), "t", Request{Type: TypeURL, URL: "http://empty.test/"})
	e := wantKind(t, err, apperr.BadGateway)
	wantDetail(t, e, "empty.test")
	if calls != 1 {
		t.Errorf("resolver called %d times, want 1", calls)
	}
}
