package source

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// deniedRange is an address range no upstream fetch may reach unless a
// tenant allowlists it: these are where internal services, cloud metadata
// endpoints and other people's networks live.
type deniedRange struct {
	prefix netip.Prefix
	what   string
}

// deniedRanges is checked in order, so the more specific and more alarming
// descriptions come first. Loopback, RFC 1918, fc00::/7, link-local and
// multicast are caught by netip's predicates in deniedReason.
var deniedRanges = func() []deniedRange {
	rs := []struct{ cidr, what string }{
		{"169.254.169.254/32", "the cloud metadata address"},
		{"fd00:ec2::254/128", "the cloud metadata address"},
		{"0.0.0.0/8", `a "this network" address`},
		{"100.64.0.0/10", "a carrier-grade NAT address"},
		{"192.0.0.0/24", "an IETF protocol assignment address"},
		{"192.0.2.0/24", "a documentation address"},
		{"192.88.99.0/24", "a 6to4 relay anycast address"},
		{"198.18.0.0/15", "a benchmarking address"},
		{"198.51.100.0/24", "a documentation address"},
		{"203.0.113.0/24", "a documentation address"},
		{"255.255.255.255/32", "the broadcast address"},
		{"240.0.0.0/4", "a reserved address"},
		// IPv4-compatible (deprecated) and IPv4-translated forms: never
		// routable on the internet, only ever a way to smuggle an IPv4 address.
		{"::/96", "an IPv4-compatible IPv6 address"},
		{"::ffff:0:0:0/96", "an IPv4-translated IPv6 address"},
		{"64:ff9b:1::/48", "a local-use NAT64 address"},
		{"100::/64", "a discard-only address"},
		{"2001::/32", "a Teredo address"},
		{"2001:2::/48", "a benchmarking address"},
		{"2001:db8::/32", "a documentation address"},
		{"3fff::/20", "a documentation address"},
		{"fec0::/10", "a site-local address"},
	}
	out := make([]deniedRange, len(rs))
	for i, r := range rs {
		out[i] = deniedRange{netip.MustParsePrefix(r.cidr), r.what}
	}
	return out
}()

var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	errNoAddress = errors.New("host has no address")
)

// deniedReason says why a is not a public destination, or "" if it is.
func deniedReason(a netip.Addr) string {
	if !a.IsValid() {
		return "an invalid address"
	}
	if a.Zone() != "" {
		// Only link-local addresses carry zones; a zone would also make
		// every prefix check below silently fail.
		return "a scoped IPv6 address"
	}
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	}
	for _, r := range deniedRanges {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	switch {
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsMulticast():
		return "a multicast address"
	case !a.IsGlobalUnicast():
		return "not a unicast address"
	}
	// Translation prefixes carry an IPv4 address that a gateway will dial
	// for us; it must pass the same checks.
	if v4, ok := embeddedIPv4(a); ok {
		if r := deniedReason(v4); r != "" {
			return "an IPv6 address embedding " + r
		}
	}
	return ""
}

func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// allowlist is a tenant's parsed exceptions to deniedReason. Host names are
// matched against the host actually being dialled on each hop, never the
// first URL of a redirect chain, so allowing a host cannot be stretched to
// wherever that host redirects.
type allowlist struct {
	names     map[string]bool // host name, any port
	namePorts map[string]bool // "host:port"
	addrPorts map[netip.AddrPort]bool
	prefixes  []netip.Prefix
	key       string // canonical form, identifies the connection pool
}

// AllowlistEntryError reports an allowlist entry that parses as nothing.
type AllowlistEntryError struct{ Entry string }

func (e *AllowlistEntryError) Error() string {
	return fmt.Sprintf("allowlist entry %q is not a host, host:port, IP address or CIDR prefix", e.Entry)
}

