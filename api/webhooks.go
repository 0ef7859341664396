package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/webhook"
	"github.com/chatvault/chatvault/internal/worker"
)

// WebhookAuth is what a tenant's inbound webhooks are checked with.
type WebhookAuth struct {
	MetaAppSecret   string // X-Hub-Signature-256
	MetaVerifyToken string // GET handshake
	TwilioAuthToken string // X-Twilio-Signature
	// TwilioBaseURL replaces the scheme and host of the URL Twilio signed,
	// when a proxy in front of chatvault changes them.
	TwilioBaseURL  string
	Dialog360Token string // ?token= or X-Chatvault-Token
}

// Claims remembers which provider messages were already taken.
type Claims interface {
	Claim(ctx context.Context, tenantID, key string, ttl time.Duration) (bool, error)
	Confirm(ctx context.Context, tenantID, key string, ttl time.Duration) error
	Forget(ctx context.Context, tenantID, key string) error
}

const (
	// claimPending covers the gap between claiming a message and queueing
	// it: a crash there frees the message for the provider's next retry.
	claimPending = 2 * time.Minute
	// claimKept outlasts providers' retries (Meta retries for up to 7 days).
	claimKept = 14 * 24 * time.Hour
)

// webhookTenant resolves the tenant named in the path; unknown tenants are
// counted against the caller's address, like failed authentication.
func (s *server) webhookTenant(c *gin.Context) {
	tenant := c.Param("tenant")
	auth, ok := s.Webhooks(tenant)
	if !ok {
		if s.limitAnonymous(c) {
			c.Error(apperr.New(apperr.NotFound, "no tenant %q", tenant))
		}
		c.Abort()
		return
	}
	c.Header("RateLimit-Policy", ratelimitPolicy("webhook", s.WebhookRate))
	d, err := s.Limiter.Allow(c.Request.Context(), tenant, webhookBucket(s.WebhookRate))
	if err != nil {
		limiterDown(c, "webhook", err)
		return
	}
	if !s.applyDecision(c, d, "webhook") {
		c.Abort()
		return
	}
	c.Set(ctxWebhookAuth, auth)
	c.Next()
}

const ctxWebhookAuth = "chatvault.webhook_auth"

func webhookAuth(c *gin.Context) WebhookAuth {
	v, _ := c.Get(ctxWebhookAuth)
	a, _ := v.(WebhookAuth)
	return a
}

// rawBody reads a request body, capped at MaxBodyBytes, without parsing it:
// webhook signatures are checked over the exact bytes first.
func rawBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apperr.New(apperr.TooLarge, "the request body is over %d bytes", MaxBodyBytes)
		}
		return nil, apperr.Wrap(apperr.Invalid, err, "the request body could not be read")
	}
	return body, nil
}

// metaVerify answers Meta's subscription handshake.
func (s *server) metaVerify(c *gin.Context) {
	auth := webhookAuth(c)
	if auth.MetaVerifyToken == "" {
		c.Error(apperr.New(apperr.NotFound, "WhatsApp webhooks are not configured for this tenant (whatsapp_cloud.verify_token)"))
		return
	}
	challenge, ok := webhook.VerifyChallenge(c.Request.URL.Query(), auth.MetaVerifyToken)
	if !ok {
		c.Error(apperr.New(apperr.Forbidden, "hub.verify_token does not match, or hub.mode is not subscribe"))
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(challenge))
}

// metaWebhook takes Meta Cloud API deliveries. The signature is checked
// over the raw bytes before anything is parsed.
func (s *server) metaWebhook(c *gin.Context) {
	auth := webhookAuth(c)
	if auth.MetaAppSecret == "" {
		c.Error(apperr.New(apperr.NotFound, "WhatsApp webhooks are not configured for this tenant (whatsapp_cloud.app_secret)"))
		return
	}
	body, err := rawBody(c)
	if err != nil {
		c.Error(err)
		return
	}
	sig := c.GetHeader("X-Hub-Signature-256")
	if sig == "" {
		c.Error(apperr.New(apperr.Unauthorized, "missing X-Hub-Signature-256"))
		return
	}
	if !webhook.VerifyMetaSignature(auth.MetaAppSecret, body, sig) {
		c.Error(apperr.New(apperr.Forbidden, "X-Hub-Signature-256 does not match the body"))
		return
	}
	s.acceptMeta(c, body, webhook.ProviderWhatsAppCloud)
}

