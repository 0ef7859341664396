package index

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
	"github.com/chatvault/chatvault/internal/testenv"
)

var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newIndex(t testing.TB, opts ...Option) (*Index, *redis.Client, string) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	return New(rdb, prefix, opts...), rdb, prefix
}

func rec(tenant, customer, id string, kind media.Kind, at time.Time, tags ...string) media.Media {
	return media.Media{
		ID: id, TenantID: tenant, CustomerID: customer, Kind: kind,
		MimeType: "image/jpeg", SizeBytes: 42, Tags: tags,
		SourceKey: "src-" + id, CreatedAt: at, UpdatedAt: at,
	}
}

func put(t testing.TB, ix *Index, ms ...media.Media) {
	t.Helper()
	for _, m := range ms {
		if err := ix.Put(context.Background(), nil, m); err != nil {
			t.Fatalf("Put(%s): %v", m.ID, err)
		}
	}
}

func ids(ms []media.Media) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// listAll follows next cursors to the end and returns every ID in order.
func listAll(t testing.TB, ix *Index, tenant, customer string, q media.ListQuery) []string {
	t.Helper()
	var all []string
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatal("cursor never ends")
		}
		page, next, err := ix.ListByCustomer(context.Background(), tenant, customer, q)
		if err != nil {
			t.Fatalf("ListByCustomer(%+v): %v", q, err)
		}
		if len(page) > q.Limit {
			t.Fatalf("page of %d over limit %d", len(page), q.Limit)
		}
		all = append(all, ids(page)...)
		if next == "" {
			return all
		}
		q.Cursor = next
	}
}

func TestListNewestFirst(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	put(t, ix,
		rec("t1", "c1", "a", media.KindImage, base),
		rec("t1", "c1", "d", media.KindImage, base.Add(3*time.Hour)),
		rec("t1", "c1", "b", media.KindAudio, base.Add(time.Hour)),
		rec("t1", "c1", "c2", media.KindImage, base.Add(2*time.Hour)),
		rec("t1", "c1", "c1", media.KindImage, base.Add(2*time.Hour)), // same ms: ID breaks the tie
		rec("t1", "c2", "other", media.KindImage, base.Add(5*time.Hour)),
		rec("t2", "c1", "other-tenant", media.KindImage, base.Add(5*time.Hour)),
	)
	page, next, err := ix.ListByCustomer(context.Background(), "t1", "c1", media.ListQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"d", "c2", "c1", "b", "a"}; !slices.Equal(ids(page), want) {
		t.Fatalf("order = %v, want %v", ids(page), want)
	}
	if next != "" {
		t.Fatalf("next = %q at the end", next)
	}
	if page[0].MimeType != "image/jpeg" || page[0].TenantID != "t1" || !page[0].CreatedAt.Equal(base.Add(3*time.Hour)) {
		t.Fatalf("record not round-tripped: %+v", page[0])
	}
	// Exactly limit left: the page is full and still the last one.
	page, next, err = ix.ListByCustomer(context.Background(), "t1", "c1", media.ListQuery{Limit: 5})
	if err != nil || len(page) != 5 || next != "" {
		t.Fatalf("limit = len: %d records, next %q, err %v", len(page), next, err)
	}
}

