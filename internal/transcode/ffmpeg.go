package transcode

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

// inputFormats are the only demuxers ffmpeg and ffprobe may pick for an
// input. Playlists and scripts (hls, concat, ffconcat, image2 patterns, svg)
// are left out on purpose: they name other files or URLs, which would let a
// hostile upload read local files or reach the network.
const inputFormats = "mov,matroska,ogg,mp3,aac,wav,flac,amr,amrnb,amrwb,caf,aiff,w64,au,ac3,eac3," +
	"asf,avi,flv,mpegts,mpeg," +
	"png_pipe,jpeg_pipe,webp_pipe,gif,gif_pipe,apng,bmp_pipe,tiff_pipe,jpegxl_pipe"

// recipe is how ffmpeg makes one rendition.
type recipe struct {
	name   string
	muxer  string   // ffmpeg -f
	seek   string   // input seek (-ss) tried first; "" for none
	output []string // stream selection and encoder options
}

func (t *Transcoder) recipe(spec Spec) (recipe, error) {
	if err := spec.Params.Validate(); err != nil {
		return recipe{}, apperr.Wrap(apperr.Invalid, err, "rendition %q: %v", spec.Name, err)
	}
	c := t.cfg
	v := spec.Params
	c.AudioBitrate = cmp.Or(v.AudioBitrate, c.AudioBitrate)
	c.VideoMaxHeight = cmp.Or(v.VideoMaxHeight, c.VideoMaxHeight)
	c.VideoCRF = cmp.Or(v.VideoCRF, c.VideoCRF)
	c.ThumbMaxSize = cmp.Or(v.ThumbMaxSize, c.ThumbMaxSize)
	// The shorter side is capped, so portrait phone videos stay 720 wide
	// rather than shrinking to 405; -2 keeps the aspect with an even size,
	// which yuv420p H.264 needs; so is the cap, rounded down (an odd
	// video_max_height of 241 gives 240). Never upscaled.
	fit := fmt.Sprintf("scale=w='if(gte(iw,ih),-2,min(%[1]d,trunc(iw/2)*2))':h='if(gte(iw,ih),min(%[1]d,trunc(ih/2)*2),-2)'", c.VideoMaxHeight&^1)
	thumb := fmt.Sprintf("scale=w='min(%[1]d,iw)':h='min(%[1]d,ih)':force_original_aspect_ratio=decrease", c.ThumbMaxSize)
	jpeg := []string{"-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", "-update", "1"}
	switch spec.Name {
	case "mp3":
		if !t.enc.mp3 {
			break
		}
		return recipe{name: spec.Name, muxer: "mp3", output: []string{
			"-map", "0:a:0", "-vn", "-c:a", "libmp3lame", "-b:a", c.AudioBitrate,
		}}, nil
	case "m4a":
		return recipe{name: spec.Name, muxer: "ipod", output: []string{
			"-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", c.AudioBitrate, "-movflags", "+faststart",
		}}, nil
	case "mp4":
		if !t.enc.x264 {
			break
		}
		return recipe{name: spec.Name, muxer: "mp4", output: []string{
			"-map", "0:V:0", "-map", "0:a:0?", "-vf", fit, "-fpsmax", "30",
			"-c:v", "libx264", "-preset", c.VideoPreset, "-crf", strconv.Itoa(c.VideoCRF), "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", c.VideoAudioRate, "-movflags", "+faststart",
		}}, nil
	case "poster":
		return recipe{name: spec.Name, muxer: "image2", seek: "1", output: append([]string{
			"-map", "0:V:0", "-frames:v", "1", "-vf", fit,
		}, jpeg...)}, nil
	case "thumb":
		switch spec.MimeType {
		case "image/jpeg":
			return recipe{name: spec.Name, muxer: "image2", output: append([]string{
				"-map", "0:V:0", "-frames:v", "1", "-vf", thumb,
			}, jpeg...)}, nil
		case "image/webp", "":
			if !t.enc.webp {
				break
			}
			return recipe{name: spec.Name, muxer: "webp", output: []string{
				"-map", "0:V:0", "-frames:v", "1", "-vf", thumb, "-c:v", "libwebp", "-quality", "75",
			}}, nil
		}
	}
	return recipe{}, apperr.New(apperr.Invalid, "rendition %q as %q is not available", spec.Name, spec.MimeType)
}

