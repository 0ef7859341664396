// Package transcode probes media with ffprobe and renders the renditions
// every browser and CRM plays (MP3/M4A voice notes, H.264 MP4, JPEG posters,
// WebP thumbnails) with ffmpeg, as bounded, killable subprocesses.
//
// Inputs and outputs are spooled to a private temporary folder, never held in
// memory: ffprobe and ffmpeg need to seek (an MP4 whose moov atom is at the
// end, an MP3's Xing header, an MP4's faststart rewrite), and a pipe cannot.
package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

// Probe is what ffprobe says about a media file. It is recorded next to the
// media; a failed probe is recorded too (Error), never fatal.
type Probe struct {
	DurationMS int64  `json:"duration_ms,omitempty"`
	Width      int    `json:"width,omitempty"`  // as displayed (rotation applied)
	Height     int    `json:"height,omitempty"` // as displayed (rotation applied)
	BitRate    int64  `json:"bit_rate,omitempty"`
	AudioCodec string `json:"audio_codec,omitempty"`
	VideoCodec string `json:"video_codec,omitempty"` // cover art is not video
	Container  string `json:"container,omitempty"`   // ffprobe's format_name
	Error      string `json:"error,omitempty"`       // why probing failed; "" if it worked
}

// Spec names one rendition: Name is "mp3", "m4a", "mp4", "poster" or
// "thumb"; MimeType and Ext describe the bytes Render writes for it.
// Params shape it; zero fields take the Transcoder's Config.
type Spec struct {
	Name     string
	MimeType string
	Ext      string
	Params   Params
}

// Params are the per-rendition settings a tenant may choose. Zero fields
// take the Transcoder's Config.
type Params struct {
	AudioBitrate   string // "64k"
	VideoMaxHeight int    // cap of the shorter side
	VideoCRF       int    // libx264 CRF, 1..51
	ThumbMaxSize   int    // thumbnails fit within this square
}

// Options are a tenant's choices for Plan. Zero fields take the
// Transcoder's Config.
type Options struct {
	AudioFormat string          // "mp3" or "m4a"
	ThumbFormat string          // "webp" or "jpeg"
	Disabled    map[string]bool // rendition names not to make: "mp3", "m4a", "mp4", "poster", "thumb"
	Params      Params
}

// Rendition names, as Plan returns them and Options.Disabled takes them.
var RenditionNames = []string{"mp3", "m4a", "mp4", "poster", "thumb"}

// Validate checks the options a tenant's configuration sets.
func (o Options) Validate() error {
	switch o.AudioFormat {
	case "", "mp3", "m4a":
	default:
		return fmt.Errorf("audio format %q: want mp3 or m4a", o.AudioFormat)
	}
	switch o.ThumbFormat {
	case "", "webp", "jpeg":
	default:
		return fmt.Errorf("thumbnail format %q: want webp or jpeg", o.ThumbFormat)
	}
	for name := range o.Disabled {
		if !slices.Contains(RenditionNames, name) {
			return fmt.Errorf("rendition %q: want one of %s", name, strings.Join(RenditionNames, ", "))
		}
	}
	return o.Params.Validate()
}

// Validate checks p's fields that are set.
func (p Params) Validate() error {
	if p.AudioBitrate != "" && !bitrate.MatchString(p.AudioBitrate) {
		return fmt.Errorf("audio bitrate %q: want a number of bits per second such as 64k", p.AudioBitrate)
	}
	if p.VideoMaxHeight != 0 && (p.VideoMaxHeight < 144 || p.VideoMaxHeight > 4320) {
		return fmt.Errorf("video max height %d: want 144 to 4320", p.VideoMaxHeight)
	}
	if p.VideoCRF != 0 && (p.VideoCRF < 1 || p.VideoCRF > 51) {
		return fmt.Errorf("video CRF %d: want 1 to 51", p.VideoCRF)
	}
	if p.ThumbMaxSize != 0 && (p.ThumbMaxSize < 32 || p.ThumbMaxSize > 2048) {
		return fmt.Errorf("thumbnail size %d: want 32 to 2048", p.ThumbMaxSize)
	}
	return nil
}

// ErrTimeout is joined into the error of a run that reached Config.Timeout
// (not the caller's deadline): running the same input again would most
// likely time out again.
var ErrTimeout = errors.New("transcode: time limit reached")

// Result describes a rendition Render wrote.
type Result struct {
	Size  int64 // bytes written to out
	Probe Probe // of the rendition itself
}

