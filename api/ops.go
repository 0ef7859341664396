package api

import (
	"context"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
)

func (s *server) healthz(c *gin.Context) {
	s.writeJSON(c, http.StatusOK, gin.H{"status": "ok"})
}

// readyz reports whether Redis and storage answer, so a load balancer stops
// sending work to a replica that cannot do it.
func (s *server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	status, code := "ok", http.StatusOK
	for name, err := range s.Ready(ctx) {
		checks[name] = "ok"
		if err != nil {
			checks[name] = err.Error()
			status, code = "unavailable", http.StatusServiceUnavailable
		}
	}
	if code != http.StatusOK {
		c.Header("Retry-After", "5")
	}
	s.writeJSON(c, code, gin.H{"status": status, "checks": checks})
}

func (s *server) openapi(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", s.OpenAPI)
}

func (s *server) schema(c *gin.Context) {
	name := path.Base(c.Param("file"))
	raw, err := fs.ReadFile(s.Schemas, name)
	if err != nil {
		c.Error(apperr.New(apperr.NotFound, "no schema %q", name))
		return
	}
	c.Data(http.StatusOK, "application/schema+json", raw)
}

func notFoundRoute(c *gin.Context) error {
	return apperr.New(apperr.NotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path)
}

func methodNotAllowed(c *gin.Context) error {
	return apperr.New(apperr.Invalid, "method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path)
}
