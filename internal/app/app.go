// Package app wires chatvault's concrete adapters together: Redis, storage,
// fetchers, the media service and the HTTP router. main and the end-to-end
// tests build the service through it, so both run the same wiring.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/api"
	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/blobstore"
	"github.com/chatvault/chatvault/internal/config"
	"github.com/chatvault/chatvault/internal/events"
	"github.com/chatvault/chatvault/internal/idempotency"
	"github.com/chatvault/chatvault/internal/index"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/present"
	"github.com/chatvault/chatvault/internal/process"
	"github.com/chatvault/chatvault/internal/queue"
	"github.com/chatvault/chatvault/internal/ratelimit"
	"github.com/chatvault/chatvault/internal/signedurl"
	"github.com/chatvault/chatvault/internal/source"
	"github.com/chatvault/chatvault/internal/transcode"
	"github.com/chatvault/chatvault/internal/webhook"
	"github.com/chatvault/chatvault/internal/worker"
)

// Contract is the published API description the service serves.
type Contract struct {
	Spec    []byte // openapi.yaml
	Schemas fs.FS  // the schemas/ folder
}

// App is a wired service.
type App struct {
	rdb     redis.UniversalClient
	mini    *miniredis.Miniredis
	blobs   *blobstore.Store
	index   *index.Index
	Media   *media.Service
	Queue   *queue.Queue
	Handler http.Handler

	hooks      *events.Hooks
	feed       *events.Feed
	deliveries *queue.Queue
	deliverer  *events.Deliverer

	processor *worker.Processor
	metrics   *api.Metrics

	// Processing: probing and renditions on a queue of their own; nil
	// transcoder when processing is off.
	Processing  *queue.Queue
	transcoder  *transcode.Transcoder
	mediaProc   *process.Processor
	procWorkers int
}