// Config bounds and shapes the work. Zero values take the defaults noted.
type Config struct {
	Concurrency    int           // ffmpeg/ffprobe processes at once; default runtime.NumCPU()
	Timeout        time.Duration // per Probe or Render, from the moment it gets a slot; default 2m
	Threads        int           // threads per process (-threads, -filter_threads); default 2
	AudioFormat    string        // "mp3" (default) or "m4a" (AAC)
	AudioBitrate   string        // default "64k", enough for voice
	VideoMaxHeight int           // cap of the shorter side (a landscape video's height, a portrait video's width); default 720
	VideoCRF       int           // libx264 CRF; default 28
	VideoPreset    string        // libx264 preset; default "veryfast"
	VideoAudioRate string        // AAC bitrate inside MP4 renditions; default "96k"
	ThumbFormat    string        // "webp" (default) or "jpeg"
	ThumbMaxSize   int           // thumbnails fit within this square; default 320
	MaxInputBytes  int64         // largest input spooled to disk; default 2 GiB
	MaxOutputBytes int64         // largest rendition (ffmpeg -fs); default 512 MiB
	MaxDuration    time.Duration // renditions are cut at this length (ffmpeg -t); default 3h
	MaxPixels      int64         // largest decoded frame (ffmpeg -max_pixels); default 50 million
	TempDir        string        // where inputs and outputs are spooled; default os.TempDir()
	FFmpegPath     string        // default "ffmpeg" on PATH
	FFprobePath    string        // default "ffprobe" on PATH
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.NumCPU()
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.Threads <= 0 {
		c.Threads = 2
	}
	if c.AudioFormat == "" {
		c.AudioFormat = "mp3"
	}
	if c.AudioBitrate == "" {
		c.AudioBitrate = "64k"
	}
	if c.VideoMaxHeight <= 0 {
		c.VideoMaxHeight = 720
	}
	if c.VideoCRF <= 0 {
		c.VideoCRF = 28
	}
	if c.VideoPreset == "" {
		c.VideoPreset = "veryfast"
	}
	if c.VideoAudioRate == "" {
		c.VideoAudioRate = "96k"
	}
	if c.ThumbFormat == "" {
		c.ThumbFormat = "webp"
	}
	if c.ThumbMaxSize <= 0 {
		c.ThumbMaxSize = 320
	}
	if c.MaxInputBytes <= 0 {
		c.MaxInputBytes = 2 << 30
	}
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = 512 << 20
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = 3 * time.Hour
	}
	if c.MaxPixels <= 0 {
		c.MaxPixels = 50_000_000
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.FFmpegPath == "" {
		c.FFmpegPath = "ffmpeg"
	}
	if c.FFprobePath == "" {
		c.FFprobePath = "ffprobe"
	}
	return c
}

// Transcoder runs ffprobe and ffmpeg. It is safe for concurrent use; at most
// Config.Concurrency processes run at once, across all callers.
type Transcoder struct {
	cfg     Config
	ffmpeg  string
	ffprobe string
	enc     struct{ mp3, x264, webp bool } // optional encoders ffmpeg has
	slots   chan struct{}

	running atomic.Int64 // processes alive now
	peak    atomic.Int64 // most processes alive at once (tests read it)
}

// New finds ffmpeg and ffprobe and checks which encoders ffmpeg has. Missing
// optional encoders degrade the plan: no libmp3lame → M4A voice notes, no
// libwebp → JPEG thumbnails, no libx264 → videos get a poster only.
func New(cfg Config) (*Transcoder, error) {
	cfg = cfg.withDefaults()
	switch cfg.AudioFormat {
	case "mp3", "m4a":
	default:
		return nil, fmt.Errorf("transcode: audio format %q: want mp3 or m4a", cfg.AudioFormat)
	}
	switch cfg.ThumbFormat {
	case "webp", "jpeg":
	default:
		return nil, fmt.Errorf("transcode: thumbnail format %q: want webp or jpeg", cfg.ThumbFormat)
	}
	for name, v := range map[string]string{"audio bitrate": cfg.AudioBitrate, "video audio bitrate": cfg.VideoAudioRate} {
		if !bitrate.MatchString(v) {
			return nil, fmt.Errorf("transcode: %s %q: want a number of bits per second such as 64k", name, v)
		}
	}
	if !x264Presets[cfg.VideoPreset] {
		return nil, fmt.Errorf("transcode: video preset %q is not a libx264 preset", cfg.VideoPreset)
	}
	ffmpeg, err := exec.LookPath(cfg.FFmpegPath)
	if err != nil {
		return nil, fmt.Errorf("transcode: ffmpeg not found (scripts/install-ffmpeg.sh installs it): %w", err)
	}
	ffprobe, err := exec.LookPath(cfg.FFprobePath)
	if err != nil {
		return nil, fmt.Errorf("transcode: ffprobe not found (scripts/install-ffmpeg.sh installs it): %w", err)
	}
	enc, err := encoders(ffmpeg)
	if err != nil {
		return nil, err
	}
	for _, need := range []string{"aac", "mjpeg"} {
		if !enc[need] {
			return nil, fmt.Errorf("transcode: ffmpeg at %s lacks the %s encoder", ffmpeg, need)
		}
	}
	if cfg.AudioFormat == "mp3" && !enc["libmp3lame"] {
		cfg.AudioFormat = "m4a"
	}
	if cfg.ThumbFormat == "webp" && !enc["libwebp"] {
		cfg.ThumbFormat = "jpeg"
	}
	t := &Transcoder{
		cfg:     cfg,
		ffmpeg:  ffmpeg,
		ffprobe: ffprobe,
		slots:   make(chan struct{}, cfg.Concurrency),
	}
	t.enc.mp3, t.enc.x264, t.enc.webp = enc["libmp3lame"], enc["libx264"], enc["libwebp"]
	return t, nil
}

