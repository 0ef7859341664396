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
	}
	m.registry.MustRegister(m.Requests, m.Latency, m.ArchivedBytes, m.Archives, m.RateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *Metrics) observeRequest(method, route string, status int, d time.Duration) {
	m.Requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.Latency.WithLabelValues(method, route).Observe(d.Seconds())
}
