package media_test

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/source/sourcetest"
	"github.com/chatvault/chatvault/internal/testenv"
)

// heapPeaks samples the heap every millisecond until stop is called.
// objects is what live and not-yet-swept objects occupy (HeapAlloc), the
// figure the bound applies to; inUse adds the free space inside spans
// holding objects (HeapInuse) and is logged alongside.
type heapPeaks struct {
	base, objects, inUse uint64
	stop                 func()
}

func sampleHeap() *heapPeaks {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	read := func() (objects, inUse uint64) {
		metrics.Read(samples)
		o, u := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		return o, o + u
	}
	// Twice: buffers parked in a sync.Pool (an earlier S3 store's part
	// buffers, say) survive one collection in the pool's victim cache.
	runtime.GC()
	runtime.GC()
	p := &heapPeaks{}
	_, p.base = read()

	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			o, u := read()
			p.objects, p.inUse = max(p.objects, o), max(p.inUse, u)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	p.stop = func() {
		close(done)
		<-finished
	}
	return p
}

// TestArchiveMemoryEightConcurrent64MiB runs eight archives of 64 MiB
// documents at once and checks that the heap stays under 64 MiB: the pass
// streams, so memory is bounded by buffers per archive, never by file
// size. It is not parallel, so that no other test's allocations count.
func TestArchiveMemoryEightConcurrent64MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB through the archive pass")
	}
	const (
		size     = 64 * sourcetest.MiB
		archives = 8
	)
	for _, store := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"file", testenv.FileStore},
		// 8 writers each hold one 5 MiB part buffer at the default part
		// size and upload concurrency, 40 MiB in all.
		{"s3", testenv.S3},
	} {
		t.Run(store.name, func(t *testing.T) {
			content := benchPDF(size, 64)
			want := content.SHA256()
			rig := newBenchRig(t, store.url(t), content)
			ctx := context.Background()
			// Warm up the connections and the writers' code paths, so the
			// measurement shows steady state rather than first use.
			m, err := rig.archive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := rig.svc.Delete(ctx, benchTenant, m.ID); err != nil {
				t.Fatal(err)
			}

			peaks := sampleHeap()
			start := time.Now()
			results := make([]media.Media, archives)
			errs := make([]error, archives)
			var wg sync.WaitGroup
			for i := range archives {
				wg.Go(func() { results[i], errs[i] = rig.archive(ctx) })
			}
			wg.Wait()
			took := time.Since(start)
			peaks.stop()

			for i, err := range errs {
				if err != nil {
					t.Fatalf("archive %d: %v", i, err)
				}
				if m := results[i]; m.SizeBytes != size || m.SHA256 != want || m.Kind != media.KindDocument {
					t.Fatalf("archive %d: %d bytes, sha256 %s, kind %s; want %d, %s, document", i, m.SizeBytes, m.SHA256, m.Kind, size, want)
				}
			}
			const mib = 1 << 20
			t.Logf("%d × %d MiB to %s in %v (%.0f MB/s): heap objects peaked at %.1f MiB (in use %.1f MiB; %.1f MiB in use before), budget %d MiB (race detector: %v)",
				archives, size/mib, store.name, took.Round(time.Millisecond), float64(archives*size)/took.Seconds()/1e6,
				float64(peaks.objects)/mib, float64(peaks.inUse)/mib, float64(peaks.base)/mib, memHeapBudget/mib, memRaceEnabled)
			if peaks.objects >= memHeapBudget {
				t.Errorf("heap objects peaked at %.1f MiB with %d concurrent archives of %d MiB; want under %d MiB",
					float64(peaks.objects)/mib, archives, size/mib, memHeapBudget/mib)
			}
		})
	}
}
