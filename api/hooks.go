package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/events"
)

// hookRequest is the body of POST /v1/hooks (schemas/hook-request.json).
type hookRequest struct {
	URL     string          `json:"url" validate:"required,max=2048,url"`
	Events  []string        `json:"events" validate:"required,min=1,max=5,dive,oneof=media.archived media.tagged media.deleted media.failed media.processed"`
	Filters *events.Filters `json:"filters"`
}

// hookView is a subscription as the API shows it; the secret appears only
// in the answer to its creation.
type hookView struct {
	ID        string         `json:"id"`
	URL       string         `json:"url"`
	Events    []string       `json:"events"`
	Filters   events.Filters `json:"filters"`
	Secret    string         `json:"secret,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

func hookViewOf(h events.Subscription, withSecret bool) hookView {
	v := hookView{ID: h.ID, URL: h.URL, Events: h.Events, Filters: h.Filters, CreatedAt: h.CreatedAt}
	if withSecret {
		v.Secret = h.Secret
	}
	return v
}

// createHook subscribes a URL to events (a REST hook, as Zapier and Make
// subscribe).
func (s *server) createHook(c *gin.Context) {
	var req hookRequest
	if err := bindJSON(c, &req); err != nil {
		c.Error(err)
		return
	}
	var f events.Filters
	if req.Filters != nil {
		f = *req.Filters
	}
	h, err := s.Hooks.Create(c.Request.Context(), principal(c).TenantID, req.URL, req.Events, f)
	if err != nil {
		c.Error(err)
		return
	}
	c.Header("Location", "/v1/hooks/"+h.ID)
	s.writeJSON(c, http.StatusCreated, hookViewOf(h, true))
}

func (s *server) listHooks(c *gin.Context) {
	hooks, err := s.Hooks.List(c.Request.Context(), principal(c).TenantID)
	if err != nil {
		c.Error(err)
		return
	}
	out := make([]hookView, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, hookViewOf(h, false))
	}
	s.writeJSON(c, http.StatusOK, gin.H{"data": out})
}

func (s *server) deleteHook(c *gin.Context) {
	if err := s.Hooks.Delete(c.Request.Context(), principal(c).TenantID, c.Param("hook_id")); err != nil {
		c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}

// eventView keeps the event's stored JSON as it was published.
type eventView struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// listEvents is the polling feed for triggers that poll (Zapier's
// performList, Make's polling triggers).
func (s *server) listEvents(c *gin.Context) {
	q := events.FeedQuery{Type: c.Query("type"), CustomerID: c.Query("customer_id"), Kind: c.Query("kind"), Tag: c.Query("tag"), Cursor: c.Query("cursor")}
	if q.Type == "" || !events.ValidType(q.Type) {
		c.Error(apperr.WithFields("invalid query parameters", apperr.FieldError{Pointer: "query:type", Detail: "one of " + strings.Join(events.Types, ", ") + " is required"}))
		return
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.Error(apperr.WithFields("invalid query parameters", apperr.FieldError{Pointer: "query:limit", Detail: "must be an integer from 1 to 100"}))
			return
		}
		q.Limit = n
	}
	page, next, err := s.Feed.List(c.Request.Context(), principal(c).TenantID, q)
	if err != nil {
		c.Error(err)
		return
	}
	out := struct {
		Data       []eventView `json:"data"`
		NextCursor *string     `json:"next_cursor"`
	}{Data: make([]eventView, 0, len(page))}
	for _, e := range page {
		out.Data = append(out.Data, eventView{ID: e.ID, Type: e.Type, CreatedAt: e.CreatedAt, Data: e.Data})
	}
	if next != "" {
		out.NextCursor = &next
	}
	s.writeJSON(c, http.StatusOK, out)
}
