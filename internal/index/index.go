// Package index is the Redis view of the media records: per-customer
// listings, kind and tag filters, a record cache, natural-dedupe keys and
// cluster-wide locks. Everything in it can be rebuilt from object storage.
//
// Key layout (T is the tenant's hash tag, so one tenant's keys share a
// Redis Cluster slot and any of them can meet in one MULTI, MGET or script):
//
//	<prefix>{t:<tenant>}:m:<id>                          record JSON (media.Media)
//	<prefix>{t:<tenant>}:c:<customer>                    zset, every media of the customer
//	<prefix>{t:<tenant>}:c:<customer>:k:<kind>           zset, one kind
//	<prefix>{t:<tenant>}:c:<customer>:t:<tag>            zset, one tag
//	<prefix>{t:<tenant>}:src:<source key>                media ID (natural dedupe)
//	<prefix>{t:<tenant>}:lock:<name>                     lock token
//
// User strings inside key names go through esc, so a ':' or '{' in a
// customer ID or tag can neither split a key nor move it to another slot.
// Every zset member has score 0 and reads "<created_at unix ms, 13
// digits>:<media id>": lexicographic order is then time order with ties
// broken by ID, and a page costs O(log N + page) whatever the set's size.
package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
)

var _ media.Index = (*Index)(nil)

const (
	defaultLimit = 50
	maxLimit     = 200

	// maxScan bounds the members one ListByCustomer call may walk when it
	// has to filter (kind and tag together, or stale members). Past it the
	// call returns what it found, possibly nothing, with a next cursor.
	maxScan = 1000
	// filterBatch is how many members a filtering walk reads per round trip.
	filterBatch = 100

	msDigits = 13
	maxMs    = 9_999_999_999_999 // 13 digits last until the year 2286
)

// Index implements media.Index on Redis (single node, Sentinel or Cluster).
type Index struct {
	rdb    redis.UniversalClient
	prefix string
	lease  time.Duration
}

// Option tunes an Index.
type Option func(*Index)

// WithLockLease sets how long a lock outlives a holder that stopped renewing
// it (a crash, a partition). Shorter frees locks sooner after a crash but
// renews more often. The default is 10 s.
func WithLockLease(d time.Duration) Option {
	return func(ix *Index) {
		if d > 0 {
			ix.lease = d
		}
	}
}

// New returns an Index storing its keys under prefix. The prefix must not
// contain braces: the tenant's hash tag must be the first {...} of every key.
func New(rdb redis.UniversalClient, prefix string, opts ...Option) *Index {
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("index: prefix %q must not contain braces", prefix))
	}
	ix := &Index{rdb: rdb, prefix: prefix, lease: 10 * time.Second}
	for _, o := range opts {
		o(ix)
	}
	return ix
}

// Ping reports whether Redis answers, for readiness probes.
func (ix *Index) Ping(ctx context.Context) error {
	return unavailable(ix.rdb.Ping(ctx).Err())
}

// space is the key prefix of one tenant, hash tag included.
type space string

func (ix *Index) space(tenantID string) space {
	return space(ix.prefix + "{t:" + esc(tenantID) + "}:")
}

func (s space) record(id string) string { return string(s) + "m:" + esc(id) }
func (s space) customer(c string) string {
	return string(s) + "c:" + esc(c)
}
func (s space) customerKind(c string, k media.Kind) string {
	return s.customer(c) + ":k:" + esc(string(k))
}
func (s space) customerTag(c, tag string) string {
	return s.customer(c) + ":t:" + esc(tag)
}
func (s space) source(key string) string { return string(s) + "src:" + esc(key) }
func (s space) lock(name string) string  { return string(s) + "lock:" + esc(name) }

// esc percent-encodes everything but a readable, brace- and colon-free set,
// and '%' itself, so distinct inputs always give distinct key parts.
func esc(s string) string {
	const hexDigits = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '@'
}

func unixMs(t time.Time) int64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	if ms > maxMs {
		return maxMs
	}
	return ms
}

func padMs(t time.Time) string {
	s := strconv.FormatInt(unixMs(t), 10)
	return strings.Repeat("0", msDigits-len(s)) + s
}

func member(m media.Media) string { return padMs(listedAt(m)) + ":" + m.ID }

// listedAt orders a customer's media: when the customer sent it (the
// message time), or when it was archived if that is unknown.
func listedAt(m media.Media) time.Time {
	if !m.Source.ReceivedAt.IsZero() {
		return m.Source.ReceivedAt
	}
	return m.CreatedAt
}

// memberID returns the media ID of a well-formed member.
func memberID(mem string) (string, bool) {
	if len(mem) <= msDigits+1 || mem[msDigits] != ':' {
		return "", false
	}
	for i := 0; i < msDigits; i++ {
		if mem[i] < '0' || mem[i] > '9' {
			return "", false
		}
	}
	return mem[msDigits+1:], true
}