func (t *Transcoder) ffmpegArgs(r recipe, inPath, outPath, seek string) []string {
	threads := strconv.Itoa(t.cfg.Threads)
	args := []string{
		"-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-threads", threads,
		"-max_pixels", itoa(t.cfg.MaxPixels),
		"-protocol_whitelist", "file",
		"-format_whitelist", inputFormats,
	}
	if seek != "" {
		args = append(args, "-ss", seek)
	}
	args = append(args, "-i", inPath)
	args = append(args, r.output...)
	return append(args,
		"-threads", threads, "-filter_threads", threads,
		"-map_metadata", "-1", "-map_chapters", "-1",
		"-t", strconv.FormatFloat(t.cfg.MaxDuration.Seconds(), 'f', 3, 64),
		"-fs", itoa(t.cfg.MaxOutputBytes),
		"-f", r.muxer, outPath,
	)
}

// probeFile runs ffprobe on path under runCtx (ctx is the caller's, to tell
// a cancellation from a timeout). An undecodable file gives a Probe whose
// Error says why and an apperr.UnsupportedMedia error.
func (t *Transcoder) probeFile(ctx, runCtx context.Context, path string) (Probe, error) {
	stdout := &capBuffer{max: 4 << 20}
	err := t.run(ctx, runCtx, t.ffprobe, []string{
		"-hide_banner", "-loglevel", "error",
		// A frame over the limit is not decoded while probing either: an
		// image then probes as 0x0 (no thumbnail), a video fails.
		"-max_pixels", itoa(t.cfg.MaxPixels),
		"-protocol_whitelist", "file",
		"-format_whitelist", inputFormats,
		"-print_format", "json", "-show_format", "-show_streams",
		"-i", path,
	}, stdout)
	if err != nil {
		p := Probe{Error: "probe not run"}
		if e, ok := apperr.As(err); ok && e.Kind == apperr.UnsupportedMedia {
			p.Error = summarize(e, path)
		}
		return p, err
	}
	if stdout.over {
		p := Probe{Error: "probe output too large"}
		return p, apperr.New(apperr.UnsupportedMedia, "the media could not be probed: %s", p.Error)
	}
	p, err := parseProbe(stdout.Bytes())
	if err != nil {
		p = Probe{Error: "probe output unreadable"}
		return p, apperr.Wrap(apperr.UnsupportedMedia, err, "the media could not be probed: %s", p.Error)
	}
	if p.AudioCodec == "" && p.VideoCodec == "" {
		p.Error = "no audio or video stream"
		return p, apperr.New(apperr.UnsupportedMedia, "the media could not be probed: %s", p.Error)
	}
	return p, nil
}

type ffprobeStream struct {
	CodecType   string            `json:"codec_type"`
	CodecName   string            `json:"codec_name"`
	Width       int               `json:"width"`
	Height      int               `json:"height"`
	Duration    string            `json:"duration"`
	Disposition map[string]int    `json:"disposition"`
	Tags        map[string]string `json:"tags"`
	SideData    []struct {
		Rotation *float64 `json:"rotation"`
	} `json:"side_data_list"`
}

type ffprobeOutput struct {
	Streams []ffprobeStream `json:"streams"`
	Format  struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		BitRate    string `json:"bit_rate"`
	} `json:"format"`
}

func parseProbe(data []byte) (Probe, error) {
	var out ffprobeOutput
	if err := json.Unmarshal(data, &out); err != nil {
		return Probe{}, err
	}
	p := Probe{Container: out.Format.FormatName}
	p.BitRate, _ = strconv.ParseInt(out.Format.BitRate, 10, 64)
	var streamSeconds float64
	for _, s := range out.Streams {
		switch {
		case s.CodecType == "audio" && p.AudioCodec == "":
			p.AudioCodec = s.CodecName
		case s.CodecType == "video" && p.VideoCodec == "" && s.Disposition["attached_pic"] == 0:
			p.VideoCodec = s.CodecName
			p.Width, p.Height = s.Width, s.Height
			if quarterTurn(s) {
				p.Width, p.Height = p.Height, p.Width
			}
		default:
			continue
		}
		streamSeconds = math.Max(streamSeconds, parseSeconds(s.Duration))
	}
	seconds := parseSeconds(out.Format.Duration)
	if seconds == 0 {
		seconds = streamSeconds
	}
	p.DurationMS = int64(math.Round(seconds * 1000))
	return p, nil
}

// quarterTurn reports whether a stream is displayed turned by 90° or 270°,
// so its displayed width is its coded height. The display matrix (side
// data) wins over the older rotate tag.
func quarterTurn(s ffprobeStream) bool {
	deg, _ := strconv.ParseFloat(s.Tags["rotate"], 64)
	for _, sd := range s.SideData {
		if sd.Rotation != nil {
			deg = *sd.Rotation
		}
	}
	return int(math.Round(deg/90))%2 != 0
}