// dialog360Webhook takes 360dialog deliveries (Meta's payload shape). 360dialog
// cannot sign for its clients, so a secret token in the URL or a header
// protects the endpoint.
func (s *server) dialog360Webhook(c *gin.Context) {
	auth := webhookAuth(c)
	if auth.Dialog360Token == "" {
		c.Error(apperr.New(apperr.NotFound, "360dialog webhooks are not configured for this tenant (dialog360.webhook_token)"))
		return
	}
	token := c.GetHeader("X-Chatvault-Token")
	if token == "" {
		token = c.Query("token")
	}
	if token == "" {
		c.Error(apperr.New(apperr.Unauthorized, "missing the webhook token (?token= or X-Chatvault-Token)"))
		return
	}
	if !webhook.VerifyToken(auth.Dialog360Token, token) {
		c.Error(apperr.New(apperr.Forbidden, "the webhook token is wrong"))
		return
	}
	body, err := rawBody(c)
	if err != nil {
		c.Error(err)
		return
	}
	s.acceptMeta(c, body, webhook.ProviderDialog360)
}

func (s *server) acceptMeta(c *gin.Context, body []byte, provider string) {
	items, ignored, err := webhook.ParseMeta(body, provider)
	if err != nil {
		c.Error(err)
		return
	}
	queued, dups, err := s.enqueueInbound(c.Request.Context(), c.Param("tenant"), items)
	if err != nil {
		c.Error(err)
		return
	}
	s.writeJSON(c, http.StatusOK, webhookAck{Received: len(items) + ignored, Queued: queued, Duplicates: dups, Ignored: ignored})
}

// twilioWebhook takes Twilio's form-encoded deliveries, checked with
// X-Twilio-Signature over the URL Twilio called and the sorted parameters.
func (s *server) twilioWebhook(c *gin.Context) {
	auth := webhookAuth(c)
	if auth.TwilioAuthToken == "" {
		c.Error(apperr.New(apperr.NotFound, "Twilio webhooks are not configured for this tenant (twilio.auth_token)"))
		return
	}
	sig := c.GetHeader("X-Twilio-Signature")
	if sig == "" {
		c.Error(apperr.New(apperr.Unauthorized, "missing X-Twilio-Signature"))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	if err := c.Request.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.Error(apperr.New(apperr.TooLarge, "the webhook body is over %d bytes", MaxBodyBytes))
			return
		}
		c.Error(apperr.Wrap(apperr.Invalid, err, "the body is not form-encoded"))
		return
	}
	base := auth.TwilioBaseURL
	if base == "" {
		base = s.baseURL(c)
	}
	if !webhook.VerifyTwilioSignature(auth.TwilioAuthToken, base+c.Request.URL.RequestURI(), c.Request.PostForm, sig) {
		c.Error(apperr.New(apperr.Forbidden, "X-Twilio-Signature does not match; if a proxy rewrites the URL, set twilio.webhook_base_url"))
		return
	}
	items, err := webhook.ParseTwilio(c.Request.PostForm)
	if err != nil {
		c.Error(err)
		return
	}
	if _, _, err := s.enqueueInbound(c.Request.Context(), c.Param("tenant"), items); err != nil {
		c.Error(err)
		return
	}
	// An empty TwiML answer: no auto-reply to the customer.
	c.Data(http.StatusOK, "text/xml; charset=utf-8", []byte(`<?xml version="1.0" encoding="UTF-8"?><Response></Response>`))
}

type webhookAck struct {
	Received   int `json:"received"`
	Queued     int `json:"queued"`
	Duplicates int `json:"duplicates"`
	Ignored    int `json:"ignored"`
}

// enqueueInbound queues each media once per provider message, however often
// the provider retries. A failure answers 503 so the provider retries.
func (s *server) enqueueInbound(ctx context.Context, tenant string, items []webhook.InboundMedia) (queued, dups int, err error) {
	for _, m := range items {
		key := m.Provider + ":" + m.MessageID + ":" + strconv.Itoa(m.Index)
		fresh, err := s.Claims.Claim(ctx, tenant, key, claimPending)
		if err != nil {
			return queued, dups, err
		}
		if !fresh {
			dups++
			continue
		}
		payload, err := json.Marshal(m)
		if err != nil {
			return queued, dups, err
		}
		if _, err := s.Queue.Enqueue(ctx, queue.Job{Type: worker.TypeInbound, TenantID: tenant, Payload: payload}); err != nil {
			_ = s.Claims.Forget(context.WithoutCancel(ctx), tenant, key)
			return queued, dups, apperr.Wrap(apperr.Unavailable, err, "the queue is unavailable; the provider will retry")
		}
		if err := s.Claims.Confirm(ctx, tenant, key, claimKept); err != nil {
			s.log.WarnContext(ctx, "extending a webhook claim failed; a provider retry may be queued again (the archive still dedupes)", "err", err)
		}
		s.Metrics.WebhookMedia.WithLabelValues(m.Provider).Inc()
		queued++
	}
	return queued, dups, nil
}