// entries lists the sorted-set entries of m, keyed by set.
func (s space) entries(m media.Media) map[string]string {
	mem := member(m)
	e := map[string]string{
		s.customer(m.CustomerID):             mem,
		s.customerKind(m.CustomerID, m.Kind): mem,
	}
	for _, t := range m.Tags {
		if t != "" {
			e[s.customerTag(m.CustomerID, t)] = mem
		}
	}
	return e
}

// releaseSource drops a dedupe key only while it still names the record
// being dropped, so a retired record never erases a live record's key.
var releaseSource = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)

// Put writes m's cache entry and index entries in one MULTI/EXEC, so a
// reader sees the record either fully indexed or not at all.
func (ix *Index) Put(ctx context.Context, prev *media.Media, m media.Media) error {
	if m.ID == "" {
		return errors.New("index: put: media without ID")
	}
	if prev != nil && prev.TenantID != m.TenantID {
		// Two tenants' keys live in different slots and can't share a MULTI.
		return fmt.Errorf("index: put %s: tenant changed from %q to %q", m.ID, prev.TenantID, m.TenantID)
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("index: put %s: %w", m.ID, err)
	}
	s := ix.space(m.TenantID)
	next := s.entries(m)
	_, err = ix.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if prev != nil {
			for key, mem := range s.entries(*prev) {
				if next[key] != mem {
					p.ZRem(ctx, key, mem)
				}
			}
			if prev.ID != m.ID {
				p.Del(ctx, s.record(prev.ID))
			}
			if prev.SourceKey != "" && prev.SourceKey != m.SourceKey {
				releaseSource.Eval(ctx, p, []string{s.source(prev.SourceKey)}, prev.ID)
			}
		}
		p.Set(ctx, s.record(m.ID), doc, 0)
		for key, mem := range next {
			p.ZAdd(ctx, key, redis.Z{Member: mem})
		}
		s.tagMembers(ctx, p, prev, m)
		if m.SourceKey != "" {
			p.Set(ctx, s.source(m.SourceKey), m.ID, 0)
		}
		return nil
	})
	return unavailable(err)
}

// Remove drops m's cache entry, index entries and dedupe key atomically.
func (ix *Index) Remove(ctx context.Context, m media.Media) error {
	s := ix.space(m.TenantID)
	_, err := ix.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for key, mem := range s.entries(m) {
			p.ZRem(ctx, key, mem)
		}
		p.Del(ctx, s.record(m.ID))
		if m.SourceKey != "" {
			releaseSource.Eval(ctx, p, []string{s.source(m.SourceKey)}, m.ID)
		}
		for _, t := range m.Tags {
			s.dropTagMember(ctx, p, t, m.ID)
		}
		return nil
	})
	return unavailable(err)
}

// Get returns the cached record of id; ok is false on a miss.
func (ix *Index) Get(ctx context.Context, tenantID, id string) (media.Media, bool, error) {
	doc, err := ix.rdb.Get(ctx, ix.space(tenantID).record(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return media.Media{}, false, nil
	}
	if err != nil {
		return media.Media{}, false, unavailable(err)
	}
	var m media.Media
	if err := json.Unmarshal(doc, &m); err != nil {
		return media.Media{}, false, fmt.Errorf("index: cached record %s: %w", id, err)
	}
	return m, true, nil
}

// LookupSource returns the media ID archived for a natural source key.
func (ix *Index) LookupSource(ctx context.Context, tenantID, sourceKey string) (string, bool, error) {
	id, err := ix.rdb.Get(ctx, ix.space(tenantID).source(sourceKey)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, unavailable(err)
	}
	return id, true, nil
}

// ListByCustomer returns one page of the customer's media, newest first.
//
// Kind alone and tag alone each read their own set, so a page costs one
// ZRANGE and one MGET. Kind and tag together walk the tag set and keep the
// records of that kind, at most maxScan members per call: when the walk
// stops there, the page may be short or even empty while the next cursor is
// set. Clients follow next cursors until it is "", never until a page is
// empty. Since and until have millisecond precision.
func (ix *Index) ListByCustomer(ctx context.Context, tenantID, customerID string, q media.ListQuery) ([]media.Media, string, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = defaultLimit
	case limit > maxLimit:
		limit = maxLimit
	}
	s := ix.space(tenantID)

	key := s.customer(customerID)
	keep := func(media.Media) bool { return true }
	batch := limit + 1
	switch {
	case q.Tag != "" && q.Kind != "":
		key = s.customerTag(customerID, q.Tag)
		keep = func(m media.Media) bool { return m.Kind == q.Kind }
		batch = max(limit+1, filterBatch)
	case q.Tag != "":
		key = s.customerTag(customerID, q.Tag)
	case q.Kind != "":
		key = s.customerKind(customerID, q.Kind)
	}

	// Lex bounds: "[<since>" admits every member at or after since, and
	// "(<until>" every member before until, since a member extends its
	// 13-digit time with ":<id>".
	lower := "-"
	if !q.Since.IsZero() {
		lower = "[" + padMs(q.Since)
	}
	upper := "+"
	if !q.Until.IsZero() {
		upper = "(" + padMs(q.Until)
	}
	if q.Cursor != "" {
		after, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		if upper == "+" || "("+after < upper {
			upper = "(" + after
		}
	}

	page := make([]media.Media, 0, limit)
	var last string // member of the last record on the page
	for scanned := 0; ; {
		members, err := ix.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: key, Start: upper, Stop: lower, ByLex: true, Rev: true, Count: int64(batch),
		}).Result()
		if err != nil {
			return nil, "", unavailable(err)
		}
		if len(members) == 0 {
			return page, "", nil
		}
		recs, err := ix.records(ctx, s, key, members)
		if err != nil {
			return nil, "", err
		}
		for i, m := range recs {
			if m == nil || !keep(*m) {
				continue
			}
			if len(page) == limit {
				// A match beyond the page proves there is a next page.
				return page, encodeCursor(last), nil
			}
			page = append(page, *m)
			last = members[i]
		}
		if len(members) < batch {
			return page, "", nil
		}
		end := members[len(members)-1]
		upper = "(" + end
		scanned += len(members)
		if scanned >= maxScan {
			// Nothing after last matched up to end, so resuming at end
			// skips nothing and keeps the work per call bounded.
			return page, encodeCursor(end), nil
		}
		if q.Tag == "" || q.Kind == "" {
			// Only stale members got us here; fetch what the page lacks.
			batch = limit + 1 - len(page)
		}
	}
}

