// Package sourcetest provides loopback stand-ins for the upstreams package
// source fetches from: Meta's WhatsApp Cloud API media endpoints, Twilio's
// media API and CDN, 360dialog's media proxy and plain HTTP origins.
package sourcetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
)

// MiB is a mebibyte, for sizing generated bodies.
const MiB = 1 << 20

// Content is a body the fakes serve. It is opened afresh for every request,
// so a generated body of any size is never held in memory.
type Content struct {
	size int64
	open func() io.Reader
}

// Bytes serves b.
func Bytes(b []byte) Content {
	return Content{size: int64(len(b)), open: func() io.Reader { return bytes.NewReader(b) }}
}

// Generated serves size deterministic pseudo-random bytes derived from seed:
// incompressible, like real media, and streamed.
func Generated(size int64, seed uint64) Content {
	return Content{size: size, open: func() io.Reader {
		var s [32]byte
		binary.LittleEndian.PutUint64(s[:], seed)
		return io.LimitReader(rand.NewChaCha8(s), size)
	}}
}

// Stream serves whatever open returns; size is its length, or -1 to send it
// chunked without a Content-Length.
func Stream(size int64, open func() io.Reader) Content {
	return Content{size: size, open: open}
}

// Size is the body length, -1 if unknown.
func (c Content) Size() int64 { return c.size }

// Open returns a fresh reader of the body.
func (c Content) Open() io.Reader { return c.open() }

// SHA256 streams the body once and returns its lower-case hex digest.
func (c Content) SHA256() string {
	h := sha256.New()
	_, _ = io.Copy(h, c.open())
	return hex.EncodeToString(h.Sum(nil))
}
