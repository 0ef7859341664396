package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
)

func (s *server) archive(c *gin.Context) {
	var req archiveRequest
	if err := bindJSON(c, &req); err != nil {
		c.Error(err)
		return
	}
	p := principal(c)
	m, created, err := s.Media.Archive(c.Request.Context(), p.TenantID, req.toArchiveInput())
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
