package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

func TestHashKey(t *testing.T) {
	t.Parallel()
	format := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	for _, key := range []string{"", "cvk_abc", "ünïcödé", strings.Repeat("k", 10_000)} {
		h := HashKey(key)
		if !format.MatchString(h) {
			t.Errorf("HashKey(%.20q) = %q, want sha256:<64 lower-case hex>", key, h)
		}
		sum := sha256.Sum256([]byte(key))
		if want := "sha256:" + hex.EncodeToString(sum[:]); h != want {
			t.Errorf("HashKey(%.20q) = %q, want %q", key, h, want)
		}
		if HashKey(key) != h {
			t.Errorf("HashKey(%.20q) is not deterministic", key)
		}
	}
	// A known vector, so the stored form never drifts.
	if got, want := HashKey("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashKey(abc) = %s, want %s", got, want)
	}
	if HashKey("a") == HashKey("A") {
		t.Error("HashKey ignores case")
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	format := regexp.MustCompile(`^cvk_[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := NewKey()
		if !format.MatchString(k) {
			t.Fatalf("NewKey() = %q, want cvk_ and 43 base64url characters", k)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(k, "cvk_"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("NewKey() = %q carries %d bytes (%v), want 32", k, len(raw), err)
		}
		if seen[k] {
			t.Fatalf("NewKey() repeated %q", k)
		}
		seen[k] = true
	}
}

func TestValidScope(t *testing.T) {
	t.Parallel()
	for _, s := range AllScopes {
		if !ValidScope(s) {
			t.Errorf("ValidScope(%q) = false", s)
		}
	}
	for _, s := range []string{"", "media", "media:*", "MEDIA:READ", "media:read ", "admin:all"} {
		if ValidScope(s) {
			t.Errorf("ValidScope(%q) = true", s)
		}
	}
	if len(AllScopes) != 6 {
		t.Errorf("AllScopes = %q; the contract names six scopes", AllScopes)
	}
}

func TestPrincipalHas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scopes []string
		scope  string
		want   bool
	}{
		{"exact scope", []string{ScopeMediaRead}, ScopeMediaRead, true},
		{"one of several", []string{ScopeMediaWrite, ScopeMediaTag}, ScopeMediaTag, true},
		{"missing scope", []string{ScopeMediaRead}, ScopeMediaWrite, false},
		{"no scopes", nil, ScopeMediaRead, false},
		{"admin implies read", []string{ScopeAdmin}, ScopeMediaRead, true},
		{"admin implies delete", []string{ScopeAdmin}, ScopeMediaDelete, true},
		{"admin implies hooks", []string{ScopeAdmin}, ScopeHooksManage, true},
		{"admin has admin", []string{ScopeAdmin}, ScopeAdmin, true},
		{"admin after others", []string{ScopeMediaRead, ScopeAdmin}, ScopeHooksManage, true},
		{"write does not imply read", []string{ScopeMediaWrite}, ScopeMediaRead, false},
		{"read does not imply admin", []string{ScopeMediaRead, ScopeMediaWrite, ScopeMediaTag, ScopeMediaDelete, ScopeHooksManage}, ScopeAdmin, false},
		{"no prefix matching", []string{"media"}, ScopeMediaRead, false},
		{"case matters", []string{"ADMIN"}, ScopeMediaRead, false},
	}
	for _, tc := range tests {
		p := Principal{TenantID: "acme", KeyID: "k", Scopes: tc.scopes}
		if got := p.Has(tc.scope); got != tc.want {
			t.Errorf("%s: Principal%q.Has(%q) = %v, want %v", tc.name, tc.scopes, tc.scope, got, tc.want)
		}
	}
}

func TestKeyring(t *testing.T) {
	t.Parallel()
	kr := NewKeyring()
	if kr.Len() != 0 {
		t.Fatalf("a new keyring has %d keys", kr.Len())
	}
	if p, ok := kr.Lookup(""); ok {
		t.Fatalf("Lookup(\"\") on an empty keyring = %+v", p)
	}
	zapier := Principal{TenantID: "acme", KeyID: "zapier", Scopes: []string{ScopeMediaWrite}}
	if err := kr.Add(HashKey("k1"), zapier); err != nil {
		t.Fatalf("Add: %v", err)
	}
	// Even a configured hash of the empty key never authenticates "".
	if err := kr.Add(HashKey(""), Principal{TenantID: "acme", KeyID: "empty", Scopes: []string{ScopeAdmin}}); err != nil {
		t.Fatalf("Add(hash of \"\"): %v", err)
	}
	if p, ok := kr.Lookup(""); ok {
		t.Fatalf("Lookup(\"\") = %+v, want no principal even with its hash configured", p)
	}
	if p, ok := kr.Lookup("k1"); !ok || p.TenantID != "acme" || p.KeyID != "zapier" || !p.Has(ScopeMediaWrite) {
		t.Fatalf("Lookup(k1) = %+v, %v", p, ok)
	}
	for _, k := range []string{"k2", "K1", " k1", "k1 ", HashKey("k1")} {
		if p, ok := kr.Lookup(k); ok {
			t.Errorf("Lookup(%q) = %+v, want no principal", k, p)
		}
	}
	// Hashes are compared case-insensitively and trimmed.
	if err := kr.Add(strings.ToUpper(HashKey("k3")), Principal{TenantID: "beta", KeyID: "k3"}); err != nil {
		t.Fatalf("Add(upper-case hash): %v", err)
	}
	if p, ok := kr.Lookup("k3"); !ok || p.TenantID != "beta" {
		t.Errorf("Lookup(k3) = %+v, %v", p, ok)
	}
	if kr.Len() != 3 {
		t.Errorf("Len = %d, want 3", kr.Len())
	}

	bad := []struct {
		name string
		hash string
		p    Principal
		want string
	}{
		{"duplicate", HashKey("k1"), Principal{KeyID: "again"}, "twice"},
		{"duplicate in other case", "  " + strings.ToUpper(HashKey("k1")), Principal{KeyID: "again"}, "twice"},
		{"no prefix", hex.EncodeToString(make([]byte, 32)), Principal{KeyID: "x"}, "sha256:"},
		{"short", "sha256:abc", Principal{KeyID: "x"}, "64 hex"},
		{"not hex", "sha256:" + strings.Repeat("x", 64), Principal{KeyID: "x"}, "hex"},
		{"empty", "", Principal{KeyID: "x"}, "sha256:"},
		{"unknown scope", HashKey("k9"), Principal{KeyID: "x", Scopes: []string{ScopeMediaRead, "media:all"}}, `"media:all"`},
	}
	for _, tc := range bad {
		err := kr.Add(tc.hash, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.p.KeyID) {
			t.Errorf("%s: Add = %v, want an error naming key %q and %q", tc.name, err, tc.p.KeyID, tc.want)
		}
	}
	if kr.Len() != 3 {
		t.Errorf("failed Adds changed the keyring: Len = %d", kr.Len())
	}
	if _, ok := kr.Lookup("k9"); ok {
		t.Error("a key refused for its scope was added anyway")
	}
}