var bitrate = regexp.MustCompile(`^[1-9][0-9]*[kM]?$`)

var x264Presets = map[string]bool{
	"ultrafast": true, "superfast": true, "veryfast": true, "faster": true, "fast": true,
	"medium": true, "slow": true, "slower": true, "veryslow": true,
}

// Config returns the configuration in effect: defaults filled in and
// formats degraded to the encoders ffmpeg has.
func (t *Transcoder) Config() Config { return t.cfg }

// encoders lists the encoder names `ffmpeg -encoders` prints.
func encoders(ffmpeg string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-hide_banner", "-encoders")
	cmd.WaitDelay = time.Second
	cmd.Env = childEnv()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("transcode: %s -encoders: %w", ffmpeg, err)
	}
	// Lines look like " A....D libmp3lame  libmp3lame MP3 (MPEG audio layer 3)".
	set := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && len(f[0]) == 6 && strings.IndexByte("VAS", f[0][0]) >= 0 {
			set[f[1]] = true
		}
	}
	return set, nil
}

// Renditions Plan can return.
var (
	specMP3       = Spec{Name: "mp3", MimeType: "audio/mpeg", Ext: "mp3"}
	specM4A       = Spec{Name: "m4a", MimeType: "audio/mp4", Ext: "m4a"}
	specMP4       = Spec{Name: "mp4", MimeType: "video/mp4", Ext: "mp4"}
	specPoster    = Spec{Name: "poster", MimeType: "image/jpeg", Ext: "jpg"}
	specThumbWebP = Spec{Name: "thumb", MimeType: "image/webp", Ext: "webp"}
	specThumbJPEG = Spec{Name: "thumb", MimeType: "image/jpeg", Ext: "jpg"}
)

// mp4Family is ffprobe's format_name for MP4, M4A and QuickTime files.
const mp4Family = "mov,mp4,m4a,3gp,3g2,mj2"

// Plan lists the renditions that apply to a media of kind (audio, video,
// image, document, sticker) with probe p, with the Config's formats. See
// PlanWith.
func (t *Transcoder) Plan(kind string, p Probe) []Spec { return t.PlanWith(kind, p, Options{}) }