// Build wires every concrete adapter; it is the only place that does.
func Build(ctx context.Context, cfg *config.Config, log *slog.Logger, contract Contract) (*App, error) {
	a := &App{}
	var err error
	a.rdb, a.mini, err = openRedis(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a.blobs, err = blobstore.Open(ctx, cfg.StorageURL)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("storage %s: %w", redactURL(cfg.StorageURL), err)
	}
	if strings.HasPrefix(cfg.StorageURL, "file://") {
		log.Warn("storing media in a local folder; use s3://, gs:// or azblob:// in production", "storage_url", cfg.StorageURL)
	}
	keys, err := cfg.Keyring()
	if err != nil {
		a.Close()
		return nil, err
	}
	if keys.Len() == 0 {
		log.Warn("no API keys are configured: set CHATVAULT_API_KEY for a dev key, or CHATVAULT_CONFIG for tenants")
	}
	secret := []byte(cfg.SigningSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		log.Warn("CHATVAULT_SIGNING_SECRET is unset: content URLs are signed with a random secret, so they stop working on restart and on other replicas")
	}

	a.index = index.New(a.rdb, cfg.RedisPrefix)
	fetcher := source.New(func(tenantID string) (source.Settings, bool) {
		t, ok := cfg.Tenants[tenantID]
		if !ok {
			return source.Settings{}, false
		}
		s := source.Settings{
			GraphBaseURL: t.WhatsAppCloud.GraphBaseURL, GraphToken: t.WhatsAppCloud.AccessToken, Allowlist: t.URLAllowlist,
			Twilio: source.TwilioSettings{AccountSID: t.Twilio.AccountSID, AuthToken: t.Twilio.AuthToken,
				APIKeySID: t.Twilio.APIKeySID, APIKeySecret: t.Twilio.APIKeySecret, APIHost: t.Twilio.APIHost},
			Dialog360: source.Dialog360Settings{BaseURL: t.Dialog360.BaseURL, APIKey: t.Dialog360.APIKey},
		}
		for _, r := range t.URLAuth {
			s.URLAuth = append(s.URLAuth, source.HeaderRule{Host: r.Host, Header: r.Header, Value: r.Value})
		}
		return s, true
	})
	limits := func(tenantID string) map[media.Kind]int64 {
		out := map[media.Kind]int64{}
		src := cfg.Defaults.Limits
		if t, ok := cfg.Tenants[tenantID]; ok {
			src = t.SizeLimits
		}
		for k, v := range src {
			out[media.Kind(k)] = v
		}
		return out
	}
	signer := signedurl.New(secret, cfg.ContentURLTTL)
	presenter := &present.Presenter{Signer: signer, CRMURLTTL: cfg.CRMURLTTL, Now: time.Now,
		Status: func(kind string) int { return api.StatusOf(apperr.Kind(kind)) }}
	a.metrics = api.NewMetrics()

	// Events: subscriptions in storage, a feed in Redis, deliveries on a
	// queue of their own with a day-long retry budget.
	a.hooks = events.NewHooks(a.blobs, a.rdb, cfg.RedisPrefix, events.WithURLCheck(fetcher.CheckURL))
	a.feed = events.NewFeed(a.rdb, cfg.RedisPrefix)
	a.deliveries = queue.New(a.rdb, cfg.RedisPrefix, events.DeliveryQueue, append(events.DeliveryQueueOptions(),
		queue.WithVisibilityTimeout(cfg.JobVisibility),
		queue.WithHooks(queue.Hooks{
			OnResult: a.metrics.ObserveJob,
			OnError:  func(op string, err error) { log.Warn("delivery queue", "op", op, "err", err) },
		}))...)
	a.deliverer = events.NewDeliverer(a.hooks, fetcher.Client)
	bridge := &eventBridge{pub: events.NewPublisher(a.feed, a.hooks, a.deliveries), presenter: presenter, baseURL: eventBaseURL(cfg), log: log}

	if err := a.buildTranscoder(cfg, log); err != nil {
		a.Close()
		return nil, err
	}
	// Broken media are recorded, not retried; what is retried is storage or
	// Redis trouble, worth about an hour.
	a.Processing = a.jobQueue(cfg, log, "process", 8, 10*time.Second, 20*time.Minute,
		func(ctx context.Context, job queue.Job, jerr queue.JobError) {
			var ref worker.MediaRef
			if job.Type == worker.TypeProcess && json.Unmarshal(job.Payload, &ref) == nil && a.mediaProc != nil {
				a.mediaProc.Fail(ctx, job.TenantID, ref.MediaID, job.ID, jerr.Kind, jerr.Detail)
			}
		})
	sched := scheduler{a.Processing}
	policy := func(tenantID string) media.Policy {
		t, ok := cfg.Tenants[tenantID]
		if !ok || a.transcoder == nil && cfg.Processing != "on" {
			return media.Policy{}
		}
		return media.Policy{Process: t.Process.Enabled, CompressOversize: t.Process.CompressOversize, OversizeLimit: t.Process.OversizeLimit}
	}
	a.Media = media.NewService(a.blobs, a.index, sourceAdapter{fetcher}, limits, media.WithLogger(log), media.WithEvents(bridge),
		media.WithProcessing(policy, sched))
	if a.transcoder != nil {
		a.mediaProc = process.New(a.Media, a.transcoder, func(tenantID string) (process.Settings, bool) {
			t, ok := cfg.Tenants[tenantID]
			if !ok {
				return process.Settings{}, false
			}
			return process.Settings{Enabled: t.Process.Enabled, Options: t.Process.Options, ReplaceAfter: t.Process.ReplaceAfter}, true
		}, sched, log, process.WithObserver(a.metrics.ObserveRendition))
	}
	// Provider outages last minutes, and a webhook's media ID lives 7 days:
	// retry for about 40 minutes before giving up.
	a.Queue = a.jobQueue(cfg, log, "jobs", 10, 5*time.Second, 30*time.Minute, bridge.failed)
	inbound, err := inboundRules(cfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.processor = worker.New(a.Media, func(tenantID string) (worker.Inbound, bool) {
		in, ok := inbound[tenantID]
		return in, ok
	})

	rates := func(tenantID string) (ratelimit.Limit, ratelimit.Limit) {
		kr, tr := cfg.Defaults.KeyRate, cfg.Defaults.TenantRte
		if t, ok := cfg.Tenants[tenantID]; ok {
			kr, tr = t.KeyRate, t.TenantRate
		}
		return limitOf(kr), limitOf(tr)
	}
	a.Handler = api.NewRouter(api.Deps{
		Media:  a.Media,
		Queue:  a.Queue,
		Hooks:  a.hooks,
		Feed:   a.feed,
		Claims: a.index,
		Webhooks: func(tenantID string) (api.WebhookAuth, bool) {
			t, ok := cfg.Tenants[tenantID]
			if !ok {
				return api.WebhookAuth{}, false
			}
			return api.WebhookAuth{
				MetaAppSecret: t.WhatsAppCloud.AppSecret, MetaVerifyToken: t.WhatsAppCloud.VerifyToken,
				TwilioAuthToken: t.Twilio.AuthToken, TwilioBaseURL: strings.TrimRight(t.Twilio.WebhookBaseURL, "/"),
				Dialog360Token: t.Dialog360.WebhookToken,
			}, true
		},
		WebhookRate: limitOf(cfg.Defaults.WebhookRate),
		Keys:        keys,
		Idempotency: idempotency.New(a.rdb, cfg.RedisPrefix),
		Limiter:     ratelimit.New(a.rdb, cfg.RedisPrefix),
		Rates:       rates,
		Signer:      signer,
		Presenter:   presenter,
		PublicURL:   cfg.PublicURL,
		Metrics:     a.metrics,
		Log:         log,
		Ready: func(ctx context.Context) map[string]error {
			return map[string]error{"redis": a.rdb.Ping(ctx).Err(), "storage": a.blobs.Ping(ctx)}
		},
		OpenAPI: contract.Spec,
		Schemas: contract.Schemas,
	})
	return a, nil
}

func openRedis(ctx context.Context, cfg *config.Config, log *slog.Logger) (redis.UniversalClient, *miniredis.Miniredis, error) {
	var rdb redis.UniversalClient
	var mini *miniredis.Miniredis
	switch {
	case cfg.RedisURL != "":
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb = redis.NewClient(opt)
	case len(cfg.RedisCluster) > 0:
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: cfg.RedisCluster, Password: cfg.RedisPassword})
	case len(cfg.RedisSentinel) > 0:
		rdb = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: cfg.RedisMaster, SentinelAddrs: cfg.RedisSentinel, Password: cfg.RedisPassword})
	default:
		mini = miniredis.NewMiniRedis()
		if err := mini.StartAddr("127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("embedded Redis: %w", err)
		}
		log.Warn("REDIS_URL is unset: using an embedded, in-memory Redis. It is not shared between replicas and loses idempotency records, rate limits and the index on restart (run `chatvault reindex` after one). Set REDIS_URL in production.")
		rdb = redis.NewClient(&redis.Options{Addr: mini.Addr()})
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		if mini != nil {
			mini.Close()
		}
		return nil, nil, fmt.Errorf("redis is not reachable: %w", err)
	}
	return rdb, mini, nil
}

