package transcode_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault/internal/transcode"
)

// The sample set: WhatsApp-like media made by ffmpeg itself, to measure
// what the renditions cost or save in storage and how fast they are made.
// BenchmarkSampleSet runs only with CHATVAULT_SAMPLESET=1 (making the set
// takes about a minute on 2 cores, rendering it a few minutes more):
//
//	CHATVAULT_SAMPLESET=1 go test -run '^$' -bench SampleSet -benchtime 1x -timeout 30m ./internal/transcode/
//
// CHATVAULT_SAMPLESET_DIR keeps the set in a folder to reuse between runs.

type sample struct {
	name string // file name, in the sample set folder
	kind string // as the archive classifies it: audio, video, image
	desc string
	text string   // for voice notes: flite's script, written to name+".txt"
	args []string // ffmpeg arguments before the output, run in the set's folder
}

// speech is what the synthetic voices say: plain sentences, so flite's
// output has the pauses and pitch changes of speech, not a steady tone.
var speech = []string{
	"Hi, it's me. I'm on the bus now, it is running about ten minutes late because of the roadworks on the main street.",
	"Can you check whether the invoice from last Tuesday was paid? The customer called twice this morning and sounded upset.",
	"Also, don't forget that the delivery is planned for Friday between nine and eleven, so somebody has to be at the warehouse.",
	"I sent you the photos of the damaged boxes, please forward them to the insurance with the order number and the date.",
	"By the way, the meeting with the supplier moved to Thursday afternoon. They want to talk about the new prices for next year.",
	"Okay, that's all for now. Call me back when you have a minute, or just send a message if it's easier. Thanks, bye.",
}

// script returns at least seconds of speech: flite says about three words
// a second.
func script(seconds, start int) string {
	var b strings.Builder
	for i, words := start, 0; words < seconds*3; i++ {
		s := speech[i%len(speech)]
		b.WriteString(s + " ")
		words += len(strings.Fields(s))
	}
	return b.String()
}

// voiceNote is a WhatsApp voice note: a synthetic voice over faint room
// noise, mono 16 kHz, Opus at 24 kbit/s in Ogg.
func voiceNote(seconds int, voice string, start int) sample {
	name := fmt.Sprintf("voice-%02ds-%s.ogg", seconds, voice)
	d := fmt.Sprint(seconds)
	return sample{
		name: name, kind: "audio", text: script(seconds, start),
		desc: fmt.Sprintf("voice note, %d s, flite %s + pink noise, Opus 24k mono 16 kHz", seconds, voice),
		args: []string{
			"-filter_complex", "flite=textfile=" + name + ".txt:voice=" + voice + ",aresample=16000,apad,atrim=0:" + d + "[s];" +
				"anoisesrc=color=pink:amplitude=0.02:sample_rate=16000:seed=" + fmt.Sprint(start+1) + ":duration=" + d + "[n];" +
				"[s][n]amix=inputs=2:duration=first:normalize=0[a]",
			"-map", "[a]", "-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "24k", "-application", "voip", "-f", "ogg",
		},
	}
}

// phoneVideo is a phone recording as WhatsApp keeps it: H.264 High at a
// phone's bit rate (ABR, 1 s GOP) over moving test patterns with sensor-like
// temporal noise, and AAC 128k stereo of a voice over street noise.
func phoneVideo(w, h, seconds int, rate string) sample {
	d := fmt.Sprint(seconds)
	name := fmt.Sprintf("video-%dx%d-%02ds-%s.mp4", w, h, seconds, rate)
	return sample{
		name: name, kind: "video", text: script(seconds, seconds),
		desc: fmt.Sprintf("phone video, %dx%d 30 fps, %d s, H.264 %sbit/s + AAC 128k", w, h, seconds, rate),
		args: []string{
			"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=30:duration=%s,", w, h, d) +
				"noise=c0s=12:c0f=t+u:c1s=6:c1f=t+u:c2s=6:c2f=t+u:all_seed=" + d,
			"-filter_complex", "flite=textfile=" + name + ".txt:voice=slt,aresample=48000,apad,atrim=0:" + d + "[s];" +
				"anoisesrc=color=pink:amplitude=0.05:sample_rate=48000:duration=" + d + "[n];" +
				"[s][n]amix=inputs=2:duration=first:normalize=0,aformat=channel_layouts=stereo[a]",
			"-map", "0:v", "-map", "[a]",
			"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
			"-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-g", "30",
			"-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-f", "mp4",
		},
	}
}