func TestPagingVisitsEachRecordOnce(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	const n = 1000
	want := make([]string, 0, n)
	ctx := context.Background()
	for i := range n {
		// Three records per millisecond, so ties straddle page boundaries.
		m := rec("t", "c", fmt.Sprintf("m%04d", i), media.KindImage, base.Add(time.Duration(i/3)*time.Millisecond))
		if err := ix.Put(ctx, nil, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.ID)
	}
	slices.Reverse(want) // newest first; within a millisecond, higher ID first
	got := listAll(t, ix, "t", "c", media.ListQuery{Limit: 7})
	if !slices.Equal(got, want) {
		t.Fatalf("got %d IDs (first %v), want %d in reverse order", len(got), got[:min(len(got), 5)], n)
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	h := func(n int) time.Time { return base.Add(time.Duration(n) * time.Hour) }
	put(t, ix,
		rec("t", "c", "i0", media.KindImage, h(0), "vip"),
		rec("t", "c", "a1", media.KindAudio, h(1), "vip", "invoice"),
		rec("t", "c", "i2", media.KindImage, h(2)),
		rec("t", "c", "v3", media.KindVideo, h(3), "invoice"),
		rec("t", "c", "i4", media.KindImage, h(4), "vip", "invoice"),
		rec("t", "c", "a5", media.KindAudio, h(5), "vip"),
		rec("t", "c", "i6", media.KindImage, h(6), "vip"),
		rec("t", "c2", "x", media.KindImage, h(4), "vip"),
	)
	tests := []struct {
		name string
		q    media.ListQuery
		want []string
	}{
		{"all", media.ListQuery{}, []string{"i6", "a5", "i4", "v3", "i2", "a1", "i0"}},
		{"kind", media.ListQuery{Kind: media.KindImage}, []string{"i6", "i4", "i2", "i0"}},
		{"kind none", media.ListQuery{Kind: media.KindSticker}, nil},
		{"tag", media.ListQuery{Tag: "invoice"}, []string{"i4", "v3", "a1"}},
		{"tag unknown", media.ListQuery{Tag: "nope"}, nil},
		{"kind and tag", media.ListQuery{Kind: media.KindImage, Tag: "vip"}, []string{"i6", "i4", "i0"}},
		{"since inclusive", media.ListQuery{Since: h(4)}, []string{"i6", "a5", "i4"}},
		{"until exclusive", media.ListQuery{Until: h(2)}, []string{"a1", "i0"}},
		{"since and until", media.ListQuery{Since: h(2), Until: h(5)}, []string{"i4", "v3", "i2"}},
		{"until before since", media.ListQuery{Since: h(5), Until: h(2)}, nil},
		{"kind since until", media.ListQuery{Kind: media.KindAudio, Since: h(1), Until: h(5)}, []string{"a1"}},
		{"tag since", media.ListQuery{Tag: "vip", Since: h(1)}, []string{"i6", "a5", "i4", "a1"}},
		{"kind tag until", media.ListQuery{Kind: media.KindImage, Tag: "vip", Until: h(6)}, []string{"i4", "i0"}},
		{"before epoch", media.ListQuery{Until: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 2, 50} {
			t.Run(fmt.Sprintf("%s/limit=%d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Limit = limit
				if got := listAll(t, ix, "t", "c", q); !slices.Equal(got, tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			})
		}
	}

	// A cursor from a wider listing still honours a narrower until.
	_, next, err := ix.ListByCustomer(context.Background(), "t", "c", media.ListQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	page, _, err := ix.ListByCustomer(context.Background(), "t", "c", media.ListQuery{Limit: 10, Cursor: next, Until: h(3)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"i2", "a1", "i0"}; !slices.Equal(ids(page), want) {
		t.Fatalf("cursor with until: got %v, want %v", ids(page), want)
	}
}

// Kind plus tag walks the tag set with bounded work per call: a sparse
// match can need several calls, and some pages come back empty with a
// cursor. Nothing is skipped or repeated.
func TestKindAndTagWalkIsBounded(t *testing.T) {
	t.Parallel()
	ix, rdb, _ := newIndex(t)
	ctx := context.Background()
	const n = 2500
	s := ix.space("t")
	pipe := rdb.Pipeline()
	for i := range n {
		kind := media.KindImage
		if i == 0 || i == 1200 {
			kind = media.KindVideo
		}
		m := rec("t", "c", fmt.Sprintf("m%04d", i), kind, base.Add(time.Duration(i)*time.Second), "x")
		seed(ctx, pipe, s, m)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	q := media.ListQuery{Kind: media.KindVideo, Tag: "x", Limit: 10}
	page, next, err := ix.ListByCustomer(ctx, "t", "c", q)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 0 || next == "" {
		t.Fatalf("first call: %d records, next %q; want an empty page with a cursor", len(page), next)
	}
	if got, want := listAll(t, ix, "t", "c", q), []string{"m1200", "m0000"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestPutWithPrevMovesEntries(t *testing.T) {
	t.Parallel()
	ix, rdb, _ := newIndex(t)
	ctx := context.Background()
	prev := rec("t", "c", "m1", media.KindImage, base, "old", "keep")
	put(t, ix, prev, rec("t", "c", "m2", media.KindImage, base.Add(-time.Hour), "old"))

	m := prev
	m.Tags = []string{"keep", "new"}
	m.Kind = media.KindDocument
	m.CreatedAt = base.Add(time.Minute)
	if err := ix.Put(ctx, &prev, m); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    media.ListQuery
		want []string
	}{
		{media.ListQuery{Tag: "old"}, []string{"m2"}},
		{media.ListQuery{Tag: "keep"}, []string{"m1"}},
		{media.ListQuery{Tag: "new"}, []string{"m1"}},
		{media.ListQuery{Kind: media.KindImage}, []string{"m2"}},
		{media.ListQuery{Kind: media.KindDocument}, []string{"m1"}},
		{media.ListQuery{}, []string{"m1", "m2"}},
	} {
		tc.q.Limit = 10
		if got := listAll(t, ix, "t", "c", tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: got %v, want %v", tc.q, got, tc.want)
		}
	}
	// The old created_at member is gone, not just shadowed.
	if n := rdb.ZCard(ctx, ix.space("t").customer("c")).Val(); n != 2 {
		t.Errorf("customer set has %d members, want 2", n)
	}
	got, ok, err := ix.Get(ctx, "t", "m1")
	if err != nil || !ok || !slices.Equal(got.Tags, m.Tags) || got.Kind != media.KindDocument {
		t.Fatalf("Get = %+v, %v, %v", got, ok, err)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	ix, rdb, prefix := newIndex(t)
	ctx := context.Background()
	m := rec("t", "c", "m1", media.KindVideo, base, "a", "b")
	put(t, ix, m, rec("t", "c", "m2", media.KindVideo, base, "a"))
	if err := ix.Remove(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ix.Get(ctx, "t", "m1"); ok || err != nil {
		t.Fatalf("Get after Remove: ok=%v err=%v", ok, err)
	}
	if _, ok, err := ix.LookupSource(ctx, "t", m.SourceKey); ok || err != nil {
		t.Fatalf("LookupSource after Remove: ok=%v err=%v", ok, err)
	}
	for _, tc := range []struct {
		q    media.ListQuery
		want []string
	}{
		{media.ListQuery{}, []string{"m2"}},
		{media.ListQuery{Tag: "a"}, []string{"m2"}},
		{media.ListQuery{Tag: "b"}, nil},
		{media.ListQuery{Kind: media.KindVideo}, []string{"m2"}},
	} {
		tc.q.Limit = 10
		if got := listAll(t, ix, "t", "c", tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%+v after Remove: %v, want %v", tc.q, got, tc.want)
		}
	}
	// Only m2's keys are left: nothing of m1 lingers anywhere.
	keys := rdb.Keys(ctx, prefix+"*").Val()
	for _, k := range keys {
		if strings.Contains(k, "m1") || strings.HasSuffix(k, ":t:b") {
			t.Errorf("key %s left after Remove", k)
		}
	}
}

func TestRemoveKeepsAnotherRecordsSourceKey(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	ctx := context.Background()
	old := rec("t", "c", "old", media.KindImage, base)
	current := rec("t", "c", "current", media.KindImage, base)
	current.SourceKey = old.SourceKey
	put(t, ix, old, current) // the dedupe key now names current
	if err := ix.Remove(ctx, old); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := ix.LookupSource(ctx, "t", old.SourceKey); err != nil || !ok || id != "current" {
		t.Fatalf("LookupSource = %q, %v, %v; want current", id, ok, err)
	}
}

func TestLookupSourceAndGet(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	ctx := context.Background()
	put(t, ix, rec("t", "c", "m1", media.KindImage, base))
	if id, ok, err := ix.LookupSource(ctx, "t", "src-m1"); err != nil || !ok || id != "m1" {
		t.Fatalf("LookupSource = %q, %v, %v", id, ok, err)
	}
	if _, ok, err := ix.LookupSource(ctx, "t", "src-unknown"); ok || err != nil {
		t.Fatalf("unknown source: ok=%v err=%v", ok, err)
	}
	if _, ok, err := ix.LookupSource(ctx, "other", "src-m1"); ok || err != nil {
		t.Fatalf("other tenant's source: ok=%v err=%v", ok, err)
	}
	if _, ok, err := ix.Get(ctx, "other", "m1"); ok || err != nil {
		t.Fatalf("other tenant's record: ok=%v err=%v", ok, err)
	}
}

func TestUserStringsCannotBreakKeys(t *testing.T) {
	t.Parallel()
	ix, rdb, prefix := newIndex(t)
	ctx := context.Background()
	tenant := "te}n{a:nt"
	put(t, ix,
		rec(tenant, "a", "1", media.KindImage, base),
		rec(tenant, "a:k:image", "2", media.KindImage, base, "x"),
		rec(tenant, "a:t:x", "3", media.KindImage, base, "x"),
		rec(tenant, "{a}", "4", media.KindImage, base, "a:b", "%3A"),
		rec(tenant, "+49 151 %3A", "5", media.KindImage, base, ":"),
	)
	for _, tc := range []struct {
		customer string
		q        media.ListQuery
		want     []string
	}{
		{"a", media.ListQuery{}, []string{"1"}},
		{"a", media.ListQuery{Kind: media.KindImage}, []string{"1"}},
		{"a", media.ListQuery{Tag: "x"}, nil},
		{"a:k:image", media.ListQuery{}, []string{"2"}},
		{"a:t:x", media.ListQuery{Tag: "x"}, []string{"3"}},
		{"{a}", media.ListQuery{Tag: "a:b"}, []string{"4"}},
		{"{a}", media.ListQuery{Tag: "%3A"}, []string{"4"}},
		{"{a}", media.ListQuery{Tag: ":"}, nil},
		{"+49 151 %3A", media.ListQuery{Tag: ":"}, []string{"5"}},
		{"+49 151 :", media.ListQuery{}, nil},
	} {
		tc.q.Limit = 10
		if got := listAll(t, ix, tenant, tc.customer, tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%q %+v: got %v, want %v", tc.customer, tc.q, got, tc.want)
		}
	}
	// Every key carries the tenant's hash tag, so Cluster puts them in one slot.
	wantTag := "t:" + esc(tenant)
	keys := rdb.Keys(ctx, prefix+"*").Val()
	if len(keys) == 0 {
		t.Fatal("no keys written")
	}
	for _, k := range keys {
		if got := hashTag(k); got != wantTag {
			t.Errorf("key %q has hash tag %q, want %q", k, got, wantTag)
		}
	}
}

// hashTag is Redis Cluster's rule: the text between the first '{' and the
// first '}' after it.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return ""
	}
	return key[i+1 : i+1+j]
}

func TestStaleMembersAreSkippedAndDropped(t *testing.T) {
	t.Parallel()
	ix, rdb, _ := newIndex(t)
	ctx := context.Background()
	for i := range 6 {
		put(t, ix, rec("t", "c", fmt.Sprintf("m%d", i), media.KindImage, base.Add(time.Duration(i)*time.Minute)))
	}
	s := ix.space("t")
	rdb.Del(ctx, s.record("m5"), s.record("m3"))
	page, next, err := ix.ListByCustomer(ctx, "t", "c", media.ListQuery{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m4", "m2", "m1"}; !slices.Equal(ids(page), want) {
		t.Fatalf("page = %v, want %v", ids(page), want)
	}
	if next == "" {
		t.Fatal("no next cursor though m0 is left")
	}
	if n := rdb.ZCard(ctx, s.customer("c")).Val(); n != 4 {
		t.Fatalf("customer set has %d members, want the 2 stale ones dropped", n)
	}
	if got := listAll(t, ix, "t", "c", media.ListQuery{Limit: 3}); !slices.Equal(got, []string{"m4", "m2", "m1", "m0"}) {
		t.Fatalf("listAll = %v", got)
	}
}

func TestInvalidCursor(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	b64 := base64.RawURLEncoding.EncodeToString
	for _, c := range []string{
		"!!!",
		"not base64 at all",
		b64([]byte{2, '0'}),   // unknown version
		b64([]byte{cursorV1}), // no member
		b64(append([]byte{cursorV1}, "garbage"...)), // not a member
		b64(append([]byte{cursorV1}, "000000000000x:id"...)),
		b64(append([]byte{cursorV1}, "0000000000001:"...)),
		base64.StdEncoding.EncodeToString(append([]byte{cursorV1}, "0000000000001:a?"...)),
	} {
		_, _, err := ix.ListByCustomer(context.Background(), "t", "c", media.ListQuery{Limit: 5, Cursor: c})
		e, ok := apperr.As(err)
		if !ok || e.Kind != apperr.Invalid || len(e.Fields) != 1 || e.Fields[0].Pointer != "query:cursor" {
			t.Errorf("cursor %q: err = %#v, want Invalid on query:cursor", c, err)
		}
	}
	// And a real one round-trips.
	if _, err := decodeCursor(encodeCursor("0000000000001:a?b")); err != nil {
		t.Fatal(err)
	}
}

func TestLockExcludes(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	ctx := context.Background()
	var counter, inside, overlaps atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			unlock, err := ix.Lock(ctx, "t", "counter", 30*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer unlock()
			if inside.Add(1) != 1 {
				overlaps.Add(1)
			}
			// A read-modify-write with a gap: without exclusion, updates get lost.
			v := counter.Load()
			time.Sleep(2 * time.Millisecond)
			counter.Store(v + 1)
			inside.Add(-1)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Lock: %v", err)
	}
	if counter.Load() != 20 || overlaps.Load() != 0 {
		t.Fatalf("counter = %d (want 20), overlaps = %d", counter.Load(), overlaps.Load())
	}
}

func TestLockConflictAfterWait(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	ctx := context.Background()
	unlock, err := ix.Lock(ctx, "t", "job", 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = ix.Lock(ctx, "t", "job", 150*time.Millisecond)
	if !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("err = %v, want Conflict", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("waited %v for a 150ms wait", waited)
	}
	// Other names and tenants are separate locks.
	for _, tn := range [][2]string{{"t", "other"}, {"t2", "job"}} {
		u, err := ix.Lock(ctx, tn[0], tn[1], 0)
		if err != nil {
			t.Fatalf("Lock(%v): %v", tn, err)
		}
		u()
	}
	// A waiter gets the lock as soon as it is released.
	go func() { time.Sleep(50 * time.Millisecond); unlock() }()
	u, err := ix.Lock(ctx, "t", "job", 5*time.Second)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	u()
	unlock() // twice is harmless

	cctx, cancel := context.WithCancel(ctx)
	u, _ = ix.Lock(ctx, "t", "job", 0)
	defer u()
	time.AfterFunc(30*time.Millisecond, cancel)
	if _, err := ix.Lock(cctx, "t", "job", 5*time.Second); err != context.Canceled {
		t.Fatalf("cancelled wait: err = %v", err)
	}
}

func TestLockLeaseRenewalAndExpiry(t *testing.T) {
	t.Parallel()
	const lease = 300 * time.Millisecond
	ix, _, _ := newIndex(t, WithLockLease(lease))
	ctx := context.Background()

	// A live holder keeps the lock well past one lease.
	unlock, err := ix.Lock(ctx, "t", "job", 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * lease)
	if _, err := ix.Lock(ctx, "t", "job", 0); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("lock lost despite renewal: %v", err)
	}
	unlock()

	// A holder that stops renewing (its process died; here its ctx ends)
	// frees the lock once the lease runs out.
	crashed, cancel := context.WithCancel(ctx)
	staleUnlock, err := ix.Lock(crashed, "t", "job", 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	start := time.Now()
	if _, err := ix.Lock(ctx, "t", "job", 0); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("lock free right after the holder stopped: %v", err)
	}
	next, err := ix.Lock(ctx, "t", "job", 5*time.Second)
	if err != nil {
		t.Fatalf("lock not freed by lease expiry: %v", err)
	}
	if waited := time.Since(start); waited > 3*lease {
		t.Fatalf("took %v to take over a %v lease", waited, lease)
	}
	// The late unlock of the old holder must not release the new holder.
	staleUnlock()
	if _, err := ix.Lock(ctx, "t", "job", 0); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("stale unlock released the new holder: %v", err)
	}
	next()
}

func TestReset(t *testing.T) {
	t.Parallel()
	ix, rdb, prefix := newIndex(t)
	ctx := context.Background()
	for i := range 1500 { // more than one SCAN batch
		put(t, ix, rec(fmt.Sprintf("t%d", i%3), "c", fmt.Sprintf("m%d", i), media.KindImage, base, "x"))
	}
	unlock, err := ix.Lock(ctx, "t0", "reindex", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	outside := prefix[:len(prefix)-1] + "-not-ours"
	rdb.Set(ctx, outside, "1", time.Minute)
	defer rdb.Del(ctx, outside)

	if err := ix.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	left := rdb.Keys(ctx, prefix+"*").Val()
	if len(left) != 1 || !strings.HasSuffix(left[0], ":lock:reindex") {
		t.Fatalf("after Reset: %d keys left (%v), want only the held lock", len(left), left[:min(len(left), 5)])
	}
	if rdb.Exists(ctx, outside).Val() != 1 {
		t.Fatal("Reset deleted a key outside its prefix")
	}
	if _, err := ix.Lock(ctx, "t0", "reindex", 0); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("Reset released a held lock: %v", err)
	}
	if got := listAll(t, ix, "t0", "c", media.ListQuery{Limit: 10}); len(got) != 0 {
		t.Fatalf("listing after Reset: %v", got)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	ix, _, _ := newIndex(t)
	if err := ix.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	down := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1}), "x:")
	if err := down.Ping(context.Background()); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("Ping on a dead Redis = %v, want Unavailable", err)
	}
}

func TestPrefixWithBracesPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(nil, "cv{x}:")
}

// The commands the index uses (ZRANGE BYLEX REV LIMIT, MGET, MULTI with
// EVAL, SET NX PX, scripts, SCAN MATCH, UNLINK) work on miniredis too, so
// other packages can unit-test against it.
func TestMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ix := New(rdb, "cv:", WithLockLease(time.Second))
	ctx := context.Background()

	for i := range 20 {
		kind := media.KindImage
		if i%2 == 1 {
			kind = media.KindAudio
		}
		put(t, ix, rec("t", "c:1", fmt.Sprintf("m%02d", i), kind, base.Add(time.Duration(i)*time.Minute), "x"))
	}
	if got := listAll(t, ix, "t", "c:1", media.ListQuery{Limit: 3}); len(got) != 20 || got[0] != "m19" || got[19] != "m00" {
		t.Fatalf("listAll = %v", got)
	}
	q := media.ListQuery{Kind: media.KindAudio, Tag: "x", Since: base.Add(10 * time.Minute), Until: base.Add(15 * time.Minute), Limit: 2}
	if got := listAll(t, ix, "t", "c:1", q); !slices.Equal(got, []string{"m13", "m11"}) {
		t.Fatalf("filtered = %v", got)
	}

	prev, _, err := ix.Get(ctx, "t", "m19")
	if err != nil {
		t.Fatal(err)
	}
	m := prev
	m.Tags = []string{"y"}
	if err := ix.Put(ctx, &prev, m); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, ix, "t", "c:1", media.ListQuery{Tag: "y", Limit: 5}); !slices.Equal(got, []string{"m19"}) {
		t.Fatalf("tag y = %v", got)
	}
	if err := ix.Remove(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ix.LookupSource(ctx, "t", m.SourceKey); ok {
		t.Fatal("source key survived Remove")
	}
	if id, ok, _ := ix.LookupSource(ctx, "t", "src-m18"); !ok || id != "m18" {
		t.Fatalf("LookupSource = %q, %v", id, ok)
	}

	mr.Del(ix.space("t").record("m18"))
	if got := listAll(t, ix, "t", "c:1", media.ListQuery{Limit: 1}); len(got) != 18 {
		t.Fatalf("after a stale member: %d records", len(got))
	}

	unlock, err := ix.Lock(ctx, "t", "job", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Lock(ctx, "t", "job", 20*time.Millisecond); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("second Lock = %v", err)
	}
	unlock()
	crashed, cancel := context.WithCancel(ctx)
	if _, err := ix.Lock(crashed, "t", "job", 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	mr.FastForward(2 * time.Second) // miniredis expires keys on its own clock
	if _, err := ix.Lock(ctx, "t", "job", 0); err != nil {
		t.Fatalf("lease did not expire: %v", err)
	}

	mr.Set("elsewhere", "1")
	if err := ix.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := mr.Keys(); !slices.Equal(keys, []string{"cv:{t:t}:lock:job", "elsewhere"}) {
		t.Fatalf("after Reset: %v", keys)
	}
}
