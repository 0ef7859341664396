package events

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	// MaxHooks caps a tenant's subscriptions; Zapier makes one per zap.
	MaxHooks = 50
	// MaxURLLen caps a subscription URL.
	MaxURLLen = 2048
	// MaxCustomerIDLen and MaxTagLen cap filter values; a longer one could
	// never match a record.
	MaxCustomerIDLen = 256
	MaxTagLen        = 64

	// DefaultCacheTTL is how long a loaded cache is trusted before the next
	// read rebuilds it from storage, healing any drift a failed write left.
	DefaultCacheTTL = time.Hour

	createLease = 10 * time.Second
	createWait  = 5 * time.Second
	secretBytes = 32
	secretPfx   = "whsec_"
)

// HooksOption configures Hooks.
type HooksOption func(*Hooks)

// WithHooksClock injects the clock used for created_at and IDs.
func WithHooksClock(now func() time.Time) HooksOption { return func(h *Hooks) { h.now = now } }

// WithURLCheck adds a check of subscription URLs beyond their shape, such
// as the SSRF guard's (*source.Fetcher).CheckURL.
func WithURLCheck(c URLCheck) HooksOption { return func(h *Hooks) { h.checkURL = c } }

// WithCacheTTL sets how long a loaded cache is trusted (DefaultCacheTTL).
func WithCacheTTL(d time.Duration) HooksOption {
	return func(h *Hooks) {
		if d > 0 {
			h.cacheTTL = d
		}
	}
}

// Hooks manages REST hook subscriptions. Each is a JSON document in object
// storage, the truth; Redis holds a cache of a tenant's whole set, which
// reads rebuild from storage whenever its "loaded" marker is missing (a
// Redis restart, a flush, or the marker's expiry). It is safe for
// concurrent use.
type Hooks struct {
	blobs    BlobStore
	rdb      redis.UniversalClient
	prefix   string
	now      func() time.Time
	checkURL URLCheck
	cacheTTL time.Duration

	mu       sync.Mutex
	loadings map[string]*loading // tenant → rebuild in flight in this process
}

type loading struct {
	done chan struct{}
	subs []Subscription
	err  error
}

