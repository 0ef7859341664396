package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus series the service exports, on a registry of
// its own so tests can build many routers.
type Metrics struct {
	registry      *prometheus.Registry
	Requests      *prometheus.CounterVec
	Latency       *prometheus.HistogramVec
	ArchivedBytes prometheus.Counter
	Archives      *prometheus.CounterVec
	RateLimited   *prometheus.CounterVec
	WebhookMedia  *prometheus.CounterVec
	Jobs          *prometheus.CounterVec
	JobDuration   *prometheus.HistogramVec
	// Renditions count each rendition run by result ("made" or an error
	// kind): broken media fail a rendition without failing its job, so
	// job outcomes alone would hide them.
	Renditions        *prometheus.CounterVec
	RenditionDuration *prometheus.HistogramVec
	RenditionBytes    *prometheus.CounterVec
}

// NewMetrics registers every series, plus Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatvault_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "route"}),
		ArchivedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatvault_archived_bytes_total", Help: "Bytes of media archived (new records only).",
		}),
		Archives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_archives_total", Help: "Archive attempts by result: created, deduplicated or an error kind.",
		}, []string{"result"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_ratelimit_rejections_total", Help: "Requests refused with 429, by policy.",
		}, []string{"policy"}),
		WebhookMedia: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_webhook_media_queued_total", Help: "Media queued from provider webhooks, by provider.",
		}, []string{"provider"}),
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_jobs_total", Help: "Queue deliveries by job type and outcome.",
		}, []string{"type", "outcome"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatvault_job_duration_seconds", Help: "Time a job's handler ran, by type.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"type"}),
		Renditions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_renditions_total", Help: "Renditions attempted by name (mp3, m4a, mp4, poster, thumb, probe) and result: made or an error kind.",
		}, []string{"rendition", "result"}),
		RenditionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatvault_rendition_duration_seconds", Help: "Time to make and store a rendition (ffmpeg, output check, upload), by name.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"rendition"}),
		RenditionBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatvault_rendition_bytes_total", Help: "Bytes of renditions stored, by name.",
		}, []string{"rendition"}),
	}
	m.registry.MustRegister(m.Requests, m.Latency, m.ArchivedBytes, m.Archives, m.RateLimited, m.WebhookMedia, m.Jobs, m.JobDuration,
		m.Renditions, m.RenditionDuration, m.RenditionBytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveJob feeds the queue's results hook.
func (m *Metrics) ObserveJob(jobType, outcome string, d time.Duration) {
	m.Jobs.WithLabelValues(jobType, outcome).Inc()
	m.JobDuration.WithLabelValues(jobType).Observe(d.Seconds())
}

// ObserveRendition feeds the processor's rendition hook. result is "made"
// or an error kind; size is 0 unless made.
func (m *Metrics) ObserveRendition(rendition, result string, d time.Duration, size int64) {
	m.Renditions.WithLabelValues(rendition, result).Inc()
	if result == "made" {
		m.RenditionDuration.WithLabelValues(rendition).Observe(d.Seconds())
		m.RenditionBytes.WithLabelValues(rendition).Add(float64(size))
	}
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *Metrics) observeRequest(method, route string, status int, d time.Duration) {
	m.Requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.Latency.WithLabelValues(method, route).Observe(d.Seconds())
}
