package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/mediatest"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
)

// The load tests run only with CHATVAULT_LOAD=1 and are described, with
// their figures, in docs/BENCHMARKS.md ("Webhooks and queue"). They drive
// the real service in-process (real Redis, a file store, the Graph
// stand-in, the harness's queue workers) through a plain HTTP client: load
// traffic is not contract-checked, the functional tests do that.

// delivery is one signed Meta webhook request.
type delivery struct {
	body []byte
	sig  string
}

// shot is the outcome of one request of a load run.
type shot struct {
	latency      time.Duration // from sending to the whole answer read
	fromSchedule time.Duration // from when it was due to be sent to the answer read
	status       int
	ok           bool // 200 and the ack says one message was queued
	err          error
}

// loadRun is what an open-loop run measured.
type loadRun struct {
	shots    []shot
	took     time.Duration // first send to last answer
	sending  time.Duration // first send to last send
	waited   int           // sends that found every in-flight slot taken
	peakBusy int64         // most requests in flight at once
}

// sendWebhook posts one delivery and reads the whole answer.
func sendWebhook(ctx context.Context, client *http.Client, target string, d delivery) shot {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(d.body))
	if err != nil {
		return shot{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", d.sig)
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return shot{latency: time.Since(began), err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := shot{latency: time.Since(began), status: resp.StatusCode, err: err}
	s.ok = err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"queued":1`))
	if !s.ok && s.err == nil {
		s.err = fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
	}
	return s
}

// openLoop sends ds[i] at start + i/rate whatever the answers do: a ticker
// wakes the sender, which starts every request due by then (so a late tick
// costs no requests) on its own goroutine and never waits for an answer,
// only for a free slot when inflight requests are already out.
func openLoop(ctx context.Context, client *http.Client, target string, ds []delivery, rate, inflight int) loadRun {
	interval := time.Second / time.Duration(rate)
	run := loadRun{shots: make([]shot, len(ds))}
	slots := make(chan struct{}, inflight)
	var busy, peak atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	next := 0
	for next < len(ds) && ctx.Err() == nil {
		due := min(int(time.Since(start)/interval)+1, len(ds))
		for ; next < due; next++ {
			select {
			case slots <- struct{}{}:
			default:
				run.waited++
				slots <- struct{}{}
			}
			scheduled := start.Add(time.Duration(next) * interval)
			i := next
			wg.Go(func() {
				defer func() { <-slots }()
				n := busy.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				s := sendWebhook(ctx, client, target, ds[i])
				busy.Add(-1)
				s.fromSchedule = time.Since(scheduled)
				run.shots[i] = s
			})
		}
		run.sending = time.Since(start)
		if next < len(ds) {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}
	wg.Wait()
	run.took = time.Since(start)
	run.peakBusy = peak.Load()
	return run
}

// failures counts the shots that were not a 200 queuing one message, and
// returns the first error seen.
func failures(shots []shot) (n int, first error) {
	for _, s := range shots {
		if !s.ok {
			n++
			if first == nil {
				first = s.err
				if first == nil {
					first = fmt.Errorf("not sent")
				}
			}
		}
	}
	return n, first
}

func latencies(shots []shot, fromSchedule bool) []time.Duration {
	out := make([]time.Duration, 0, len(shots))
	for _, s := range shots {
		if fromSchedule {
			out = append(out, s.fromSchedule)
		} else {
			out = append(out, s.latency)
		}
	}
	return out
}

// signedDelivery is one Meta delivery of one media message.
func signedDelivery(from, wamid, typ, mediaID string, fields map[string]any) delivery {
	body := metaPayload([]map[string]any{contact(from, "Load")}, metaMessage(from, wamid, typ, mediaID, fields))
	return delivery{body: body, sig: metaSign(body)}
}

// TestWebhookAckLatency measures how fast the Meta webhook acknowledges
// under an open-loop load of 500 deliveries a second for 10 s, while the
// harness's workers archive every one of them on the same machine. It
// asserts only correctness (every answer 200, every media archived exactly
// once); the latency figures are logged, for docs/BENCHMARKS.md.
func TestWebhookAckLatency(t *testing.T) {
	requireLoad(t)
	const (
		rate      = 500
		requests  = 5000 // 10 s at rate
		warmup    = 250  // 0.5 s at rate, not measured: connections, scripts, code paths
		inflight  = 256
		customers = 50
	)
	e := newEnv(t, envOptions{})
	client := loopbackClient(t, e.srv.URL, inflight)
	target := e.srv.URL + "/v1/webhooks/whatsapp/acme"

	total := warmup + requests
	ds := make([]delivery, total)
	wamids := make([]string, total)
	customerIDs := make([]string, customers)
	for c := range customers {
		customerIDs[c] = "wa:" + waNumber(c)
	}
	for i := range total {
		mediaID := strconv.Itoa(500_000_000 + i)
		e.graph.AddMedia(mediaID, sourcetest.Bytes(mediatest.OggOpus(2048, uint64(i))), "audio/ogg")
		wamids[i] = fmt.Sprintf("wamid.LAT%06d", i)
		ds[i] = signedDelivery(waNumber(i%customers), wamids[i], "audio", mediaID,
			map[string]any{"mime_type": "audio/ogg; codecs=opus", "voice": true})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if n, err := failures(openLoop(ctx, client, target, ds[:warmup], rate, inflight).shots); n > 0 {
		t.Fatalf("warm-up: %d of %d deliveries failed; first: %v", n, warmup, err)
	}
	runtime.GC()

	run := openLoop(ctx, client, target, ds[warmup:], rate, inflight)
	lastAnswer := time.Now()
	bad, firstErr := failures(run.shots)
	svc := summarize(latencies(run.shots, false))
	sched := summarize(latencies(run.shots, true))
	t.Logf("open loop: %d deliveries at %d/s (%d warm-up before), %d not 200: sent in %v (%.1f/s achieved), all answered in %v",
		requests, rate, warmup, bad, run.sending.Round(time.Millisecond), float64(requests-1)/run.sending.Seconds(), run.took.Round(time.Millisecond))
	t.Logf("ack latency (send → answer read): %v", svc)
	t.Logf("from the scheduled send time (includes sender lag): %v", sched)
	t.Logf("in flight at most %d; %d sends waited for one of the %d slots", run.peakBusy, run.waited, inflight)
	if bad > 0 {
		t.Errorf("%d of %d deliveries were not acknowledged with 200 and queued 1; first: %v", bad, requests, firstErr)
	}

	drained, st, err := waitDrained(ctx, e.app.Queue, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("the queue did not drain in time: %+v", st)
	}
	records, byMessage := archivedMessages(t, e, customerIDs)
	t.Logf("archived %d records for %d deliveries; queue drained %v after the last answer (dead letters %d, Graph downloads %d)",
		records, total, drained.Sub(lastAnswer).Round(time.Millisecond), st.Dead, e.graph.Downloads())
	checkExactlyOnce(t, records, byMessage, wamids)
	if st.Dead != 0 {
		t.Errorf("%d jobs were dead-lettered", st.Dead)
	}
}

// TestBurstThousandMedia delivers 1,000 media messages of 1 MiB as fast as
// 50 senders can, then measures how long the workers take to archive them
// all and the peak heap of the whole process during the burst.
func TestBurstThousandMedia(t *testing.T) {
	requireLoad(t)
	const (
		n         = 1000
		size      = 1 * sourcetest.MiB
		senders   = 50
		customers = 100
	)
	// The harness runs 4 workers; production defaults to 8 (CHATVAULT_WORKERS).
	workers := 8
	if v := os.Getenv("CHATVAULT_LOAD_WORKERS"); v != "" {
		w, err := strconv.Atoi(v)
		if err != nil || w < 4 || w > 64 {
			t.Fatalf("CHATVAULT_LOAD_WORKERS=%q: want 4 to 64", v)
		}
		workers = w
	}
	e := newEnv(t, envOptions{})
	if extra := workers - 4; extra > 0 {
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.app.RunWorkers(wctx, extra, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		t.Cleanup(func() { // runs before the harness's cleanup closes the app
			stop()
			if err := <-done; err != nil {
				t.Errorf("extra workers: %v", err)
			}
		})
	}

	// Half voice notes, half PDF documents: real container heads, so the
	// sniff accepts them, then generated bytes streamed on every download.
	voiceHead, pdfHead := mediatest.OggOpus(0, 0), mediatest.PDF(0, 0)
	ds := make([]delivery, n)
	wamids := make([]string, n)
	customerIDs := make([]string, customers)
	for c := range customers {
		customerIDs[c] = "wa:" + waNumber(c)
	}
	var setup sync.WaitGroup
	for part := range 2 { // AddMedia hashes each body once: 1 GiB in all
		setup.Go(func() {
			for i := part; i < n; i += 2 {
				head, mime, typ, fields := voiceHead, "audio/ogg", "audio", map[string]any{"mime_type": "audio/ogg; codecs=opus", "voice": true}
				if i%2 == 1 {
					head, mime, typ = pdfHead, "application/pdf", "document"
					fields = map[string]any{"mime_type": "application/pdf", "filename": fmt.Sprintf("doc-%d.pdf", i)}
				}
				seed := uint64(i)
				content := sourcetest.Stream(size, func() io.Reader {
					return io.MultiReader(bytes.NewReader(head), sourcetest.Generated(size-int64(len(head)), seed).Open())
				})
				mediaID := strconv.Itoa(700_000_000 + i)
				e.graph.AddMedia(mediaID, content, mime)
				wamids[i] = fmt.Sprintf("wamid.BURST%05d", i)
				ds[i] = signedDelivery(waNumber(i%customers), wamids[i], typ, mediaID, fields)
			}
		})
	}
	setup.Wait()
	client := loopbackClient(t, e.srv.URL, senders)
	target := e.srv.URL + "/v1/webhooks/whatsapp/acme"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	heap := sampleHeapEvery(2 * time.Millisecond)
	defer heap.stop()
	start := time.Now()
	shots := make([]shot, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				shots[i] = sendWebhook(ctx, client, target, ds[i])
			}
		})
	}
	wg.Wait()
	acked := time.Since(start)
	bad, firstErr := failures(shots)
	if bad > 0 {
		t.Errorf("%d of %d deliveries were not acknowledged with 200 and queued 1; first: %v", bad, n, firstErr)
	}
	drained, st, err := waitDrained(ctx, e.app.Queue, 5*time.Millisecond)
	heap.stop()
	if err != nil {
		t.Fatalf("the queue did not drain in time: %+v", st)
	}
	archived := drained.Sub(start)
	records, byMessage := archivedMessages(t, e, customerIDs)

	t.Logf("%d × %d MiB media (half voice notes, half PDFs), %d senders, %d workers, %d CPUs",
		n, size/mib, senders, workers, runtime.GOMAXPROCS(0))
	t.Logf("acknowledged all in %v (%.0f deliveries/s); ack latency under the burst: %v",
		acked.Round(time.Millisecond), n/acked.Seconds(), summarize(latencies(shots, false)))
	t.Logf("archived all in %v from the first send: %.1f media/s, %.0f MB/s (%.0f MiB/s)",
		archived.Round(time.Millisecond), n/archived.Seconds(), n*size/archived.Seconds()/1e6, n*size/archived.Seconds()/mib)
	t.Logf("peak heap, whole process (service, Graph stand-in, senders), sampled every 2 ms (%d samples): objects %.1f MiB, in use %.1f MiB, live after a GC %.1f MiB; in use before %.1f MiB",
		heap.samples, float64(heap.objects)/mib, float64(heap.inUse)/mib, float64(heap.live)/mib, float64(heap.base)/mib)
	t.Logf("records %d, dead letters %d, Graph downloads %d", records, st.Dead, e.graph.Downloads())
	checkExactlyOnce(t, records, byMessage, wamids)
	if st.Dead != 0 {
		t.Errorf("%d jobs were dead-lettered", st.Dead)
	}
}

// waNumber is the WhatsApp number of load test customer c.
func waNumber(c int) string { return fmt.Sprintf("49151%07d", c) }