// PlanWith lists the renditions that apply to a media of kind with probe p,
// under a tenant's options:
//
//   - audio: "mp3" or "m4a" (AudioFormat), unless the original is already
//     MP3, or AAC in MP4 when the format is m4a: it plays everywhere;
//   - video: "mp4" (H.264 + AAC, faststart, at most VideoMaxHeight) and
//     "poster" (a JPEG frame at 1 s, or the first frame of a shorter video);
//     a "video" with no video stream is planned as audio;
//   - image: "thumb" (webp or jpeg, within ThumbMaxSize), unless it has
//     more than MaxPixels (such an image probes as 0x0);
//   - document, sticker, or a failed probe: none.
//
// Renditions in o.Disabled are left out; each Spec carries o.Params.
func (t *Transcoder) PlanWith(kind string, p Probe, o Options) []Spec {
	if p.Error != "" {
		return nil
	}
	var specs []Spec
	switch kind {
	case "audio":
		specs = t.planAudio(p, o)
	case "video":
		if p.VideoCodec == "" {
			specs = t.planAudio(p, o)
			break
		}
		if t.enc.x264 {
			specs = append(specs, specMP4)
		}
		specs = append(specs, specPoster)
	case "image":
		if p.VideoCodec == "" || p.Width <= 0 || p.Height <= 0 || int64(p.Width)*int64(p.Height) > t.cfg.MaxPixels {
			return nil
		}
		if t.thumbFormat(o) == "jpeg" {
			specs = []Spec{specThumbJPEG}
		} else {
			specs = []Spec{specThumbWebP}
		}
	}
	out := specs[:0]
	for _, s := range specs {
		if !o.Disabled[s.Name] {
			s.Params = o.Params
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// audioFormat is the format o asks for, degraded to what ffmpeg can encode.
func (t *Transcoder) audioFormat(o Options) string {
	if o.AudioFormat == "mp3" && t.enc.mp3 || o.AudioFormat == "m4a" {
		return o.AudioFormat
	}
	return t.cfg.AudioFormat
}

func (t *Transcoder) thumbFormat(o Options) string {
	if o.ThumbFormat == "webp" && t.enc.webp || o.ThumbFormat == "jpeg" {
		return o.ThumbFormat
	}
	return t.cfg.ThumbFormat
}

func (t *Transcoder) planAudio(p Probe, o Options) []Spec {
	if p.AudioCodec == "" {
		return nil
	}
	if t.audioFormat(o) == "m4a" {
		if p.AudioCodec == "aac" && p.Container == mp4Family && p.VideoCodec == "" {
			return nil
		}
		return []Spec{specM4A}
	}
	if p.AudioCodec == "mp3" && p.Container == "mp3" {
		return nil
	}
	return []Spec{specMP3}
}

// Input is a media spooled to a private temporary file, to probe and render
// several times without reading its source again. Close removes the file.
type Input struct {
	t    *Transcoder
	dir  string
	path string
}

// Open spools in to a temporary file, at most MaxInputBytes, stopping when
// ctx ends. An empty input is apperr.UnsupportedMedia, a larger one
// apperr.TooLarge; a full disk or a cancellation apperr.Unavailable; an
// error reading in is returned wrapped.
func (t *Transcoder) Open(ctx context.Context, in io.Reader) (*Input, error) {
	dir, err := t.workDir()
	if err != nil {
		return nil, err
	}
	path, err := t.spool(ctx, in, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Input{t: t, dir: dir, path: path}, nil
}

// Close removes the spooled file.
func (in *Input) Close() error { return os.RemoveAll(in.dir) }

// Probe runs ffprobe on the spooled input. Content that cannot be probed
// (not media, truncated, unsupported) is not an error: the returned Probe
// says why in Error. An error means the probe could not be run at all, and
// a retry may work: ctx ended, the run took longer than Timeout
// (apperr.Unavailable, with ErrTimeout), or ffprobe could not be started.
func (in *Input) Probe(ctx context.Context) (Probe, error) {
	t := in.t
	release, err := t.acquire(ctx)
	if err != nil {
		return Probe{Error: "probe not run"}, err
	}
	defer release()
	runCtx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	p, err := t.probeFile(ctx, runCtx, in.path)
	if err != nil {
		if apperr.Is(err, apperr.UnsupportedMedia) {
			return p, nil
		}
		if p.Error == "" {
			p.Error = "probe not run"
		}
	}
	return p, err
}

// Render writes the rendition spec of the spooled input to out. It runs
// ffmpeg into a temporary output, probes that, and only then copies it to
// out: out sees a complete rendition or nothing. Errors are classified as
// Transcoder.Render documents.
func (in *Input) Render(ctx context.Context, spec Spec, out io.Writer) (Result, error) {
	t := in.t
	r, err := t.recipe(spec)
	if err != nil {
		return Result{}, err
	}
	// No extension: ffprobe then recognises the output by its content, with
	// the same demuxers an input may use (an image2 sequence is not one).
	// Each render has its own output folder, so renders may run at once.
	odir, err := os.MkdirTemp(in.dir, "out-")
	if err != nil {
		return Result{}, apperr.Wrap(apperr.Unavailable, err, "no room for transcoding")
	}
	defer os.RemoveAll(odir)
	outPath := filepath.Join(odir, "out")
	p, err := t.renderFile(ctx, r, in.path, outPath)
	if err != nil {
		return Result{}, err
	}
	f, err := os.Open(outPath)
	if err != nil {
		return Result{}, fmt.Errorf("transcode: open rendition: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(out, f)
	if err != nil {
		return Result{Size: n}, fmt.Errorf("transcode: write %s rendition: %w", spec.Name, err)
	}
	return Result{Size: n, Probe: p}, nil
}

// Probe spools in to a temporary file and runs ffprobe on it (see
// Input.Probe). An input larger than MaxInputBytes or empty is not an
// error either: the Probe says so in Error.
func (t *Transcoder) Probe(ctx context.Context, in io.Reader) (Probe, error) {
	input, err := t.Open(ctx, in)
	if err != nil {
		if e, ok := apperr.As(err); ok && (e.Kind == apperr.TooLarge || e.Kind == apperr.UnsupportedMedia) {
			return Probe{Error: e.Detail}, nil
		}
		return Probe{Error: "input could not be read"}, err
	}
	defer input.Close()
	return input.Probe(ctx)
}

// Render writes the rendition spec of in to out. It spools in to a
// temporary file, runs ffmpeg into a temporary output, probes that, and only
// then copies it to out: out sees a complete rendition or nothing.
//
// Errors are classified: apperr.UnsupportedMedia when ffmpeg cannot decode
// in (or in has no stream the rendition needs), apperr.TooLarge when in
// exceeds MaxInputBytes or the rendition reaches MaxOutputBytes,
// apperr.Unavailable when ctx ends or the run exceeds Timeout (the process
// is killed; ErrTimeout is joined in then), apperr.Invalid for an unknown
// spec. Errors writing to out are returned as they are. Temporary files
// never outlive the call.
func (t *Transcoder) Render(ctx context.Context, spec Spec, in io.Reader, out io.Writer) (Result, error) {
	if _, err := t.recipe(spec); err != nil {
		return Result{}, err
	}
	input, err := t.Open(ctx, in)
	if err != nil {
		return Result{}, err
	}
	defer input.Close()
	return input.Render(ctx, spec, out)
}

// renderFile runs ffmpeg and then ffprobe on its output, holding one slot
// and one Timeout for both.
func (t *Transcoder) renderFile(ctx context.Context, r recipe, inPath, outPath string) (Probe, error) {
	release, err := t.acquire(ctx)
	if err != nil {
		return Probe{}, err
	}
	defer release()
	runCtx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()

	if err := t.run(ctx, runCtx, t.ffmpeg, t.ffmpegArgs(r, inPath, outPath, r.seek), nil); err != nil {
		return Probe{}, err
	}
	size := fileSize(outPath)
	if size == 0 && r.seek != "" {
		// The video is shorter than the seek point: take its first frame.
		if err := t.run(ctx, runCtx, t.ffmpeg, t.ffmpegArgs(r, inPath, outPath, ""), nil); err != nil {
			return Probe{}, err
		}
		size = fileSize(outPath)
	}
	if size <= 0 {
		return Probe{}, apperr.Wrap(apperr.UnsupportedMedia, errors.New("ffmpeg wrote no output"),
			"the media has nothing to render as %s", r.name)
	}
	if size >= t.cfg.MaxOutputBytes {
		return Probe{}, apperr.New(apperr.TooLarge, "the %s rendition would exceed %d bytes", r.name, t.cfg.MaxOutputBytes)
	}
	p, err := t.probeFile(ctx, runCtx, outPath)
	if err != nil {
		return Probe{}, err
	}
	return p, nil
}

// workDir makes a private folder for one call's spooled files.
func (t *Transcoder) workDir() (string, error) {
	dir, err := os.MkdirTemp(t.cfg.TempDir, "chatvault-transcode-")
	if err != nil {
		return "", apperr.Wrap(apperr.Unavailable, err, "no room for transcoding")
	}
	return dir, nil
}

// spool copies in to dir/in, at most MaxInputBytes, stopping when ctx ends.
func (t *Transcoder) spool(ctx context.Context, in io.Reader, dir string) (string, error) {
	path := filepath.Join(dir, "in")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", apperr.Wrap(apperr.Unavailable, err, "no room for transcoding")
	}
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, in}, t.cfg.MaxInputBytes+1))
	if cerr := f.Close(); err == nil && cerr != nil {
		return "", apperr.Wrap(apperr.Unavailable, cerr, "no room for transcoding")
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return "", apperr.Wrap(apperr.Unavailable, ctx.Err(), "transcoding canceled")
	case err != nil:
		if isNoSpace(err) {
			return "", apperr.Wrap(apperr.Unavailable, err, "no room for transcoding")
		}
		return "", fmt.Errorf("transcode: read input: %w", err)
	case n > t.cfg.MaxInputBytes:
		return "", apperr.New(apperr.TooLarge, "media larger than %d bytes cannot be transcoded", t.cfg.MaxInputBytes)
	case n == 0:
		return "", apperr.New(apperr.UnsupportedMedia, "the media is empty")
	}
	return path, nil
}

// ctxReader stops a copy between reads once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