// Serve runs the HTTP server and, unless cfg.Workers is 0, the queue
// workers, until ctx ends; then it lets in-flight requests and jobs finish
// within the shutdown timeout.
func (a *App) Serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	workersDone := make(chan error, 1)
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	if cfg.Workers > 0 {
		go func() { workersDone <- a.RunWorkers(wctx, cfg.Workers, log) }()
	} else {
		workersDone <- nil
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("chatvault listening", "addr", ln.Addr().String(), "storage", redactURL(cfg.StorageURL), "embedded_redis", a.mini != nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// Requests are done, so nothing new is queued by this process; let the
	// workers finish the jobs they hold.
	stopWorkers()
	if err := <-workersDone; err != nil {
		return fmt.Errorf("workers: %w", err)
	}
	log.Info("stopped")
	return nil
}

// RunWorkers processes queued jobs with n concurrent workers until ctx
// ends, then finishes the jobs in hand.
func (a *App) RunWorkers(ctx context.Context, n int, log *slog.Logger) error {
	host, _ := os.Hostname()
	consumer := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4))
	log.Info("queue workers running", "consumer", consumer, "workers", n)
	// Deliveries wait on the network, not the CPU: as many as archives.
	errc := make(chan error, 1)
	go func() { errc <- a.deliveries.Run(ctx, consumer, n, a.deliverer.Handle) }()
	perrc := make(chan error, 1)
	if a.mediaProc != nil {
		// ffmpeg is CPU-bound: as many processing workers as transcoder slots.
		go func() { perrc <- a.Processing.Run(ctx, consumer, a.procWorkers, worker.ProcessHandler(a.mediaProc)) }()
	} else {
		perrc <- nil
	}
	err := a.Queue.Run(ctx, consumer, n, a.processor.Handle)
	return errors.Join(err, <-errc, <-perrc)
}

// jobQueue is a queue of jobs the API exposes (GET /v1/jobs): errors map to
// HTTP statuses, results feed the metrics, and onDead hears of jobs that
// failed for good.
func (a *App) jobQueue(cfg *config.Config, log *slog.Logger, name string, attempts int, base, maxBackoff time.Duration,
	onDead func(context.Context, queue.Job, queue.JobError)) *queue.Queue {
	return queue.New(a.rdb, cfg.RedisPrefix, name,
		queue.WithErrorStatus(api.StatusOf),
		queue.WithMaxAttempts(attempts), queue.WithBackoff(base, maxBackoff),
		queue.WithVisibilityTimeout(cfg.JobVisibility),
		queue.WithHooks(queue.Hooks{
			OnResult: a.metrics.ObserveJob,
			OnError:  func(op string, err error) { log.Warn("queue", "queue", name, "op", op, "err", err) },
			OnDead:   onDead,
		}))
}

