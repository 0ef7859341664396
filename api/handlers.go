package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/worker"
)

func (s *server) archive(c *gin.Context) {
	var req archiveRequest
	if err := bindJSON(c, &req); err != nil {
		c.Error(err)
		return
	}
	p := principal(c)
	in := req.toArchiveInput()
	if preferAsync(c.GetHeader("Prefer")) {
		s.archiveAsync(c, p.TenantID, in)
		return
	}
	m, created, err := s.Media.Archive(c.Request.Context(), p.TenantID, in)
	if err != nil {
		s.Metrics.Archives.WithLabelValues(string(apperr.KindOf(err))).Inc()
		c.Error(err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.Metrics.Archives.WithLabelValues("created").Inc()
		s.Metrics.ArchivedBytes.Add(float64(m.SizeBytes))
		c.Header("Location", "/v1/media/"+m.ID)
	} else {
		s.Metrics.Archives.WithLabelValues("deduplicated").Inc()
	}
	s.writeJSON(c, status, s.viewOf(c, m))
}

// archiveAsync queues the archive and answers 202 with the job, for
// callers that cannot wait (Zapier ends a step after 30 seconds).
func (s *server) archiveAsync(c *gin.Context, tenantID string, in media.ArchiveInput) {
	if err := s.Media.Check(tenantID, in); err != nil {
		c.Error(err)
		return
	}
	payload, err := json.Marshal(in)
	if err != nil {
		c.Error(err)
		return
	}
	job, err := s.Queue.Enqueue(c.Request.Context(), queue.Job{Type: worker.TypeArchive, TenantID: tenantID, Payload: payload})
	if err != nil {
		c.Error(err)
		return
	}
	st, err := s.Queue.Status(c.Request.Context(), tenantID, job.ID)
	if err != nil {
		c.Error(err)
		return
	}
	c.Header("Location", "/v1/jobs/"+job.ID)
	c.Header("Preference-Applied", "respond-async")
	s.writeJSON(c, http.StatusAccepted, s.jobViewOf(c, st))
}

// preferAsync reports whether a Prefer header (RFC 7240) asks for
// respond-async.
func preferAsync(h string) bool {
	for _, p := range strings.Split(h, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(p), ";")
		if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
			return true
		}
	}
	return false
}

func (s *server) getMedia(c *gin.Context) {
	m, err := s.Media.Get(c.Request.Context(), principal(c).TenantID, c.Param("media_id"))
	if err != nil {
		c.Error(err)
		return
	}
	s.writeJSON(c, http.StatusOK, s.viewOf(c, m))
}

func (s *server) deleteMedia(c *gin.Context) {
	if err := s.Media.Delete(c.Request.Context(), principal(c).TenantID, c.Param("media_id")); err != nil {
		c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}

func (s *server) tagMedia(c *gin.Context) {
	var req tagRequest
	if err := bindJSON(c, &req); err != nil {
		c.Error(err)
		return
	}
	m, err := s.Media.Tag(c.Request.Context(), principal(c).TenantID, c.Param("media_id"), req.Add, req.Remove)
	if err != nil {
		c.Error(err)
		return
	}
	s.writeJSON(c, http.StatusOK, s.viewOf(c, m))
}

// reprocessMedia queues probing and renditions again and answers 202 with
// the record, whose processing state is pending until the workers finish.
func (s *server) reprocessMedia(c *gin.Context) {
	m, err := s.Media.Reprocess(c.Request.Context(), principal(c).TenantID, c.Param("media_id"))
	if err != nil {
		c.Error(err)
		return
	}
	s.writeJSON(c, http.StatusAccepted, s.viewOf(c, m))
}

func (s *server) listCustomerMedia(c *gin.Context) {
	q, err := listQuery(c)
	if err != nil {
		c.Error(err)
		return
	}
	page, next, err := s.Media.List(c.Request.Context(), principal(c).TenantID, c.Param("customer_id"), q)
	if err != nil {
		c.Error(err)
		return
	}
	out := mediaListView{Data: make([]mediaView, 0, len(page))}
	for _, m := range page {
		out.Data = append(out.Data, s.viewOf(c, m))
	}
	if next != "" {
		out.NextCursor = &next
	}
	s.writeJSON(c, http.StatusOK, out)
}

func listQuery(c *gin.Context) (media.ListQuery, error) {
	var q media.ListQuery
	var fields []apperr.FieldError
	if !customerIDPattern.MatchString(c.Param("customer_id")) || len(c.Param("customer_id")) > 128 {
		fields = append(fields, apperr.FieldError{Pointer: "path:customer_id", Detail: "letters, digits and _ . : @ + - only, at most 128"})
	}
	if k := c.Query("kind"); k != "" {
		q.Kind = media.Kind(k)
		if !q.Kind.Valid() {
			fields = append(fields, apperr.FieldError{Pointer: "query:kind", Detail: "must be one of audio, video, image, document, sticker"})
		}
	}
	q.Tag = c.Query("tag")
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if v := c.Query(b.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				fields = append(fields, apperr.FieldError{Pointer: "query:" + b.name, Detail: "must be an RFC 3339 date-time"})
			}
			*b.dst = t
		}
	}
	q.Limit = media.DefaultPageSize
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > media.MaxPageSize {
			fields = append(fields, apperr.FieldError{Pointer: "query:limit", Detail: "must be an integer from 1 to 200"})
		}
		q.Limit = n
	}
	q.Cursor = c.Query("cursor")
	if len(fields) > 0 {
		return q, apperr.WithFields("invalid query parameters", fields...)
	}
	return q, nil
}

// me tells a key who it is, for connection tests and labels.
func (s *server) me(c *gin.Context) {
	p := principal(c)
	scopes := p.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	s.writeJSON(c, http.StatusOK, gin.H{"tenant_id": p.TenantID, "key_id": p.KeyID, "scopes": scopes})
}

// listTags feeds tag pickers in Zapier and Make.
func (s *server) listTags(c *gin.Context) {
	tags, err := s.Media.Tags(c.Request.Context(), principal(c).TenantID, 500)
	if err != nil {
		c.Error(err)
		return
	}
	if tags == nil {
		tags = []media.TagCount{}
	}
	s.writeJSON(c, http.StatusOK, gin.H{"data": tags})
}
