package api

import (
	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/present"
)

type mediaView = present.Media

type mediaListView struct {
	Data       []mediaView `json:"data"`
	NextCursor *string     `json:"next_cursor"`
}

// viewOf renders a record for this request.
func (s *server) viewOf(c *gin.Context, m media.Media) mediaView {
	return s.Presenter.Media(m, s.baseURL(c))
}

// baseURL is the configured public URL, or the one the request came to.
func (s *server) baseURL(c *gin.Context) string {
	if s.PublicURL != "" {
		return s.PublicURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}
