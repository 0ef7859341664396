// Package signedurl signs and checks the expiring content URLs that let a
// CRM embed a media file without an API key. The signature binds tenant,
// media, rendition and expiry, so none can be swapped.
package signedurl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Signer makes and checks signatures with one shared secret; every replica
// must be configured with the same secret.
type Signer struct {
	secret []byte
	ttl    time.Duration
}

// New returns a Signer whose URLs live for ttl.
func New(secret []byte, ttl time.Duration) *Signer { return &Signer{secret: secret, ttl: ttl} }

// TTL is how long a fresh URL lives.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Sign returns the hex signature for the given resource and expiry.
func (s *Signer) Sign(tenantID, mediaID, rendition string, expires time.Time) string {
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte("chatvault-content-v1\n" + tenantID + "\n" + mediaID + "\n" + rendition + "\n" + strconv.FormatInt(expires.Unix(), 10)))
	return hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a signature in constant time and that it has not expired.
func (s *Signer) Verify(tenantID, mediaID, rendition string, expires time.Time, sig string, now time.Time) bool {
	if !now.Before(expires) {
		return false
	}
	want := s.Sign(tenantID, mediaID, rendition, expires)
	return hmac.Equal([]byte(want), []byte(sig))
}
