package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
)

// problemStatus is the one table from error kinds to HTTP statuses.
var problemStatus = map[apperr.Kind]int{
	apperr.Invalid:          http.StatusBadRequest,
	apperr.Unauthorized:     http.StatusUnauthorized,
	apperr.Forbidden:        http.StatusForbidden,
	apperr.NotFound:         http.StatusNotFound,
	apperr.Conflict:         http.StatusConflict,
	apperr.Gone:             http.StatusGone,
	apperr.TooLarge:         http.StatusRequestEntityTooLarge,
	apperr.UnsupportedMedia: http.StatusUnsupportedMediaType,
	apperr.Unprocessable:    http.StatusUnprocessableEntity,
	apperr.RateLimited:      http.StatusTooManyRequests,
	apperr.BadGateway:       http.StatusBadGateway,
	apperr.Unavailable:      http.StatusServiceUnavailable,
	apperr.Internal:         http.StatusInternalServerError,
}

// rangeNotSatisfiable is the one status that is not an error kind of the
// domain: only the HTTP layer knows ranges.
const kindRange apperr.Kind = "range_not_satisfiable"

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []apperr.FieldError `json:"errors,omitempty"`
}

// renderProblems writes the problem for the first error a handler reported,
// unless the handler already wrote a response.
func (s *server) renderProblems(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 || c.Writer.Written() {
		return
	}
	s.writeProblem(c, c.Errors[0].Err)
}

func (s *server) writeProblem(c *gin.Context, err error) {
	kind := apperr.KindOf(err)
	status := problemStatus[kind]
	if kind == kindRange {
		status = http.StatusRequestedRangeNotSatisfiable
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	p := Problem{
		Type:      "urn:chatvault:problem:" + string(kind),
		Title:     http.StatusText(status),
		Status:    status,
		Instance:  c.Request.URL.Path,
		RequestID: c.GetString(ctxRequestID),
	}
	e, ok := apperr.As(err)
	switch {
	case ok && kind != apperr.Internal:
		p.Detail, p.Errors = e.Detail, e.Fields
		if e.RetryAfter > 0 {
			c.Header("Retry-After", strconv.Itoa(ceilSeconds(e.RetryAfter)))
		}
	case errors.Is(err, context.Canceled):
		// The client went away mid-request; nobody reads an answer.
		c.Status(499)
		return
	default:
		p.Type = "urn:chatvault:problem:internal"
		p.Detail = "an internal error occurred; quote the request_id when reporting it"
		s.log.ErrorContext(c.Request.Context(), "internal error", "request_id", p.RequestID, "err", err)
	}
	if status == http.StatusServiceUnavailable && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "5")
	}
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="chatvault"`)
	}
	c.Header("Content-Type", "application/problem+json")
	c.Status(status)
	body, _ := jsonMarshal(p)
	_, _ = c.Writer.Write(body)
}
