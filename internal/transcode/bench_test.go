package transcode_test

import (
	"context"
	"io"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/transcode"
)

// reportRate reports renditions per minute of wall time and per minute of
// one core's time: the CPU time of this process and of its ffmpeg and
// ffprobe children since start, so the per-core figure does not depend on
// how many renders ran at once.
func reportRate(b *testing.B, n int, start cpuTime) {
	b.ReportMetric(float64(n)/b.Elapsed().Minutes(), "renditions/min")
	cpu := cpuNow() - start
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Milliseconds())/float64(n), "cpu-ms/op")
		b.ReportMetric(float64(n)/cpu.Minutes(), "renditions/core-min")
	}
}

type cpuTime = time.Duration

func cpuNow() cpuTime {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// benchRender reports a failure with Error, not Fatal: RunParallel's
// goroutines may not stop the benchmark.
func benchRender(b *testing.B, tc *transcode.Transcoder, spec transcode.Spec, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	if _, err := tc.Render(context.Background(), spec, f, io.Discard); err != nil {
		b.Error(err)
	}
}

// BenchmarkVoiceNoteToMP3 renders a 10 s Opus voice note to MP3, the whole
// Render (spool, ffmpeg, ffprobe of the output, copy). "serial" is one at a
// time; "parallel" keeps every core busy with Concurrency = NumCPU, the
// product's throughput figure.
func BenchmarkVoiceNoteToMP3(b *testing.B) {
	path := fixture(b, "voice.ogg")
	spec := transcode.Spec{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}
	b.Run("serial", func(b *testing.B) {
		tc := newTranscoder(b, transcode.Config{})
		start := cpuNow()
		for b.Loop() {
			benchRender(b, tc, spec, path)
		}
		reportRate(b, b.N, start)
	})
	b.Run("parallel", func(b *testing.B) {
		tc := newTranscoder(b, transcode.Config{Concurrency: runtime.NumCPU()})
		b.SetParallelism(2) // more callers than slots, as in a busy worker
		start := cpuNow()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				benchRender(b, tc, spec, path)
			}
		})
		reportRate(b, b.N, start)
	})
}

// BenchmarkVideo720pToMP4 renders 30 s of 720p H.264 + AAC to the MP4
// rendition (libx264 at the default preset and CRF), one at a time.
func BenchmarkVideo720pToMP4(b *testing.B) {
	path := fixture(b, "video30.mp4")
	tc := newTranscoder(b, transcode.Config{})
	spec := transcode.Spec{Name: "mp4", MimeType: "video/mp4", Ext: "mp4"}
	start := cpuNow()
	for b.Loop() {
		benchRender(b, tc, spec, path)
	}
	reportRate(b, b.N, start)
}