// NewHooks returns Hooks keeping documents in blobs and the cache under
// prefix, which must be brace-free.
func NewHooks(blobs BlobStore, rdb redis.UniversalClient, prefix string, opts ...HooksOption) *Hooks {
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("events: prefix %q must not contain braces", prefix))
	}
	h := &Hooks{
		blobs: blobs, rdb: rdb, prefix: prefix,
		now: time.Now, cacheTTL: DefaultCacheTTL,
		loadings: map[string]*loading{},
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

func docKey(tenantID, id string) string { return "tenants/" + tenantID + "/hooks/" + id + ".json" }
func docPrefix(tenantID string) string  { return "tenants/" + tenantID + "/hooks/" }

type hookKeys struct{ hash, loaded, ver, lock string }

func (h *Hooks) keys(tenantID string) hookKeys {
	base := space(h.prefix, tenantID) + "hooks"
	return hookKeys{hash: base, loaded: base + ":loaded", ver: base + ":ver", lock: base + ":lock"}
}

// Create validates and stores a subscription and returns it with its
// secret, which no other call except Get returns again. A tenant holds at
// most MaxHooks subscriptions; one more is apperr.Unprocessable.
func (h *Hooks) Create(ctx context.Context, tenantID, rawURL string, events []string, f Filters) (Subscription, error) {
	if !validTenant(tenantID) {
		return Subscription{}, apperr.New(apperr.Invalid, "invalid tenant")
	}
	u, evs, f, err := h.validate(tenantID, rawURL, events, f)
	if err != nil {
		return Subscription{}, err
	}
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(secret); err != nil {
		return Subscription{}, fmt.Errorf("events: secret: %w", err)
	}
	now := h.now().UTC()
	s := Subscription{
		ID:        newID("hook_", now),
		URL:       u,
		Events:    evs,
		Filters:   f,
		Secret:    secretPfx + base64.RawURLEncoding.EncodeToString(secret),
		CreatedAt: now,
		TenantID:  tenantID,
	}
	doc, err := json.Marshal(s)
	if err != nil {
		return Subscription{}, fmt.Errorf("events: encode subscription: %w", err)
	}

	// The lease makes count-then-write atomic per tenant, so two racing
	// creates at MaxHooks-1 cannot both get in.
	release, err := h.lock(ctx, tenantID)
	if err != nil {
		return Subscription{}, err
	}
	defer release()
	cur, err := h.load(ctx, tenantID)
	if err != nil {
		return Subscription{}, err
	}
	if len(cur) >= MaxHooks {
		return Subscription{}, apperr.New(apperr.Unprocessable, "a tenant has at most %d hook subscriptions; delete one first", MaxHooks)
	}
	if err := h.blobs.PutSmall(ctx, docKey(tenantID, s.ID), doc, "application/json"); err != nil {
		return Subscription{}, storageError(err)
	}
	if err := h.cacheSet(ctx, tenantID, s.ID, doc); err != nil {
		// The client will not learn this ID, so a retry must not find a
		// twin: take the document back. Should that fail too, the next
		// rebuild brings the subscription in, and its receiver gets events
		// it can answer with 410.
		_ = h.blobs.Delete(context.WithoutCancel(ctx), docKey(tenantID, s.ID))
		return Subscription{}, err
	}
	return s, nil
}

func (h *Hooks) validate(tenantID, rawURL string, events []string, f Filters) (string, []string, Filters, error) {
	var fields []apperr.FieldError
	bad := func(ptr, detail string) { fields = append(fields, apperr.FieldError{Pointer: ptr, Detail: detail}) }

	rawURL = strings.TrimSpace(rawURL)
	switch u, err := url.Parse(rawURL); {
	case rawURL == "":
		bad("/url", "url is required")
	case len(rawURL) > MaxURLLen:
		bad("/url", fmt.Sprintf("url is longer than %d bytes", MaxURLLen))
	case err != nil || !u.IsAbs() || u.Host == "":
		bad("/url", "url is not an absolute URL")
	case u.Scheme != "http" && u.Scheme != "https":
		bad("/url", "url must be http or https")
	case u.User != nil:
		bad("/url", "url must not carry credentials")
	case h.checkURL != nil:
		if err := h.checkURL(tenantID, rawURL); err != nil {
			bad("/url", err.Error())
		}
	}

	var evs []string
	if len(events) == 0 {
		bad("/events", "events must name at least one event type")
	}
	for i, e := range events {
		switch {
		case !ValidType(e):
			bad(fmt.Sprintf("/events/%d", i), fmt.Sprintf("unknown event type %q; use one of %s", e, strings.Join(Types, ", ")))
		case !slices.Contains(evs, e):
			evs = append(evs, e)
		}
	}

	if len(f.CustomerID) > MaxCustomerIDLen {
		bad("/filters/customer_id", fmt.Sprintf("customer_id has at most %d bytes", MaxCustomerIDLen))
	}
	if f.Kind != "" && !slices.Contains(kinds, f.Kind) {
		bad("/filters/kind", "kind must be one of "+strings.Join(kinds, ", "))
	}
	tag, err := normalizeTag(f.Tag)
	if err != nil {
		bad("/filters/tag", err.Error())
	}
	f.Tag = tag

	if len(fields) > 0 {
		return "", nil, Filters{}, apperr.WithFields("invalid hook subscription", fields...)
	}
	return rawURL, evs, f, nil
}

// normalizeTag applies media.NormalizeTags's rules to one tag; "" stays "".
func normalizeTag(t string) (string, error) {
	t = strings.ToLower(strings.TrimSpace(t))
	switch {
	case t == "":
		return "", nil
	case len([]rune(t)) > MaxTagLen:
		return "", fmt.Errorf("a tag has at most %d characters", MaxTagLen)
	case strings.ContainsFunc(t, func(r rune) bool { return r == ',' || unicode.IsControl(r) }):
		return "", errors.New("a tag must not contain commas or control characters")
	}
	return t, nil
}

// List returns the tenant's subscriptions, oldest first, without their
// secrets: it backs GET /v1/hooks, which never shows them.
func (h *Hooks) List(ctx context.Context, tenantID string) ([]Subscription, error) {
	if !validTenant(tenantID) {
		return []Subscription{}, nil
	}
	subs, err := h.load(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for i := range subs {
		subs[i].Secret = ""
	}
	return subs, nil
}

// Get returns one subscription with its secret, for signing deliveries.
// Unknown IDs and other tenants' are apperr.NotFound.
func (h *Hooks) Get(ctx context.Context, tenantID, id string) (Subscription, error) {
	if !validTenant(tenantID) || !ValidHookID(id) {
		return Subscription{}, notFound()
	}
	subs, err := h.load(ctx, tenantID)
	if err != nil {
		return Subscription{}, err
	}
	for _, s := range subs {
		if s.ID == id {
			return s, nil
		}
	}
	return Subscription{}, notFound()
}

// Delete removes a subscription. Unknown IDs and other tenants' are
// apperr.NotFound. A retry after a failed Delete finishes the job.
func (h *Hooks) Delete(ctx context.Context, tenantID, id string) error {
	if !validTenant(tenantID) || !ValidHookID(id) {
		return notFound()
	}
	if _, err := h.Get(ctx, tenantID, id); err != nil {
		if !apperr.Is(err, apperr.NotFound) {
			return err
		}
		// The cache may have missed a create whose cache write failed;
		// storage decides.
		if _, err := h.blobs.GetSmall(ctx, docKey(tenantID, id)); err != nil {
			if apperr.Is(err, apperr.NotFound) {
				return notFound()
			}
			return storageError(err)
		}
	}
	if err := h.blobs.Delete(ctx, docKey(tenantID, id)); err != nil {
		return storageError(err)
	}
	// Storage first: should this fail, the cache still lists the
	// subscription, and the client's retry of the DELETE finds it and ends
	// here again.
	return h.cacheDel(ctx, tenantID, id)
}

// ForEvent returns the tenant's subscriptions, secrets included, that e
// should be delivered to.
func (h *Hooks) ForEvent(ctx context.Context, tenantID string, e Event) ([]Subscription, error) {
	if !validTenant(tenantID) {
		return nil, nil
	}
	subs, err := h.load(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := subs[:0]
	for _, s := range subs {
		if s.Matches(e) {
			out = append(out, s)
		}
	}
	return out, nil
}

// load returns every subscription of the tenant, from the cache when it is
// loaded, else rebuilt from storage. Concurrent rebuilds of one tenant in
// this process share one storage listing.
func (h *Hooks) load(ctx context.Context, tenantID string) ([]Subscription, error) {
	subs, ok, err := h.readCache(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if ok {
		return subs, nil
	}
	h.mu.Lock()
	l, running := h.loadings[tenantID]
	if !running {
		l = &loading{done: make(chan struct{})}
		h.loadings[tenantID] = l
		go func() {
			// Detached from this caller: others wait on the same rebuild,
			// and one caller giving up must not fail them all.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			l.subs, l.err = h.rebuild(rctx, tenantID)
			h.mu.Lock()
			delete(h.loadings, tenantID)
			h.mu.Unlock()
			close(l.done)
		}()
	}
	h.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil, apperr.Wrap(apperr.Unavailable, ctx.Err(), "hook subscriptions unavailable")
	}
	if l.err != nil {
		return nil, l.err
	}
	return slices.Clone(l.subs), nil
}

func (h *Hooks) readCache(ctx context.Context, tenantID string) ([]Subscription, bool, error) {
	k := h.keys(tenantID)
	var loaded *redis.IntCmd
	var all *redis.MapStringStringCmd
	_, err := h.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		loaded = p.Exists(ctx, k.loaded)
		all = p.HGetAll(ctx, k.hash)
		return nil
	})
	if err != nil {
		return nil, false, cacheError(err)
	}
	if loaded.Val() == 0 {
		return nil, false, nil
	}
	subs := make([]Subscription, 0, len(all.Val()))
	for _, raw := range all.Val() {
		var s Subscription
		// A corrupt entry is ours and cannot be fixed here; skipping it
		// beats failing every event of the tenant. The next rebuild
		// replaces it.
		if json.Unmarshal([]byte(raw), &s) == nil && s.TenantID == tenantID {
			subs = append(subs, s)
		}
	}
	sortSubs(subs)
	return subs, true, nil
}

// rebuildScript replaces the cache with a freshly listed set, unless a
// create or delete ran since the listing began (the version moved): its
// change might be missing from the listing, so the marker stays unset and
// the next read lists again.
var rebuildScript = redis.NewScript(`
local v = redis.call('GET', KEYS[3]) or ''
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do
	redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1`)

func (h *Hooks) rebuild(ctx context.Context, tenantID string) ([]Subscription, error) {
	k := h.keys(tenantID)
	ver, err := h.rdb.Get(ctx, k.ver).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, cacheError(err)
	}
	var subs []Subscription
	args := []any{ver, h.cacheTTL.Milliseconds()}
	err = h.blobs.List(ctx, docPrefix(tenantID), func(key string) error {
		if !strings.HasSuffix(key, ".json") {
			return nil
		}
		data, err := h.blobs.GetSmall(ctx, key)
		if apperr.Is(err, apperr.NotFound) {
			return nil // deleted since it was listed
		}
		if err != nil {
			return err
		}
		var s Subscription
		if err := json.Unmarshal(data, &s); err != nil || s.TenantID != tenantID || !ValidHookID(s.ID) {
			return nil // not ours to interpret; leave it for an operator
		}
		subs = append(subs, s)
		args = append(args, s.ID, data)
		return nil
	})
	if err != nil {
		return nil, storageError(err)
	}
	if err := rebuildScript.Run(ctx, h.rdb, []string{k.hash, k.loaded, k.ver}, args...).Err(); err != nil {
		return nil, cacheError(err)
	}
	sortSubs(subs)
	return subs, nil
}

