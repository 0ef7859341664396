// Package config reads chatvault's settings: process settings from the
// environment, tenants and their hashed API keys from a YAML file.
// docs/CONFIGURATION.md lists every setting; keep the two in step.
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/transcode"
)

// Config is the whole process configuration.
type Config struct {
	Addr            string
	PublicURL       string // base of content URLs; "" derives it from each request
	RedisURL        string
	RedisCluster    []string
	RedisSentinel   []string
	RedisMaster     string
	RedisPassword   string
	RedisPrefix     string
	StorageURL      string
	DataDir         string
	SigningSecret   string
	ContentURLTTL   time.Duration
	CRMURLTTL       time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
	Workers         int // queue workers per process; 0 runs none
	// Processing is "auto" (on when ffmpeg is found), "on" (ffmpeg required)
	// or "off" (no probing or renditions for any tenant).
	Processing       string
	TranscodeWorkers int           // ffmpeg processes at once per process; 0: the number of cores
	TranscodeTimeout time.Duration // per ffmpeg or ffprobe run
	TranscodeTempDir string        // "" for the system's
	JobVisibility    time.Duration
	ConfigFile       string
	Defaults         TenantDefaults
	Tenants          map[string]*Tenant
	// DevKey is true when CHATVAULT_API_KEY made a single-tenant dev key.
	DevKey bool
}

// TenantDefaults apply to every tenant unless its own config overrides them.
type TenantDefaults struct {
	Limits      map[string]int64 // kind → max bytes
	KeyRate     Rate
	TenantRte   Rate
	WebhookRate Rate
}

// Rate is a GCRA limit: Count requests per Period with a Burst.
type Rate struct {
	Count  int
	Period time.Duration
	Burst  int
}

// Tenant is one customer business.
type Tenant struct {
	ID            string            `yaml:"id"`
	Name          string            `yaml:"name"`
	APIKeys       []APIKey          `yaml:"api_keys"`
	WhatsAppCloud WhatsAppCloud     `yaml:"whatsapp_cloud"`
	Twilio        Twilio            `yaml:"twilio"`
	Dialog360     Dialog360         `yaml:"dialog360"`
	Customers     CustomerMap       `yaml:"customer_mapping"`
	AutoTags      []TagRule         `yaml:"auto_tags"`
	URLAuth       []HeaderRule      `yaml:"url_auth"`
	URLAllowlist  []string          `yaml:"url_allowlist"`
	Limits        map[string]string `yaml:"limits"`
	Processing    Processing        `yaml:"processing"`
	RateLimit     struct {
		Key         string `yaml:"key"`
		KeyBurst    int    `yaml:"key_burst"`
		Tenant      string `yaml:"tenant"`
		TenantBurst int    `yaml:"tenant_burst"`
	} `yaml:"rate_limit"`

	// Resolved by Load.
	SizeLimits map[string]int64 `yaml:"-"`
	Process    ProcessSettings  `yaml:"-"`
	KeyRate    Rate             `yaml:"-"`
	TenantRate Rate             `yaml:"-"`
}

// Processing is a tenant's media-processing settings, as the YAML has them.
type Processing struct {
	Enabled *bool `yaml:"enabled"` // default true
	// Renditions lists the renditions to make: audio (MP3 or M4A), video
	// (MP4), poster and thumbnail. Default: all four.
	Renditions     []string `yaml:"renditions"`
	AudioFormat    string   `yaml:"audio_format"`  // mp3 (default) or m4a
	AudioBitrate   string   `yaml:"audio_bitrate"` // default 64k
	VideoMaxHeight int      `yaml:"video_max_height"`
	VideoCRF       int      `yaml:"video_crf"`
	ThumbFormat    string   `yaml:"thumbnail_format"` // webp (default) or jpeg
	ThumbMaxSize   int      `yaml:"thumbnail_max_size"`
	// ReplaceOriginalsAfterDays replaces an audio or video original by its
	// compressed rendition this many days after archiving, when that is
	// smaller. 0 (the default) keeps originals for good.
	ReplaceOriginalsAfterDays int `yaml:"replace_originals_after_days"`
	// CompressOversize accepts audio and video over the kind's limit, up to
	// OversizeLimit, and replaces the original by its compressed rendition
	// as soon as that exists. Off by default: oversize is refused with 413.
	CompressOversize bool   `yaml:"compress_oversize"`
	OversizeLimit    string `yaml:"oversize_limit"` // default 256MiB
}