// buildTranscoder finds ffmpeg unless processing is off. Without it,
// "auto" turns processing off with a warning and "on" fails, except in a
// process that runs no workers (serve --no-workers): it only queues
// processing, for worker replicas that have ffmpeg.
func (a *App) buildTranscoder(cfg *config.Config, log *slog.Logger) error {
	if cfg.Processing == "off" {
		return nil
	}
	tc, err := transcode.New(transcode.Config{Concurrency: cfg.TranscodeWorkers, Timeout: cfg.TranscodeTimeout, TempDir: cfg.TranscodeTempDir})
	if err != nil {
		if cfg.Processing == "on" && cfg.Workers == 0 {
			log.Info("no ffmpeg here: processing jobs are queued for the worker replicas", "err", err)
			return nil
		}
		if cfg.Processing == "on" {
			return fmt.Errorf("CHATVAULT_PROCESSING=on: %w", err)
		}
		log.Warn("media processing is off: no probing and no renditions (scripts/install-ffmpeg.sh installs ffmpeg)", "err", err)
		return nil
	}
	a.transcoder = tc
	a.procWorkers = tc.Config().Concurrency
	return nil
}

// scheduler queues processing and replacement jobs.
type scheduler struct{ q *queue.Queue }

func (s scheduler) ScheduleProcessing(ctx context.Context, m media.Media) error {
	return s.enqueue(ctx, worker.TypeProcess, m, time.Time{})
}

func (s scheduler) ScheduleReplacement(ctx context.Context, m media.Media) error {
	if m.Original.ReplaceAfter == nil {
		return nil
	}
	return s.enqueue(ctx, worker.TypeReplace, m, *m.Original.ReplaceAfter)
}

func (s scheduler) enqueue(ctx context.Context, typ string, m media.Media, at time.Time) error {
	payload, err := json.Marshal(worker.MediaRef{MediaID: m.ID})
	if err != nil {
		return err
	}
	_, err = s.q.EnqueueAt(ctx, queue.Job{Type: typ, TenantID: m.TenantID, Payload: payload}, at)
	return err
}

// eventBaseURL is where content URLs in events point: the public URL, or
// the listen address for a local first run.
func eventBaseURL(cfg *config.Config) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return "http://localhost:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func limitOf(r config.Rate) ratelimit.Limit {
	return ratelimit.Limit{Rate: r.Count, Period: r.Period, Burst: r.Burst}
}

// inboundRules compiles each tenant's customer mapping and tagging rules
// once, so a bad template fails at start, not on the first webhook.
func inboundRules(cfg *config.Config) (map[string]worker.Inbound, error) {
	client := &http.Client{Timeout: webhook.LookupTimeout}
	out := map[string]worker.Inbound{}
	for id, t := range cfg.Tenants {
		mapper, err := webhook.NewMapper(webhook.Mapping{
			Template: t.Customers.Template, LookupURL: t.Customers.LookupURL,
			LookupHeader: t.Customers.LookupHeader, LookupValue: t.Customers.LookupValue,
		}, client)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: customer_mapping: %w", id, err)
		}
		var rules []webhook.TagRule
		for _, r := range t.AutoTags {
			rules = append(rules, webhook.TagRule{Tag: r.Tag, Kinds: r.Kinds, Voice: r.Voice, CaptionContains: r.CaptionContains, CaptionRegex: r.CaptionRegex})
		}
		compiled, err := webhook.CompileRules(rules)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: auto_tags: %w", id, err)
		}
		out[id] = worker.Inbound{Mapper: mapper, Rules: compiled}
	}
	return out, nil
}

// Close releases Redis and storage.
func (a *App) Close() {
	if a.blobs != nil {
		_ = a.blobs.Close()
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.mini != nil {
		a.mini.Close()
	}
}

// sourceAdapter lets the media package use the provider fetchers.
type sourceAdapter struct{ f *source.Fetcher }

func (s sourceAdapter) Fetch(ctx context.Context, tenantID string, src media.SourceRequest) (*media.Fetched, error) {
	r, err := s.f.Fetch(ctx, tenantID, source.Request{Type: src.Type, MediaID: src.MediaID, URL: src.URL})
	if err != nil {
		return nil, err
	}
	return &media.Fetched{Body: r.Body, MimeType: r.MimeType, Size: r.Size, SHA256: r.SHA256, Filename: r.Filename}, nil
}

func (s sourceAdapter) Identity(src media.SourceRequest) (string, error) {
	return source.Identity(source.Request{Type: src.Type, MediaID: src.MediaID, URL: src.URL})
}

// redactURL hides credentials in a storage URL before logging it.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "REDACTED" + u[i:]
		}
	}
	return u
}

// Blobs is the storage the service writes to (for tests and tools).
func (a *App) Blobs() *blobstore.Store { return a.blobs }
