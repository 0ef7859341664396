package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/queue"
)

// requireLoad skips load tests unless CHATVAULT_LOAD=1: they take tens of
// seconds and saturate the machine, so they are not part of the suite.
func requireLoad(t *testing.T) {
	t.Helper()
	if os.Getenv("CHATVAULT_LOAD") != "1" {
		t.Skip("load test: set CHATVAULT_LOAD=1 to run it")
	}
	if testing.Short() {
		t.Skip("load test: not with -short")
	}
}

// loopbackClient is the load generator's client: one shared transport with
// enough idle connections for maxConns requests in flight, which dials
// loopback addresses only, so a misconfigured base URL cannot turn a load
// test on anything else.
func loopbackClient(t *testing.T, base string, maxConns int) *http.Client {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		t.Fatalf("load tests target loopback addresses only, not %q", base)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("load test refuses to dial %s: not a loopback address", addr)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// latencySummary is the distribution of a set of latencies.
type latencySummary struct {
	n                            int
	p50, p90, p99, p999, max, mu time.Duration
}

func summarize(d []time.Duration) latencySummary {
	if len(d) == 0 {
		return latencySummary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	// Nearest rank: the smallest value with at least p of the sample at or
	// below it.
	rank := func(p float64) time.Duration {
		i := int(float64(len(s))*p+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return latencySummary{
		n: len(s), p50: rank(0.50), p90: rank(0.90), p99: rank(0.99), p999: rank(0.999),
		max: s[len(s)-1], mu: sum / time.Duration(len(s)),
	}
}

func (l latencySummary) String() string {
	r := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("n=%d mean=%s p50=%s p90=%s p99=%s p99.9=%s max=%s",
		l.n, r(l.mu), r(l.p50), r(l.p90), r(l.p99), r(l.p999), r(l.max))
}

// waitDrained waits until the queue holds nothing waiting, running or
// due for a retry, polling every poll, and returns when it saw that (zero
// time if the deadline passed first) and the last gauges.
func waitDrained(ctx context.Context, q *queue.Queue, poll time.Duration) (time.Time, queue.Stats, error) {
	var st queue.Stats
	for {
		var err error
		st, err = q.Stats(ctx)
		if err == nil && st.Length == 0 && st.Pending == 0 && st.Delayed == 0 {
			return time.Now(), st, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, st, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// archivedMessages lists every record of the customers and counts them by
// provider message ID.
func archivedMessages(t *testing.T, e *env, customers []string) (records int, byMessage map[string]int) {
	t.Helper()
	ctx := context.Background()
	byMessage = map[string]int{}
	for _, c := range customers {
		cursor := ""
		for {
			page, next, err := e.app.Media.List(ctx, "acme", c, media.ListQuery{Limit: media.MaxPageSize, Cursor: cursor})
			if err != nil {
				t.Fatalf("listing %s: %v", c, err)
			}
			for _, m := range page {
				records++
				byMessage[m.Source.MessageID]++
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return records, byMessage
}

// checkExactlyOnce fails unless every message in want has exactly one
// record and nothing else was archived.
func checkExactlyOnce(t *testing.T, records int, byMessage map[string]int, want []string) {
	t.Helper()
	var missing, doubled []string
	for _, id := range want {
		switch n := byMessage[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			doubled = append(doubled, fmt.Sprintf("%s×%d", id, n))
		}
	}
	if len(missing) > 0 || len(doubled) > 0 || records != len(want) {
		t.Errorf("%d records for %d messages; %d missing (%s), %d archived more than once (%s)",
			records, len(want), len(missing), headOf(missing), len(doubled), headOf(doubled))
	}
}

func headOf(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ", ") + ", …"
	}
	return strings.Join(s, ", ")
}

// heapSampler records the peak heap of the whole test process (service,
// stand-ins and load generator) every interval until stop.
type heapSampler struct {
	base, objects, inUse uint64 // bytes: in use before, peak objects (HeapAlloc), peak HeapInuse
	// live is the peak of the heap the last GC found reachable: objects
	// and inUse also count garbage not yet collected, which the GC lets
	// grow to about the live heap again (GOGC=100) before it runs.
	live    uint64
	samples int
	stop    func()
}

func sampleHeapEvery(interval time.Duration) *heapSampler {
	ms := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	read := func() (objects, inUse, live uint64) {
		metrics.Read(ms)
		o, u := ms[0].Value.Uint64(), ms[1].Value.Uint64()
		return o, o + u, ms[2].Value.Uint64()
	}
	runtime.GC()
	runtime.GC()
	h := &heapSampler{}
	_, h.base, _ = read()
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			o, u, l := read()
			h.objects, h.inUse, h.live = max(h.objects, o), max(h.inUse, u), max(h.live, l)
			h.samples++
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	h.stop = func() { once.Do(func() { close(done); <-finished }) }
	return h
}

const mib = 1 << 20