// CheckAllowlist reports the first entry that is not a host name,
// "host:port", IP address or CIDR prefix, for configuration validation.
// Fetch ignores such entries.
func CheckAllowlist(entries []string) error {
	for _, e := range entries {
		if _, ok := parseAllowEntry(e); !ok {
			return &AllowlistEntryError{Entry: e}
		}
	}
	return nil
}

type allowEntry struct {
	name     string // host name, lower case, no trailing dot
	port     uint16 // 0: any
	addrPort netip.AddrPort
	prefix   netip.Prefix
}

func parseAllowEntry(s string) (allowEntry, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return allowEntry{}, false
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return allowEntry{}, false
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return allowEntry{prefix: p.Masked()}, true
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return allowEntry{prefix: netip.PrefixFrom(a, a.BitLen())}, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" && ap.Port() != 0 {
		return allowEntry{addrPort: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, true
	}
	name, port := s, uint16(0)
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return allowEntry{}, false
		}
		name, port = h, uint16(n)
	}
	name = strings.TrimSuffix(name, ".")
	if !validHostName(name) || numericHost(name) {
		return allowEntry{}, false
	}
	return allowEntry{name: name, port: port}, true
}

func parseAllowlist(entries []string) *allowlist {
	al := &allowlist{names: map[string]bool{}, namePorts: map[string]bool{}, addrPorts: map[netip.AddrPort]bool{}}
	var keys []string
	for _, s := range entries {
		e, ok := parseAllowEntry(s)
		if !ok {
			continue
		}
		switch {
		case e.prefix.IsValid():
			al.prefixes = append(al.prefixes, e.prefix)
			keys = append(keys, e.prefix.String())
		case e.addrPort.IsValid():
			al.addrPorts[e.addrPort] = true
			keys = append(keys, e.addrPort.String())
		case e.port != 0:
			hp := net.JoinHostPort(e.name, strconv.Itoa(int(e.port)))
			al.namePorts[hp] = true
			keys = append(keys, hp)
		default:
			al.names[e.name] = true
			keys = append(keys, e.name)
		}
	}
	slices.Sort(keys)
	al.key = strings.Join(slices.Compact(keys), ",")
	return al
}

// with returns a copy of al that also allows extra.
func (al *allowlist) with(extra string) *allowlist {
	keys := strings.Split(al.key, ",")
	if al.key == "" {
		keys = nil
	}
	return parseAllowlist(append(keys, extra))
}

// allows reports whether dialling ip:port for host is an allowlisted
// exception. host is the URL host being dialled, lower case.
func (al *allowlist) allows(host string, port uint16, ip netip.Addr) bool {
	ip = ip.Unmap()
	if al.names[host] || al.namePorts[net.JoinHostPort(host, strconv.Itoa(int(port)))] {
		return true
	}
	if al.addrPorts[netip.AddrPortFrom(ip, port)] {
		return true
	}
	for _, p := range al.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// numericHost reports whether a host that is not a canonical IP literal
// would still be read as an IPv4 address by some parser: WHATWG URL parsing
// and inet_aton take "2130706433", "0x7f.1", "0177.0.0.1" or "127.1" as
// 127.0.0.1. Such hosts are refused outright rather than guessed at.
func numericHost(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") || strings.HasPrefix(last, "0X") {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// validHostName accepts DNS-ish names: letters, digits, hyphens,
// underscores and dots, each label 1..63 bytes. Go's transport turns IDNs
// into punycode before dialling, so non-ASCII names are accepted here too.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || r >= 0x80 ||
				(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			if !ok {
				return false
			}
		}
	}
	return true
}

// refusedError is an SSRF refusal: a destination the tenant may not reach.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "destination not allowed: " + e.reason }

func refuseAddr(host string, a netip.Addr, what string) *refusedError {
	if ip, err := netip.ParseAddr(host); err == nil && ip == a {
		return &refusedError{a.String() + " is " + what}
	}
	// The resolved address itself stays out of the message: it would let
	// a client map internal DNS.
	return &refusedError{host + " resolves to " + what}
}