func parseSeconds(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// acquire takes one of the Concurrency slots, or fails when ctx ends first.
func (t *Transcoder) acquire(ctx context.Context) (release func(), err error) {
	select {
	case t.slots <- struct{}{}:
		return func() { <-t.slots }, nil
	case <-ctx.Done():
		return nil, apperr.Wrap(apperr.Unavailable, ctx.Err(), "transcoding canceled while waiting for a slot")
	}
}

// run executes one ffmpeg or ffprobe process under runCtx, killing it when
// runCtx ends. stdout may be nil. The last 4 KiB of stderr go into the
// error, which is classified (see classify).
func (t *Transcoder) run(ctx, runCtx context.Context, bin string, args []string, stdout io.Writer) error {
	stderr := &tailBuffer{max: 4 << 10}
	cmd := exec.CommandContext(runCtx, bin, args...)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.Env = childEnv()
	cmd.WaitDelay = 5 * time.Second // after the kill, stop waiting on its pipes
	if err := cmd.Start(); err != nil {
		if runCtx.Err() != nil {
			return ended(ctx, runCtx, t.cfg.Timeout, err)
		}
		return apperr.Wrap(apperr.Unavailable, err, "the transcoder could not be started")
	}
	t.started()
	err := cmd.Wait()
	t.running.Add(-1)
	if err == nil {
		return nil
	}
	cause := &runError{name: filepath.Base(bin), err: err, stderr: strings.TrimSpace(stderr.String())}
	if runCtx.Err() != nil {
		return ended(ctx, runCtx, t.cfg.Timeout, cause)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return apperr.Wrap(apperr.Unavailable, cause, "the transcoder was killed")
		}
		if strings.Contains(cause.stderr, "No space left on device") {
			return apperr.Wrap(apperr.Unavailable, cause, "no room for transcoding")
		}
		return apperr.Wrap(apperr.UnsupportedMedia, cause, "the media could not be decoded")
	}
	return apperr.Wrap(apperr.Unavailable, cause, "the transcoder failed")
}

// ended classifies a run stopped by its context: the caller's cancellation
// or deadline, or our own Timeout.
func ended(ctx, runCtx context.Context, timeout time.Duration, cause error) error {
	if err := ctx.Err(); err != nil {
		return apperr.Wrap(apperr.Unavailable, errors.Join(err, cause), "transcoding canceled")
	}
	return apperr.Wrap(apperr.Unavailable, errors.Join(ErrTimeout, runCtx.Err(), cause), "transcoding took longer than %s", timeout)
}

func (t *Transcoder) started() {
	n := t.running.Add(1)
	for {
		p := t.peak.Load()
		if n <= p || t.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// runError is a failed process run: the cause logged with its stderr tail.
type runError struct {
	name   string // ffmpeg or ffprobe
	err    error
	stderr string // the last 4 KiB
}

func (e *runError) Error() string {
	if e.stderr == "" {
		return e.name + ": " + e.err.Error()
	}
	return e.name + ": " + e.err.Error() + ": " + e.stderr
}

func (e *runError) Unwrap() error { return e.err }

// childEnv is this process's environment without the variables that make
// ffmpeg write report files or change its logging.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "FFREPORT=") || strings.HasPrefix(kv, "AV_LOG_FORCE_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// logPrefix is the "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c0a8] " ffmpeg puts
// before a component's messages.
var logPrefix = regexp.MustCompile(`\[[^\]@]+ @ 0x[0-9a-f]+\] `)

// notAllowed is how ffmpeg refuses a demuxer left out of inputFormats.
var notAllowed = regexp.MustCompile(`\[([^\]@ ]+) @ 0x[0-9a-f]+\] Format not on whitelist '[^']*'`)

// summarize turns a failed run's stderr into a short reason fit for a
// record: distinct lines, without object addresses or the spool path, at
// most 200 bytes.
func summarize(err error, path string) string {
	var re *runError
	if !errors.As(err, &re) || re.stderr == "" {
		return "not decodable"
	}
	msg := strings.ReplaceAll(re.stderr, path, "input")
	msg = notAllowed.ReplaceAllString(msg, "$1 format not allowed")
	var lines []string
	seen := map[string]bool{}
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(logPrefix.ReplaceAllString(l, ""))
		if l != "" && !seen[l] {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines, "; ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "")
	}
	return s
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	if len(b.buf) > b.max {
		return strings.ToValidUTF8(string(b.buf[len(b.buf)-b.max:]), "")
	}
	return string(b.buf)
}

// capBuffer keeps the first max bytes and notes whether more came.
type capBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// isNoSpace reports a full disk.
func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }
