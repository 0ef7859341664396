// Package api is chatvault's HTTP face: one gin router, thin handlers,
// middleware for auth, rate limits and idempotency, and problem+json errors.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/events"
	"github.com/chatvault/chatvault/internal/idempotency"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/present"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/ratelimit"
	"github.com/chatvault/chatvault/internal/signedurl"
)

// Rates returns the per-key and per-tenant limits of a tenant.
type Rates func(tenantID string) (key, tenant ratelimit.Limit)

// Deps is everything the HTTP layer needs; main wires it.
type Deps struct {
	Media  *media.Service
	Queue  *queue.Queue
	Hooks  *events.Hooks
	Feed   *events.Feed
	Claims Claims
	// Webhooks returns a tenant's inbound webhook secrets.
	Webhooks    func(tenantID string) (WebhookAuth, bool)
	WebhookRate ratelimit.Limit
	Keys        *auth.Keyring
	Idempotency *idempotency.Store
	Limiter     *ratelimit.Limiter
	Rates       Rates
	Signer      *signedurl.Signer
	Presenter   *present.Presenter
	PublicURL   string // "" derives the base URL from each request
	Metrics     *Metrics
	Log         *slog.Logger
	Ready       func(ctx context.Context) map[string]error
	OpenAPI     []byte
	Schemas     fs.FS
	Now         func() time.Time
}

type server struct {
	Deps
	log *slog.Logger
}

// MaxBodyBytes caps every JSON request body.
const MaxBodyBytes = 1 << 20

// NewRouter returns the complete HTTP handler. Every route is here.
func NewRouter(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &server{Deps: d, log: d.Log}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Match routes on the raw path so an encoded "../" stays inside a path
	// parameter (and is refused there) instead of escaping its route.
	r.UseRawPath = true
	r.UnescapePathValues = true
	r.ContextWithFallback = true
	r.Use(s.requestID, s.observe, s.recover, s.renderProblems)
	r.NoRoute(func(c *gin.Context) { c.Error(notFoundRoute(c)) })
	r.NoMethod(func(c *gin.Context) { c.Error(methodNotAllowed(c)) })

	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(d.Metrics.Handler()))
	r.GET("/openapi.yaml", s.openapi)
	r.GET("/schemas/:file", s.schema)

	v1 := r.Group("/v1", s.authenticate(false), s.rateLimit)
	v1.POST("/media", s.require(auth.ScopeMediaWrite), s.idempotent, s.archive)
	v1.GET("/media/:media_id", s.require(auth.ScopeMediaRead), s.getMedia)
	v1.DELETE("/media/:media_id", s.require(auth.ScopeMediaDelete), s.deleteMedia)
	v1.POST("/media/:media_id/tags", s.require(auth.ScopeMediaTag), s.idempotent, s.tagMedia)
	v1.POST("/media/:media_id/process", s.require(auth.ScopeMediaWrite), s.reprocessMedia)
	v1.GET("/customers/:customer_id/media", s.require(auth.ScopeMediaRead), s.listCustomerMedia)
	v1.GET("/jobs/:job_id", s.getJob)
	v1.GET("/me", s.me)
	v1.POST("/hooks", s.require(auth.ScopeHooksManage), s.idempotent, s.createHook)
	v1.GET("/hooks", s.require(auth.ScopeHooksManage), s.listHooks)
	v1.DELETE("/hooks/:hook_id", s.require(auth.ScopeHooksManage), s.deleteHook)
	v1.GET("/events", s.require(auth.ScopeMediaRead), s.listEvents)
	v1.GET("/tags", s.require(auth.ScopeMediaRead), s.listTags)
	v1.GET("/admin/dead-letters", s.require(auth.ScopeAdmin), s.listDeadLetters)
	v1.POST("/admin/dead-letters/:entry_id/retry", s.require(auth.ScopeAdmin), s.retryDeadLetter)

	// Provider webhooks carry the provider's signature, not an API key.
	hooks := r.Group("/v1/webhooks", s.webhookTenant)
	hooks.GET("/whatsapp/:tenant", s.metaVerify)
	hooks.POST("/whatsapp/:tenant", s.metaWebhook)
	hooks.POST("/dialog360/:tenant", s.dialog360Webhook)
	hooks.POST("/twilio/:tenant", s.twilioWebhook)

	// Content is reachable with an API key or with a signed URL alone, so a
	// CRM can embed it.
	content := r.Group("/v1", s.authenticate(true), s.rateLimit)
	content.GET("/media/:media_id/content", s.content)
	return r
}

// jsonMarshal does not escape &, < and >: URLs in answers stay readable
// and copy-pasteable.
func jsonMarshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func (s *server) writeJSON(c *gin.Context, status int, v any) {
	body, err := jsonMarshal(v)
	if err != nil {
		c.Error(err)
		return
	}
	c.Data(status, "application/json", body)
}
