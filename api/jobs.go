package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/worker"
)

// jobView is a job's status as the API shows it (schemas/job.json).
type jobView struct {
	ID            string        `json:"id"`
	Type          string        `json:"type"`
	State         string        `json:"state"`
	Attempts      int           `json:"attempts"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
	NextAttemptAt *time.Time    `json:"next_attempt_at,omitempty"`
	Error         *jobErrorView `json:"error,omitempty"`
	Result        *jobResult    `json:"result,omitempty"`
}

type jobErrorView struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

type jobResult struct {
	MediaID string     `json:"media_id"`
	Created bool       `json:"created"`
	Media   *mediaView `json:"media,omitempty"`
}

// getJob shows an async job; a succeeded archive includes its record.
func (s *server) getJob(c *gin.Context) {
	p := principal(c)
	if !p.Has(auth.ScopeMediaRead) && !p.Has(auth.ScopeMediaWrite) {
		c.Error(apperr.New(apperr.Forbidden, "this API key lacks the media:read or media:write scope"))
		return
	}
	st, err := s.Queue.Status(c.Request.Context(), p.TenantID, c.Param("job_id"))
	if err != nil {
		c.Error(err)
		return
	}
	s.writeJSON(c, http.StatusOK, s.jobViewOf(c, st))
}

func (s *server) jobViewOf(c *gin.Context, st queue.Status) jobView {
	v := jobView{ID: st.ID, Type: st.Type, State: st.State, Attempts: st.Attempts, CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt, NextAttemptAt: st.NextAttemptAt}
	if st.Error != nil {
		status := st.Error.Status
		if status == 0 {
			status = StatusOf(apperr.Kind(st.Error.Kind))
		}
		v.Error = &jobErrorView{Type: "urn:chatvault:problem:" + st.Error.Kind, Status: status, Detail: st.Error.Detail}
	}
	var r worker.Result
	if st.State == "succeeded" && json.Unmarshal(st.Result, &r) == nil && r.MediaID != "" {
		v.Result = &jobResult{MediaID: r.MediaID, Created: r.Created}
		if m, err := s.Media.Get(c.Request.Context(), st.TenantID, r.MediaID); err == nil {
			mv := s.viewOf(c, m)
			v.Result.Media = &mv
		}
	}
	return v
}

// StatusOf is the HTTP status of an error kind.
func StatusOf(k apperr.Kind) int {
	if s, ok := problemStatus[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

type deadLetterView struct {
	EntryID  string       `json:"entry_id"`
	JobID    string       `json:"job_id"`
	Type     string       `json:"type"`
	Attempts int          `json:"attempts"`
	FailedAt time.Time    `json:"failed_at"`
	Error    jobErrorView `json:"error"`
}

type deadLetterList struct {
	Data       []deadLetterView `json:"data"`
	NextCursor *string          `json:"next_cursor"`
}

// listDeadLetters shows the tenant's jobs that failed for good.
func (s *server) listDeadLetters(c *gin.Context) {
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			c.Error(apperr.WithFields("invalid query parameters", apperr.FieldError{Pointer: "query:limit", Detail: "must be an integer from 1 to 200"}))
			return
		}
		limit = n
	}
	tenant := principal(c).TenantID
	out := deadLetterList{Data: []deadLetterView{}}
	cursor := c.Query("cursor")
	// The dead-letter stream is shared by tenants: read pages until this
	// tenant's page is full, within a bound.
	for pages := 0; pages < 20; pages++ {
		page, next, err := s.Queue.DeadLetters(c.Request.Context(), limit, cursor)
		if err != nil {
			c.Error(err)
			return
		}
		full := false
		for _, d := range page {
			if d.Job.TenantID != tenant {
				continue
			}
			if len(out.Data) == limit {
				full = true // more of this tenant's remain; resume after the last shown
				break
			}
			out.Data = append(out.Data, deadLetterView{
				EntryID: d.EntryID, JobID: d.Job.ID, Type: d.Job.Type, Attempts: d.Job.Attempt, FailedAt: d.FailedAt,
				Error: jobErrorView{Type: "urn:chatvault:problem:" + d.Error.Kind, Status: StatusOf(apperr.Kind(d.Error.Kind)), Detail: d.Error.Detail},
			})
			cursor = d.EntryID
		}
		if full {
			break
		}
		if cursor = next; next == "" || len(out.Data) == limit {
			break
		}
	}
	if cursor != "" {
		out.NextCursor = &cursor
	}
	s.writeJSON(c, http.StatusOK, out)
}

// retryDeadLetter puts a dead job back on the queue.
func (s *server) retryDeadLetter(c *gin.Context) {
	d, err := s.Queue.DeadLetter(c.Request.Context(), c.Param("entry_id"))
	if err != nil || d.Job.TenantID != principal(c).TenantID {
		c.Error(apperr.New(apperr.NotFound, "no dead letter %q", c.Param("entry_id")))
		return
	}
	job, err := s.Queue.RetryDead(c.Request.Context(), d.EntryID)
	if err != nil {
		c.Error(err)
		return
	}
	st, err := s.Queue.Status(c.Request.Context(), job.TenantID, job.ID)
	if err != nil {
		c.Error(err)
		return
	}
	c.Header("Location", "/v1/jobs/"+job.ID)
	s.writeJSON(c, http.StatusAccepted, s.jobViewOf(c, st))
}