// cacheSet and cacheDel bump the version in the same transaction, which
// fences any rebuild that listed storage before the change.
func (h *Hooks) cacheSet(ctx context.Context, tenantID, id string, doc []byte) error {
	k := h.keys(tenantID)
	_, err := h.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.hash, id, doc)
		p.Incr(ctx, k.ver)
		return nil
	})
	return cacheError(err)
}

func (h *Hooks) cacheDel(ctx context.Context, tenantID, id string) error {
	k := h.keys(tenantID)
	_, err := h.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, k.hash, id)
		p.Incr(ctx, k.ver)
		return nil
	})
	return cacheError(err)
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// lock takes the tenant's create lease, waiting up to createWait for
// another create to finish. The lease expires by itself should its holder
// die.
func (h *Hooks) lock(ctx context.Context, tenantID string) (func(), error) {
	key := h.keys(tenantID).lock
	token := newID("", time.Now())
	deadline := time.Now().Add(createWait)
	for {
		ok, err := h.rdb.SetNX(ctx, key, token, createLease).Result()
		if err != nil {
			return nil, cacheError(err)
		}
		if ok {
			return func() {
				_ = unlockScript.Run(context.WithoutCancel(ctx), h.rdb, []string{key}, token).Err()
			}, nil
		}
		if time.Now().After(deadline) {
			return nil, apperr.New(apperr.Conflict, "another hook subscription is being created; try again")
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, apperr.Wrap(apperr.Unavailable, ctx.Err(), "hook subscriptions unavailable")
		case <-t.C:
		}
	}
}

// sortSubs orders by ID: creation order (ULIDs), to the millisecond.
func sortSubs(subs []Subscription) {
	slices.SortFunc(subs, func(a, b Subscription) int { return strings.Compare(a.ID, b.ID) })
}

func notFound() error { return apperr.New(apperr.NotFound, "hook subscription not found") }

func cacheError(err error) error {
	if err == nil {
		return nil
	}
	return apperr.Wrap(apperr.Unavailable, err, "hook subscriptions unavailable")
}

func storageError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := apperr.As(err); ok {
		return err
	}
	return apperr.Wrap(apperr.Unavailable, err, "hook subscription storage unavailable")
}
