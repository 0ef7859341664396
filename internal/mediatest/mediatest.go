// Package mediatest makes small files whose first bytes are real container
// headers, so content sniffing sees what a WhatsApp upload would show it.
package mediatest

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
)

// filler appends n pseudo-random bytes, seeded, so different seeds give
// different checksums.
func filler(head []byte, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]byte, len(head), len(head)+n)
	copy(out, head)
	for i := 0; i < n; i++ {
		out = append(out, byte(r.UintN(256)))
	}
	return out
}

// OggOpus looks like a WhatsApp voice note (audio/ogg; codecs=opus).
func OggOpus(n int, seed uint64) []byte {
	head := append([]byte("OggS\x00\x02"), make([]byte, 22)...)
	head = append(head, []byte("OpusHead\x01\x01")...)
	return filler(head, n, seed)
}

// MP4 looks like an H.264 video in an ISO BMFF container.
func MP4(n int, seed uint64) []byte {
	head := append([]byte{0, 0, 0, 0x18}, []byte("ftypisom\x00\x00\x02\x00isomiso2")...)
	return filler(head, n, seed)
}

// PDF looks like a document.
func PDF(n int, seed uint64) []byte { return filler([]byte("%PDF-1.4\n"), n, seed) }

// ELF is a Linux executable header: never archived under any kind.
func ELF(n int, seed uint64) []byte {
	head := append([]byte("\x7fELF\x02\x01\x01\x00"), make([]byte, 8)...)
	head = append(head, 2, 0, 0x3e, 0)
	return filler(head, n, seed)
}

// PNG is a real w×h PNG image.
func PNG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}
