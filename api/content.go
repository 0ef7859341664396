package api

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/media"
)

// content streams a record's bytes, with single-range support. Nothing is
// buffered: the blob reader is copied straight to the client.
func (s *server) content(c *gin.Context) {
	p := principal(c)
	id := c.Param("media_id")
	if signedFor, ok := c.Get(ctxSignedFor); ok && signedFor != id {
		c.Error(apperr.New(apperr.Forbidden, "the signed URL is for another media"))
		return
	}
	if !p.Has(auth.ScopeMediaRead) {
		c.Error(apperr.New(apperr.Forbidden, "this API key lacks the %s scope", auth.ScopeMediaRead))
		return
	}
	rendition := c.Query("rendition")
	if rendition != "" && !renditionName.MatchString(rendition) {
		c.Error(apperr.WithFields("invalid rendition", apperr.FieldError{Pointer: "query:rendition", Detail: "a rendition name such as mp3, mp4, poster or thumb"}))
		return
	}
	m, err := s.Media.Get(c.Request.Context(), p.TenantID, id)
	if err != nil {
		c.Error(err)
		return
	}
	file, err := m.Content(rendition)
	if err != nil {
		c.Error(err)
		return
	}
	etag := `"` + file.SHA256 + `"`
	h := c.Writer.Header()
	h.Set("ETag", etag)
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Content-Type-Options", "nosniff")
	// Stored documents may be HTML or SVG: never let them run script on our origin.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, max-age=300")
	h.Set("Content-Disposition", contentDisposition(filenameOf(m.Filename, file)))
	if file.Rendition != "" {
		h.Set("Chatvault-Rendition", file.Rendition)
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" && (inm == etag || inm == "*") {
		c.Status(http.StatusNotModified)
		c.Writer.WriteHeaderNow()
		return
	}

	offset, length, partial, err := parseRange(c.GetHeader("Range"), file.SizeBytes)
	if err != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", file.SizeBytes))
		c.Error(err)
		return
	}
	r, err := s.Media.Open(c.Request.Context(), file, offset, length)
	if err != nil {
		c.Error(err)
		return
	}
	defer r.Close()
	h.Set("Content-Type", file.MimeType)
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", offset, offset+length-1, file.SizeBytes))
	}
	c.Status(status)
	if _, err := io.Copy(c.Writer, r); err != nil {
		// Headers are gone; the client sees a short body and retries.
		s.log.WarnContext(c.Request.Context(), "streaming content stopped", "media_id", id, "err", err)
	}
}

var renditionName = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// filenameOf names a served file: the original's name, or for a rendition
// that name with the rendition's extension ("voice.ogg" → "voice.mp3").
func filenameOf(original string, f media.Content) string {
	if original == "" || f.Rendition == "" {
		return original
	}
	ext := path.Ext(f.BlobKey)
	return strings.TrimSuffix(original, path.Ext(original)) + ext
}

// contentDisposition always quotes the filename, with an ASCII fallback and
// the RFC 8187 filename* form for names that are not plain ASCII.
func contentDisposition(name string) string {
	if name == "" {
		return "inline"
	}
	var ascii strings.Builder
	plain := true
	for _, r := range name {
		switch {
		case r == '"' || r == '\\' || r < 0x20 || r == 0x7f:
			ascii.WriteByte('_')
			plain = false
		case r > 0x7e:
			ascii.WriteByte('_')
			plain = false
		default:
			ascii.WriteRune(r)
		}
	}
	v := `inline; filename="` + ascii.String() + `"`
	if !plain {
		v += "; filename*=UTF-8''" + url.PathEscape(name)
	}
	return v
}

// parseRange reads a single "bytes=" range. Several ranges are answered
// with the whole file, which RFC 9110 allows.
func parseRange(header string, size int64) (offset, length int64, partial bool, err error) {
	if header == "" || strings.Contains(header, ",") {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return 0, size, false, nil // unknown units are ignored, per RFC 9110
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	bad := &apperr.Error{Kind: kindRange, Detail: fmt.Sprintf("the range %q is not satisfiable for %d bytes", header, size)}
	if !ok {
		return 0, 0, false, bad
	}
	if first == "" { // suffix: the last N bytes
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n <= 0 || size == 0 {
			return 0, 0, false, bad
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	start, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || start < 0 || start >= size {
		return 0, 0, false, bad
	}
	end := size - 1
	if last != "" {
		e, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || e < start {
			return 0, 0, false, bad
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true, nil
}