var sampleSet = []sample{
	voiceNote(5, "kal16", 0),
	voiceNote(10, "slt", 1),
	voiceNote(20, "rms", 2),
	voiceNote(30, "awb", 3),
	voiceNote(60, "slt", 4),

	phoneVideo(1280, 720, 10, "2.5M"),
	phoneVideo(1280, 720, 30, "4M"),
	phoneVideo(1920, 1080, 20, "8M"),
	phoneVideo(1080, 1920, 15, "6M"),

	{name: "photo-fractal.jpg", kind: "image", desc: "photo, 1600x1200 JPEG q3: fractal detail + grain",
		args: []string{"-f", "lavfi", "-i", "mandelbrot=size=1600x1200:maxiter=1024:start_scale=0.5:end_scale=0.5:" +
			"start_x=-0.743643887037158704752191506114774:start_y=-0.131825904205311970493132056385139,noise=alls=6:allf=u",
			"-frames:v", "1", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3", "-update", "1", "-f", "image2"}},
	{name: "photo-portrait.jpg", kind: "image", desc: "photo, 1200x1600 JPEG q3: fractal detail + grain",
		args: []string{"-f", "lavfi", "-i", "mandelbrot=size=1200x1600:maxiter=1024:start_scale=1.5:end_scale=1.5:" +
			"start_x=-0.75:start_y=0.1,noise=alls=8:allf=u",
			"-frames:v", "1", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3", "-update", "1", "-f", "image2"}},
	{name: "photo-gradient.jpg", kind: "image", desc: "photo, 1600x1200 JPEG q4: smooth gradients + grain",
		args: []string{"-f", "lavfi", "-i", "gradients=size=1600x1200:nb_colors=4:seed=7,noise=alls=10:allf=u",
			"-frames:v", "1", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "4", "-update", "1", "-f", "image2"}},
	{name: "screenshot.png", kind: "image", desc: "screenshot, 1080x2400 PNG: flat test pattern",
		args: []string{"-f", "lavfi", "-i", "testsrc2=size=1080x2400", "-frames:v", "1", "-c:v", "png", "-update", "1", "-f", "image2"}},
	{name: "cellauto.png", kind: "image", desc: "graphic, 1600x1200 PNG: cellular automaton",
		args: []string{"-f", "lavfi", "-i", "cellauto=size=1600x1200:rule=110", "-frames:v", "1", "-c:v", "png", "-update", "1", "-f", "image2"}},
}

var sampleSetOnce struct {
	sync.Once
	dir string
	err error
}

// sampleSetDir makes the sample set, once per test binary, or reuses the
// files already in CHATVAULT_SAMPLESET_DIR.
func sampleSetDir(b *testing.B) string {
	ffmpeg := ffmpegBin(b)
	sampleSetOnce.Do(func() {
		dir := os.Getenv("CHATVAULT_SAMPLESET_DIR")
		if dir == "" {
			dir = filepath.Join(fixtures.dir, "sampleset")
		}
		sampleSetOnce.dir = dir
		if err := os.MkdirAll(dir, 0o700); err != nil {
			sampleSetOnce.err = err
			return
		}
		for _, s := range sampleSet {
			if fi, err := os.Stat(filepath.Join(dir, s.name)); err == nil && fi.Size() > 0 {
				continue
			}
			if s.text != "" {
				if err := os.WriteFile(filepath.Join(dir, s.name+".txt"), []byte(s.text), 0o600); err != nil {
					sampleSetOnce.err = err
					return
				}
			}
			start := time.Now()
			args := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, s.args...)
			cmd := exec.Command(ffmpeg, append(args, s.name+".part")...)
			cmd.Dir = dir // flite's textfile is named relative to it
			if out, err := cmd.CombinedOutput(); err != nil {
				sampleSetOnce.err = fmt.Errorf("make %s: %v: %s", s.name, err, out)
				return
			}
			if err := os.Rename(filepath.Join(dir, s.name+".part"), filepath.Join(dir, s.name)); err != nil {
				sampleSetOnce.err = err
				return
			}
			b.Logf("made %s in %v", s.name, time.Since(start).Round(time.Millisecond))
		}
	})
	if sampleSetOnce.err != nil {
		b.Fatal(sampleSetOnce.err)
	}
	return sampleSetOnce.dir
}

// countingWriter counts and discards.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// processed is what one media of the set gave.
type processed struct {
	orig       int64
	probe      transcode.Probe
	renditions []transcode.Spec
	sizes      []int64
	wall       time.Duration
}

// replacing is a rendition that could stand in for its original: the
// audio and video ones. Posters and thumbnails only come in addition.
func replacing(name string) bool { return name == "mp3" || name == "m4a" || name == "mp4" }

// process runs the archive's path for one media: open (spool), probe, plan
// with o, render every planned rendition, close.
func process(ctx context.Context, tc *transcode.Transcoder, path, kind string, o transcode.Options) (processed, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return processed{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return processed{}, err
	}
	in, err := tc.Open(ctx, f)
	if err != nil {
		return processed{}, err
	}
	defer in.Close()
	p, err := in.Probe(ctx)
	if err != nil || p.Error != "" {
		return processed{}, fmt.Errorf("probe %s: %+v, %v", filepath.Base(path), p, err)
	}
	r := processed{orig: fi.Size(), probe: p, renditions: tc.PlanWith(kind, p, o)}
	for _, spec := range r.renditions {
		var w countingWriter
		if _, err := in.Render(ctx, spec, &w); err != nil {
			return processed{}, fmt.Errorf("render %s of %s: %v", spec.Name, filepath.Base(path), err)
		}
		r.sizes = append(r.sizes, w.n)
	}
	r.wall = time.Since(start)
	return r, nil
}

// BenchmarkSampleSet measures, per kind, what the planned renditions weigh
// against their originals, and how fast a 10 s voice note and a 30 s 720p
// video go through the archive's path (open, probe, plan, render all,
// close). One iteration renders the whole kind; run it with -benchtime 1x.
func BenchmarkSampleSet(b *testing.B) {
	if os.Getenv("CHATVAULT_SAMPLESET") != "1" {
		b.Skip("set CHATVAULT_SAMPLESET=1 to make and measure the sample set (several minutes)")
	}
	dir := sampleSetDir(b)
	ctx := context.Background()

	sizes := []struct {
		name string
		kind string
		o    transcode.Options
	}{
		{"voice/default", "audio", transcode.Options{}},
		{"voice/mp3-32k", "audio", transcode.Options{Params: transcode.Params{AudioBitrate: "32k"}}},
		{"voice/m4a-32k", "audio", transcode.Options{AudioFormat: "m4a", Params: transcode.Params{AudioBitrate: "32k"}}},
		{"video/default", "video", transcode.Options{}},
		{"video/480p", "video", transcode.Options{Params: transcode.Params{VideoMaxHeight: 480}}},
		{"image/default", "image", transcode.Options{}},
		{"image/jpeg", "image", transcode.Options{ThumbFormat: "jpeg"}},
	}
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			tc := newTranscoder(b, transcode.Config{})
			var orig, all, main, mainOrig int64
			var results []processed
			var media, renditions int
			start := cpuNow()
			for b.Loop() {
				results = results[:0]
				for _, s := range sampleSet {
					if s.kind != sz.kind {
						continue
					}
					r, err := process(ctx, tc, filepath.Join(dir, s.name), s.kind, sz.o)
					if err != nil {
						b.Fatal(err)
					}
					results = append(results, r)
					media++
					renditions += len(r.renditions)
				}
			}
			var lines []string
			i := 0
			for _, s := range sampleSet {
				if s.kind != sz.kind {
					continue
				}
				r := results[i]
				i++
				orig += r.orig
				line := fmt.Sprintf("%-34s %9d B  %5.0f kbit/s  %4dx%-4d %6.1f s ->", s.name, r.orig,
					float64(r.probe.BitRate)/1000, r.probe.Width, r.probe.Height, float64(r.probe.DurationMS)/1000)
				for j, spec := range r.renditions {
					all += r.sizes[j]
					if replacing(spec.Name) {
						main += r.sizes[j]
						mainOrig += r.orig
					}
					line += fmt.Sprintf("  %s.%s %d B (%+.0f%%)", spec.Name, spec.Ext, r.sizes[j], 100*(float64(r.sizes[j])/float64(r.orig)-1))
				}
				lines = append(lines, line+fmt.Sprintf("  in %v", r.wall.Round(time.Millisecond)))
			}
			b.Logf("%s, %s:\n%s", sz.name, optionsString(sz.o), strings.Join(lines, "\n"))

			b.ReportMetric(float64(orig), "orig-B")
			b.ReportMetric(float64(all), "renditions-B")
			b.ReportMetric(100*float64(all)/float64(orig), "renditions-%-of-orig")
			if mainOrig > 0 {
				// Negative: replacing the originals by their renditions
				// would take more room, not less.
				b.ReportMetric(100*(1-float64(main)/float64(mainOrig)), "saved-%-if-replaced")
			}
			b.ReportMetric(float64(media)/b.Elapsed().Minutes(), "media/min")
			b.ReportMetric(float64(renditions)/b.Elapsed().Minutes(), "renditions/min")
			if cpu := cpuNow() - start; cpu > 0 {
				b.ReportMetric(float64(renditions)/cpu.Minutes(), "renditions/core-min")
			}
		})
	}

	rates := []struct {
		name string
		file string
		kind string
		n    int // media per iteration
	}{
		{"rate/voice-10s", voiceNote(10, "slt", 1).name, "audio", 20},
		{"rate/video-720p-30s", phoneVideo(1280, 720, 30, "4M").name, "video", 4},
	}
	for _, rt := range rates {
		for _, parallel := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%d-at-once", rt.name, parallel), func(b *testing.B) {
				tc := newTranscoder(b, transcode.Config{Concurrency: parallel})
				path := filepath.Join(dir, rt.file)
				var renditions int
				var mu sync.Mutex
				start := cpuNow()
				for b.Loop() {
					work := make(chan struct{}, rt.n)
					for range rt.n {
						work <- struct{}{}
					}
					close(work)
					var wg sync.WaitGroup
					for range parallel {
						wg.Go(func() {
							for range work {
								r, err := process(ctx, tc, path, rt.kind, transcode.Options{})
								if err != nil {
									b.Error(err)
									return
								}
								mu.Lock()
								renditions += len(r.renditions)
								mu.Unlock()
							}
						})
					}
					wg.Wait()
				}
				media := b.N * rt.n
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(media), "wall-ms/media")
				b.ReportMetric(float64(media)/b.Elapsed().Minutes(), "media/min")
				b.ReportMetric(float64(renditions)/b.Elapsed().Minutes(), "renditions/min")
				if cpu := cpuNow() - start; cpu > 0 {
					b.ReportMetric(float64(cpu.Milliseconds())/float64(media), "cpu-ms/media")
					b.ReportMetric(float64(media)/cpu.Minutes(), "media/core-min")
				}
			})
		}
	}
}

func optionsString(o transcode.Options) string {
	var parts []string
	if o.AudioFormat != "" {
		parts = append(parts, "audio "+o.AudioFormat)
	}
	if o.ThumbFormat != "" {
		parts = append(parts, "thumbs "+o.ThumbFormat)
	}
	if o.Params != (transcode.Params{}) {
		parts = append(parts, fmt.Sprintf("%+v", o.Params))
	}
	if len(parts) == 0 {
		return "default settings"
	}
	return strings.Join(parts, ", ")
}
