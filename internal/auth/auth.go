// Package auth resolves API keys to a tenant and its scopes. Keys are stored
// only as SHA-256 hashes: they are long random secrets, so a fast hash is
// enough and a database leak reveals no usable key.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Scopes a key can carry.
const (
	ScopeMediaWrite  = "media:write"
	ScopeMediaRead   = "media:read"
	ScopeMediaTag    = "media:tag"
	ScopeMediaDelete = "media:delete"
	ScopeHooksManage = "hooks:manage"
	ScopeAdmin       = "admin"
)

// AllScopes lists every scope, for dev keys and validation.
var AllScopes = []string{ScopeMediaWrite, ScopeMediaRead, ScopeMediaTag, ScopeMediaDelete, ScopeHooksManage, ScopeAdmin}

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool {
	for _, v := range AllScopes {
		if v == s {
			return true
		}
	}
	return false
}

// Principal is who a request acts as.
type Principal struct {
	TenantID string
	KeyID    string
	Scopes   []string
}

// Has reports whether p carries scope (admin carries every scope).
func (p Principal) Has(scope string) bool {
	for _, s := range p.Scopes {
		if s == scope || s == ScopeAdmin {
			return true
		}
	}
	return false
}

// HashKey returns the stored form of an API key: "sha256:<hex>".
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewKey returns a fresh random API key.
func NewKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "cvk_" + base64.RawURLEncoding.EncodeToString(b)
}

// Keyring maps key hashes to principals.
type Keyring struct {
	byHash map[string]Principal
}

// NewKeyring builds a keyring; hashes must be "sha256:<64 hex>".
func NewKeyring() *Keyring { return &Keyring{byHash: map[string]Principal{}} }

// Add registers a hashed key.
func (k *Keyring) Add(hash string, p Principal) error {
	hash = strings.ToLower(strings.TrimSpace(hash))
	hexPart, ok := strings.CutPrefix(hash, "sha256:")
	if !ok || len(hexPart) != 64 {
		return fmt.Errorf("key %q: hash must be sha256:<64 hex digits>", p.KeyID)
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return fmt.Errorf("key %q: hash is not hex", p.KeyID)
	}
	for _, s := range p.Scopes {
		if !ValidScope(s) {
			return fmt.Errorf("key %q: unknown scope %q", p.KeyID, s)
		}
	}
	if _, dup := k.byHash[hash]; dup {
		return fmt.Errorf("key %q: the same key is configured twice", p.KeyID)
	}
	k.byHash[hash] = p
	return nil
}

// Lookup returns the principal of a presented key. The map lookup on the
// hash is not timing-sensitive: an attacker learns nothing useful about a
// 256-bit random key from the timing of a lookup on its hash.
func (k *Keyring) Lookup(key string) (Principal, bool) {
	if key == "" {
		return Principal{}, false
	}
	p, ok := k.byHash[HashKey(key)]
	return p, ok
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.byHash) }
