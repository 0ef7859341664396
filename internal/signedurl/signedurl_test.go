package signedurl

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New([]byte("secret-1"), 15*time.Minute)
	if s.TTL() != 15*time.Minute {
		t.Errorf("TTL = %v", s.TTL())
	}
	const (
		tenant    = "acme"
		mediaID   = "med_01JN8S7RF8X2DPDADBYH4XPFBC"
		rendition = "original"
	)
	expires := now.Add(s.TTL())
	sig := s.Sign(tenant, mediaID, rendition, expires)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sig) {
		t.Fatalf("signature %q is not 64 lower-case hex digits", sig)
	}
	if again := s.Sign(tenant, mediaID, rendition, expires); again != sig {
		t.Fatal("Sign is not deterministic")
	}
	// Another replica with the same secret verifies; the TTL is not signed.
	replica := New([]byte("secret-1"), time.Hour)

	flipped := []byte(sig)
	if flipped[0] == '0' {
		flipped[0] = '1'
	} else {
		flipped[0] = '0'
	}
	tests := []struct {
		name                         string
		signer                       *Signer
		tenant, media, rendition, sg string
		expires, now                 time.Time
		want                         bool
	}{
		{name: "round trip", want: true},
		{name: "same secret, another replica", signer: replica, want: true},
		{name: "just before expiry", now: expires.Add(-time.Nanosecond), want: true},
		{name: "sub-second expiry within the signed second", expires: expires.Add(500 * time.Millisecond), want: true},
		{name: "at expiry", now: expires},
		{name: "after expiry", now: expires.Add(time.Second)},
		{name: "long after expiry", now: expires.Add(24 * time.Hour)},
		{name: "other tenant", tenant: "beta"},
		{name: "tenant prefix", tenant: "acm"},
		{name: "other media", media: "med_01JN8S7RF8X2DPDADBYH4XPFBD"},
		{name: "other rendition", rendition: "thumbnail"},
		{name: "empty rendition", rendition: "-"},
		{name: "expiry extended", expires: expires.Add(time.Second)},
		{name: "expiry extended a day", expires: expires.Add(24 * time.Hour)},
		{name: "expiry shortened", expires: expires.Add(-time.Second)},
		{name: "one digit changed", sg: string(flipped)},
		{name: "truncated", sg: sig[:63]},
		{name: "extended", sg: sig + "0"},
		{name: "upper case", sg: strings.ToUpper(sig)},
		{name: "empty signature", sg: "-"},
		{name: "other secret", signer: New([]byte("secret-2"), 15*time.Minute)},
		{name: "empty secret", signer: New(nil, 15*time.Minute)},
		// Field boundaries are part of the MAC: moving a character from one
		// field to the next must not give the same signature.
		{name: "shifted boundary", tenant: "acme" + "m", media: mediaID[1:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			signer := s
			if tc.signer != nil {
				signer = tc.signer
			}
			tn, md, rd, sg, ex, at := tenant, mediaID, rendition, sig, expires, now
			if tc.tenant != "" {
				tn = tc.tenant
			}
			if tc.media != "" {
				md = tc.media
			}
			if tc.rendition == "-" {
				rd = ""
			} else if tc.rendition != "" {
				rd = tc.rendition
			}
			if tc.sg == "-" {
				sg = ""
			} else if tc.sg != "" {
				sg = tc.sg
			}
			if !tc.expires.IsZero() {
				ex = tc.expires
			}
			if !tc.now.IsZero() {
				at = tc.now
			}
			if got := signer.Verify(tn, md, rd, ex, sg, at); got != tc.want {
				t.Fatalf("Verify(%q, %q, %q, %v, %.12s…, now %v) = %v, want %v", tn, md, rd, ex, sg, at, got, tc.want)
			}
		})
	}
}

func TestSignaturesDiffer(t *testing.T) {
	t.Parallel()
	s := New([]byte("k"), time.Minute)
	exp := time.Unix(1_750_000_000, 0)
	sigs := map[string]string{}
	for name, sig := range map[string]string{
		"base":      s.Sign("a", "m", "r", exp),
		"tenant":    s.Sign("b", "m", "r", exp),
		"media":     s.Sign("a", "n", "r", exp),
		"rendition": s.Sign("a", "m", "s", exp),
		"expiry":    s.Sign("a", "m", "r", exp.Add(time.Second)),
		"secret":    New([]byte("l"), time.Minute).Sign("a", "m", "r", exp),
		"joined":    s.Sign("a\nm", "", "r", exp),
	} {
		if other, dup := sigs[sig]; dup {
			t.Errorf("%s and %s share the signature %s", name, other, sig)
		}
		sigs[sig] = name
	}
}