// records reads the cached records of members with one MGET. A member
// without a record gets nil and is dropped from key, so stale members (left
// by an eviction or a half-done reset) stop costing reads.
func (ix *Index) records(ctx context.Context, s space, key string, members []string) ([]*media.Media, error) {
	keys := make([]string, len(members))
	for i, mem := range members {
		id, ok := memberID(mem)
		if !ok {
			id = "\x00invalid" // no record has this ID: treated as stale
		}
		keys[i] = s.record(id)
	}
	vals, err := ix.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	recs := make([]*media.Media, len(members))
	var staleKeys, staleMembers []string
	for i, v := range vals {
		doc, ok := v.(string)
		if !ok {
			staleKeys = append(staleKeys, keys[i])
			staleMembers = append(staleMembers, members[i])
			continue
		}
		var m media.Media
		if err := json.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("index: cached record %s: %w", keys[i], err)
		}
		recs[i] = &m
	}
	if len(staleMembers) > 0 {
		// Best effort: the next reindex cleans up whatever this misses.
		_ = dropStale.Run(ctx, ix.rdb, append([]string{key}, staleKeys...), toArgs(staleMembers)...).Err()
	}
	return recs, nil
}

// dropStale removes members whose record is still missing when it runs, so
// a record put again since the MGET keeps its member.
var dropStale = redis.NewScript(`
local n = 0
for i, mem in ipairs(ARGV) do
	if redis.call('EXISTS', KEYS[i + 1]) == 0 then
		n = n + redis.call('ZREM', KEYS[1], mem)
	end
end
return n`)

func toArgs(ss []string) []any {
	a := make([]any, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}

// Reset deletes every key under the prefix except live locks: a reindex
// that holds a lock while it resets must keep holding it.
func (ix *Index) Reset(ctx context.Context) error {
	match := globEscape(ix.prefix) + "*"
	var err error
	switch c := ix.rdb.(type) {
	case *redis.ClusterClient:
		// SCAN sees only the node it runs on.
		err = c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return ix.resetNode(ctx, node, match)
		})
	case *redis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error {
			return ix.resetNode(ctx, shard, match)
		})
	default:
		err = ix.resetNode(ctx, ix.rdb, match)
	}
	return unavailable(err)
}

func (ix *Index) resetNode(ctx context.Context, c redis.Cmdable, match string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			// One UNLINK per key: a multi-key UNLINK fails with CROSSSLOT on
			// a cluster node holding several tenants' slots.
			_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					if !ix.isLock(k) {
						p.Unlink(ctx, k)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// isLock reports whether key is a lock. esc keeps '}' out of tenant IDs, so
// the first '}' closes the hash tag.
func (ix *Index) isLock(key string) bool {
	rest, ok := strings.CutPrefix(key, ix.prefix+"{t:")
	if !ok {
		return false
	}
	i := strings.IndexByte(rest, '}')
	return i >= 0 && strings.HasPrefix(rest[i:], "}:lock:")
}

func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unavailable classifies a Redis failure as a dependency outage (503).
// Context errors stay as they are: the caller gave up, Redis did not fail.
func unavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
}