// ProcessSettings are a tenant's resolved processing settings.
type ProcessSettings struct {
	Enabled          bool
	Options          transcode.Options
	ReplaceAfter     time.Duration // 0: originals are kept
	CompressOversize bool
	OversizeLimit    int64
}

// RenditionGroups are the names tenants turn renditions on with, and the
// transcode renditions each covers.
var RenditionGroups = map[string][]string{
	"audio":     {"mp3", "m4a"},
	"video":     {"mp4"},
	"poster":    {"poster"},
	"thumbnail": {"thumb"},
}

// DefaultOversizeLimit is the most a tenant that compresses oversize media
// accepts, unless it sets processing.oversize_limit.
const DefaultOversizeLimit = 256 << 20

// APIKey is a hashed key with its scopes.
type APIKey struct {
	ID     string   `yaml:"id"`
	Hash   string   `yaml:"hash"`
	Scopes []string `yaml:"scopes"`
}

// WhatsAppCloud holds a tenant's Meta Cloud API credentials.
type WhatsAppCloud struct {
	GraphBaseURL string `yaml:"graph_base_url"`
	AccessToken  string `yaml:"access_token"`
	// AppSecret verifies X-Hub-Signature-256 on inbound webhooks.
	AppSecret string `yaml:"app_secret"`
	// VerifyToken answers Meta's GET verification handshake.
	VerifyToken string `yaml:"verify_token"`
}

// Twilio holds a tenant's Twilio credentials.
type Twilio struct {
	AccountSID   string `yaml:"account_sid"`
	AuthToken    string `yaml:"auth_token"`
	APIKeySID    string `yaml:"api_key_sid"`
	APIKeySecret string `yaml:"api_key_secret"`
	APIHost      string `yaml:"api_host"` // default api.twilio.com
	// WebhookBaseURL is the public base URL Twilio calls, when a proxy
	// changes it; the signature covers the exact URL Twilio used.
	WebhookBaseURL string `yaml:"webhook_base_url"`
}

// Dialog360 holds a tenant's 360dialog settings.
type Dialog360 struct {
	BaseURL string `yaml:"base_url"` // default https://waba-v2.360dialog.io
	APIKey  string `yaml:"api_key"`
	// WebhookToken protects the inbound webhook: 360dialog cannot sign
	// requests, so the URL carries ?token= or the X-Chatvault-Token header.
	WebhookToken string `yaml:"webhook_token"`
}

// CustomerMap turns a sender into a customer ID.
type CustomerMap struct {
	Template     string `yaml:"template"`   // default "wa:{wa_id}"
	LookupURL    string `yaml:"lookup_url"` // optional CRM lookup
	LookupHeader string `yaml:"lookup_header"`
	LookupValue  string `yaml:"lookup_value"`
}

// TagRule adds Tag to inbound media that match.
type TagRule struct {
	Tag             string   `yaml:"tag"`
	Kinds           []string `yaml:"kinds"`
	Voice           *bool    `yaml:"voice"`
	CaptionContains []string `yaml:"caption_contains"`
	CaptionRegex    string   `yaml:"caption_regex"`
}

// HeaderRule sends Header: Value on URL fetches to exactly Host.
type HeaderRule struct {
	Host   string `yaml:"host"`
	Header string `yaml:"header"`
	Value  string `yaml:"value"`
}

// DefaultLimits are WhatsApp's own per-kind maximums.
var DefaultLimits = map[string]int64{
	"audio":    16 << 20,
	"video":    16 << 20,
	"image":    5 << 20,
	"document": 100 << 20,
	"sticker":  500 << 10,
}

var tenantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Load reads the configuration through getenv (os.Getenv in production).
func Load(getenv func(string) string) (*Config, error) {
	env := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	var errs []error
	dur := func(k string, def time.Duration) time.Duration {
		v := env(k, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration", k, v))
			return def
		}
		return d
	}
	c := &Config{
		Addr:             env("CHATVAULT_ADDR", ":8080"),
		PublicURL:        strings.TrimRight(env("CHATVAULT_PUBLIC_URL", ""), "/"),
		RedisURL:         env("REDIS_URL", ""),
		RedisCluster:     splitList(env("REDIS_CLUSTER_ADDRS", "")),
		RedisSentinel:    splitList(env("REDIS_SENTINEL_ADDRS", "")),
		RedisMaster:      env("REDIS_SENTINEL_MASTER", ""),
		RedisPassword:    env("REDIS_PASSWORD", ""),
		RedisPrefix:      env("CHATVAULT_REDIS_PREFIX", "cv:"),
		DataDir:          env("CHATVAULT_DATA_DIR", "./data"),
		StorageURL:       env("STORAGE_URL", ""),
		SigningSecret:    env("CHATVAULT_SIGNING_SECRET", ""),
		ContentURLTTL:    dur("CHATVAULT_CONTENT_URL_TTL", 15*time.Minute),
		CRMURLTTL:        dur("CHATVAULT_CRM_URL_TTL", 7*24*time.Hour),
		ShutdownTimeout:  dur("CHATVAULT_SHUTDOWN_TIMEOUT", 60*time.Second),
		JobVisibility:    dur("CHATVAULT_JOB_VISIBILITY_TIMEOUT", 2*time.Minute),
		LogLevel:         env("CHATVAULT_LOG_LEVEL", "info"),
		Processing:       env("CHATVAULT_PROCESSING", "auto"),
		TranscodeTimeout: dur("CHATVAULT_TRANSCODE_TIMEOUT", 2*time.Minute),
		TranscodeTempDir: env("CHATVAULT_TRANSCODE_TMPDIR", ""),
		ConfigFile:       env("CHATVAULT_CONFIG", ""),
		Tenants:          map[string]*Tenant{},
	}
	if strings.ContainsAny(c.RedisPrefix, "{}") {
		errs = append(errs, errors.New("CHATVAULT_REDIS_PREFIX must not contain braces (they are Redis Cluster hash tags)"))
	}
	if len(c.RedisSentinel) > 0 && c.RedisMaster == "" {
		errs = append(errs, errors.New("REDIS_SENTINEL_ADDRS needs REDIS_SENTINEL_MASTER"))
	}
	if c.StorageURL == "" {
		abs, err := filepath.Abs(filepath.Join(c.DataDir, "media"))
		if err != nil {
			errs = append(errs, err)
		}
		c.StorageURL = "file://" + filepath.ToSlash(abs)
	}

	c.Defaults.Limits = map[string]int64{}
	for kind, def := range DefaultLimits {
		key := "CHATVAULT_LIMIT_" + strings.ToUpper(kind)
		v := env(key, "")
		if v == "" {
			c.Defaults.Limits[kind] = def
			continue
		}
		n, err := ParseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			n = def
		}
		c.Defaults.Limits[kind] = n
	}
	rate := func(name, def, burstDef string) Rate {
		r, err := parseRate(env(name, def), "1")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		b, err := strconv.Atoi(env(name+"_BURST", burstDef))
		if err != nil || b <= 0 {
			errs = append(errs, fmt.Errorf("%s_BURST: %q must be a positive integer", name, env(name+"_BURST", burstDef)))
			b = 1
		}
		r.Burst = b
		return r
	}
	c.Defaults.KeyRate = rate("CHATVAULT_RATE_KEY", "600/1m", "60")
	c.Defaults.TenantRte = rate("CHATVAULT_RATE_TENANT", "1200/1m", "120")
	c.Defaults.WebhookRate = rate("CHATVAULT_RATE_WEBHOOK", "60000/1m", "2000")
	if v := env("CHATVAULT_WORKERS", "8"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("CHATVAULT_WORKERS: %q must be a whole number (0 runs no workers)", v))
		}
		c.Workers = n
	}

	switch c.Processing {
	case "auto", "on", "off":
	default:
		errs = append(errs, fmt.Errorf("CHATVAULT_PROCESSING: %q must be auto, on or off", c.Processing))
	}
	if v := env("CHATVAULT_TRANSCODE_WORKERS", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("CHATVAULT_TRANSCODE_WORKERS: %q must be a positive whole number", v))
		}
		c.TranscodeWorkers = n
	}

	if c.ConfigFile != "" {
		if err := c.loadTenants(c.ConfigFile, getenv); err != nil {
			errs = append(errs, err)
		}
	}
	if key := env("CHATVAULT_API_KEY", ""); key != "" {
		id := env("CHATVAULT_DEV_TENANT", "dev")
		if !tenantIDPattern.MatchString(id) {
			errs = append(errs, fmt.Errorf("CHATVAULT_DEV_TENANT: %q must match %s", id, tenantIDPattern))
		}
		t, ok := c.Tenants[id]
		if !ok {
			t = &Tenant{ID: id, Name: "development"}
			c.Tenants[id] = t
		}
		t.APIKeys = append(t.APIKeys, APIKey{ID: "dev", Hash: auth.HashKey(key), Scopes: auth.AllScopes})
		t.WhatsAppCloud.GraphBaseURL = env("WHATSAPP_GRAPH_URL", t.WhatsAppCloud.GraphBaseURL)
		t.WhatsAppCloud.AccessToken = env("WHATSAPP_TOKEN", t.WhatsAppCloud.AccessToken)
		t.URLAllowlist = append(t.URLAllowlist, splitList(env("CHATVAULT_DEV_ALLOWLIST", ""))...)
		c.DevKey = true
	}
	for _, t := range c.Tenants {
		if err := c.resolveTenant(t); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

func (c *Config) loadTenants(path string, getenv func(string) string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("CHATVAULT_CONFIG: %w", err)
	}
	// ${VAR} expands from the environment so secrets stay out of the file.
	expanded := os.Expand(string(raw), getenv)
	var file struct {
		Tenants []*Tenant `yaml:"tenants"`
	}
	dec := yaml.NewDecoder(strings.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, t := range file.Tenants {
		if !tenantIDPattern.MatchString(t.ID) {
			return fmt.Errorf("%s: tenant id %q must match %s", path, t.ID, tenantIDPattern)
		}
		if _, dup := c.Tenants[t.ID]; dup {
			return fmt.Errorf("%s: tenant %q is listed twice", path, t.ID)
		}
		c.Tenants[t.ID] = t
	}
	return nil
}

func (c *Config) resolveTenant(t *Tenant) error {
	t.SizeLimits = map[string]int64{}
	for k, v := range c.Defaults.Limits {
		t.SizeLimits[k] = v
	}
	for kind, v := range t.Limits {
		if _, ok := DefaultLimits[kind]; !ok {
			return fmt.Errorf("tenant %s: limits: unknown kind %q", t.ID, kind)
		}
		n, err := ParseSize(v)
		if err != nil {
			return fmt.Errorf("tenant %s: limits.%s: %w", t.ID, kind, err)
		}
		t.SizeLimits[kind] = n
	}
	t.KeyRate, t.TenantRate = c.Defaults.KeyRate, c.Defaults.TenantRte
	var err error
	if t.RateLimit.Key != "" {
		if t.KeyRate, err = parseRate(t.RateLimit.Key, strconv.Itoa(max(t.RateLimit.KeyBurst, 1))); err != nil {
			return fmt.Errorf("tenant %s: rate_limit.key: %w", t.ID, err)
		}
	}
	if t.RateLimit.Tenant != "" {
		if t.TenantRate, err = parseRate(t.RateLimit.Tenant, strconv.Itoa(max(t.RateLimit.TenantBurst, 1))); err != nil {
			return fmt.Errorf("tenant %s: rate_limit.tenant: %w", t.ID, err)
		}
	}
	for _, r := range t.URLAuth {
		if r.Host == "" || r.Header == "" {
			return fmt.Errorf("tenant %s: url_auth entries need host and header", t.ID)
		}
	}
	if t.Process, err = resolveProcessing(t.Processing); err != nil {
		return fmt.Errorf("tenant %s: processing: %w", t.ID, err)
	}
	return nil
}

func resolveProcessing(p Processing) (ProcessSettings, error) {
	ps := ProcessSettings{
		Enabled: p.Enabled == nil || *p.Enabled,
		Options: transcode.Options{
			AudioFormat: p.AudioFormat,
			ThumbFormat: p.ThumbFormat,
			Params: transcode.Params{
				AudioBitrate:   p.AudioBitrate,
				VideoMaxHeight: p.VideoMaxHeight,
				VideoCRF:       p.VideoCRF,
				ThumbMaxSize:   p.ThumbMaxSize,
			},
		},
		CompressOversize: p.CompressOversize,
		OversizeLimit:    DefaultOversizeLimit,
	}
	if p.Renditions != nil {
		on := map[string]bool{}
		for _, r := range p.Renditions {
			if _, ok := RenditionGroups[r]; !ok {
				return ps, fmt.Errorf("renditions: unknown rendition %q: want audio, video, poster or thumbnail", r)
			}
			on[r] = true
		}
		ps.Options.Disabled = map[string]bool{}
		for group, names := range RenditionGroups {
			for _, n := range names {
				ps.Options.Disabled[n] = !on[group]
			}
		}
	}
	if err := ps.Options.Validate(); err != nil {
		return ps, err
	}
	if p.ReplaceOriginalsAfterDays < 0 || p.ReplaceOriginalsAfterDays > 36500 {
		return ps, fmt.Errorf("replace_originals_after_days: %d must be 0 (keep originals) to 36500", p.ReplaceOriginalsAfterDays)
	}
	ps.ReplaceAfter = time.Duration(p.ReplaceOriginalsAfterDays) * 24 * time.Hour
	if p.OversizeLimit != "" {
		n, err := ParseSize(p.OversizeLimit)
		if err != nil {
			return ps, fmt.Errorf("oversize_limit: %w", err)
		}
		ps.OversizeLimit = n
	}
	if p.CompressOversize && !ps.Enabled {
		return ps, errors.New("compress_oversize needs processing enabled")
	}
	if p.CompressOversize && ps.Options.Disabled["mp4"] && ps.Options.Disabled["mp3"] {
		return ps, errors.New("compress_oversize needs the audio or video rendition")
	}
	return ps, nil
}

// Keyring builds the API keyring of every tenant.
func (c *Config) Keyring() (*auth.Keyring, error) {
	kr := auth.NewKeyring()
	for _, t := range c.Tenants {
		for _, k := range t.APIKeys {
			if err := kr.Add(k.Hash, auth.Principal{TenantID: t.ID, KeyID: k.ID, Scopes: k.Scopes}); err != nil {
				return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
			}
		}
	}
	return kr, nil
}

// ParseSize reads "16MiB", "500KiB", "5MB" or a plain byte count.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size (e.g. 16MiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// parseRate reads "600/1m" with a burst.
func parseRate(spec, burst string) (Rate, error) {
	count, per, ok := strings.Cut(spec, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q: want COUNT/PERIOD, e.g. 600/1m", spec)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n <= 0 {
		return Rate{}, fmt.Errorf("%q: count must be a positive integer", spec)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("%q: period must be a duration such as 1m", spec)
	}
	b, err := strconv.Atoi(strings.TrimSpace(burst))
	if err != nil || b <= 0 {
		return Rate{}, fmt.Errorf("burst %q must be a positive integer", burst)
	}
	return Rate{Count: n, Period: d, Burst: b}, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
