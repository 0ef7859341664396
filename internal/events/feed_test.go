package events

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
)

func appendAll(t *testing.T, f *Feed, evs ...Event) {
	t.Helper()
	for _, e := range evs {
		if err := f.Append(context.Background(), e); err != nil {
			t.Fatalf("Append(%s): %v", e.ID, err)
		}
	}
}

// pages follows the cursor to the end and returns every page's IDs.
func pages(t *testing.T, f *Feed, q FeedQuery) [][]string {
	t.Helper()
	var out [][]string
	for i := 0; ; i++ {
		evs, next, err := f.List(context.Background(), tenant, q)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		out = append(out, ids)
		if next == "" {
			return out
		}
		if i > 100 {
			t.Fatal("the cursor never ends")
		}
		q.Cursor = next
	}
}

func TestFeedPagesNewestFirst(t *testing.T) {
	e := newEnv(t)
	for i := range 45 {
		appendAll(t, e.feed, archived(fmt.Sprintf("evt_%02d", i), "wa:1", "image"))
	}
	got := pages(t, e.feed, FeedQuery{Type: TypeArchived})
	if len(got) != 3 || len(got[0]) != 20 || len(got[1]) != 20 || len(got[2]) != 5 {
		t.Fatalf("page sizes %v", got)
	}
	all := slices.Concat(got...)
	for i, id := range all {
		if want := fmt.Sprintf("evt_%02d", 44-i); id != want {
			t.Fatalf("item %d = %s, want %s (newest first, no gaps or repeats)", i, id, want)
		}
	}

	// A page that ends exactly at the oldest entry says so.
	e2 := newEnv(t)
	for i := range 20 {
		appendAll(t, e2.feed, archived(fmt.Sprintf("evt_%02d", i), "wa:1", "image"))
	}
	if evs, next, err := e2.feed.List(context.Background(), tenant, FeedQuery{Type: TypeArchived}); err != nil || len(evs) != 20 || next != "" {
		t.Errorf("exact page: %d events, next %q, %v", len(evs), next, err)
	}
	if got := pages(t, e2.feed, FeedQuery{Type: TypeArchived, Limit: 7}); len(got) != 3 || len(got[2]) != 6 {
		t.Errorf("limit 7 pages %v", got)
	}
	// Other tenants see nothing.
	if evs, next, err := e.feed.List(context.Background(), "other", FeedQuery{Type: TypeArchived}); err != nil || len(evs) != 0 || next != "" {
		t.Errorf("other tenant: %v %q %v", evs, next, err)
	}
}

func TestFeedEventsRoundTrip(t *testing.T) {
	e := newEnv(t)
	in := archived("evt_01JD8X3QK2V7M9TW4R6YB5N0CE", "wa:491", "audio", "vip")
	appendAll(t, e.feed, in)
	evs, _, err := e.feed.List(context.Background(), tenant, FeedQuery{Type: TypeArchived})
	if err != nil || len(evs) != 1 {
		t.Fatalf("List: %v %v", evs, err)
	}
	got := evs[0]
	if got.ID != in.ID || got.Type != in.Type || !got.CreatedAt.Equal(in.CreatedAt) || string(got.Data) != string(in.Data) ||
		got.TenantID != tenant || got.CustomerID != "wa:491" || got.Kind != "audio" || !slices.Equal(got.Tags, []string{"vip"}) {
		t.Errorf("round trip: %+v", got)
	}
	// The body is exactly id, type, created_at and data.
	b, _ := json.Marshal(got)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	if len(m) != 4 || m["id"] == nil || m["type"] == nil || m["created_at"] == nil || m["data"] == nil {
		t.Errorf("event JSON %s", b)
	}
	if string(m["created_at"]) != `"2026-11-25T10:15:00Z"` {
		t.Errorf("created_at %s", m["created_at"])
	}
}

func TestFeedFilters(t *testing.T) {
	e := newEnv(t)
	appendAll(t, e.feed,
		archived("evt_a", "wa:1", "audio", "vip"),
		archived("evt_b", "wa:1", "image", "vip"),
		archived("evt_c", "wa:2", "audio", "vip"),
		archived("evt_d", "wa:1", "audio"),
		Event{ID: "evt_e", Type: TypeTagged, Data: json.RawMessage(`{}`), TenantID: tenant, CustomerID: "wa:1", Kind: "audio", Tags: []string{"vip"}},
		Event{ID: "evt_f", Type: TypeFailed, TenantID: tenant, CustomerID: "wa:1"},
		archived("evt_g", "wa:1", "audio", "lead", "vip"),
	)
	cases := []struct {
		q    FeedQuery
		want []string
	}{
		{FeedQuery{Type: TypeArchived}, []string{"evt_g", "evt_d", "evt_c", "evt_b", "evt_a"}},
		{FeedQuery{Type: TypeTagged}, []string{"evt_e"}},
		{FeedQuery{Type: TypeFailed, CustomerID: "wa:1"}, []string{"evt_f"}},
		{FeedQuery{Type: TypeFailed, Kind: "audio"}, nil},
		{FeedQuery{Type: TypeArchived, CustomerID: "wa:1"}, []string{"evt_g", "evt_d", "evt_b", "evt_a"}},
		{FeedQuery{Type: TypeArchived, Kind: "audio"}, []string{"evt_g", "evt_d", "evt_c", "evt_a"}},
		{FeedQuery{Type: TypeArchived, Tag: " VIP"}, []string{"evt_g", "evt_c", "evt_b", "evt_a"}},
		{FeedQuery{Type: TypeArchived, CustomerID: "wa:1", Kind: "audio", Tag: "vip"}, []string{"evt_g", "evt_a"}},
		{FeedQuery{Type: TypeArchived, CustomerID: "wa:1", Kind: "audio", Tag: "vip", Limit: 1}, []string{"evt_g", "evt_a"}},
		{FeedQuery{Type: TypeDeleted}, nil},
	}
	for _, c := range cases {
		got := slices.Concat(pages(t, e.feed, c.q)...)
		if !slices.Equal(got, c.want) {
			t.Errorf("%+v: got %v, want %v", c.q, got, c.want)
		}
	}
}

func TestFeedScanIsBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// One match, under more than FeedMaxScan entries that do not match.
	appendAll(t, e.feed, archived("evt_old", "wa:1", "audio"))
	pipe := e.rdb.Pipeline()
	for i := range FeedMaxScan + 200 {
		pipe.XAdd(ctx, xaddArgs(e, Event{ID: "evt_t" + strconv.Itoa(i), Type: TypeTagged, TenantID: tenant}))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	evs, next, err := e.feed.List(ctx, tenant, FeedQuery{Type: TypeArchived})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 || next == "" {
		t.Fatalf("first call: %d events, next %q; want an empty page with a cursor after %d entries", len(evs), next, FeedMaxScan)
	}
	evs, next, err = e.feed.List(ctx, tenant, FeedQuery{Type: TypeArchived, Cursor: next})
	if err != nil || len(evs) != 1 || evs[0].ID != "evt_old" || next != "" {
		t.Fatalf("second call: %v, next %q, %v", evs, next, err)
	}
}

// xaddArgs is what Append sends, for bulk loading through a pipeline.
func xaddArgs(e *env, ev Event) *redis.XAddArgs {
	body, _ := encodeEvent(ev)
	return &redis.XAddArgs{
		Stream: e.feed.key(ev.TenantID),
		Values: []any{"event", body, "type", ev.Type, "customer", ev.CustomerID, "kind", ev.Kind, "tags", "[]"},
	}
}

func TestFeedTrimsApproximately(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const keep = 50
	feed := NewFeed(e.rdb, e.prefix, WithFeedMaxLen(keep))
	for i := range 1000 {
		appendAll(t, feed, archived("evt_"+strconv.Itoa(i), "wa:1", "audio"))
	}
	node := int64(100)
	if cfg, err := e.rdb.ConfigGet(ctx, "stream-node-max-entries").Result(); err == nil {
		if n, err := strconv.ParseInt(cfg["stream-node-max-entries"], 10, 64); err == nil && n > 0 {
			node = n
		}
	}
	n, err := e.rdb.XLen(ctx, feed.key(tenant)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < keep || n > keep+node {
		t.Errorf("stream holds %d entries, want between %d and %d", n, keep, keep+node)
	}
	// The newest survive.
	evs, _, err := feed.List(ctx, tenant, FeedQuery{Type: TypeArchived, Limit: keep})
	if err != nil || len(evs) != keep || evs[0].ID != "evt_999" || evs[keep-1].ID != "evt_"+strconv.Itoa(1000-keep) {
		t.Errorf("newest %d: %d events, first %v", keep, len(evs), evs[:min(1, len(evs))])
	}
}

func TestFeedQueryValidation(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		q       FeedQuery
		pointer string
	}{
		{FeedQuery{}, "query:type"},
		{FeedQuery{Type: "media.exploded"}, "query:type"},
		{FeedQuery{Type: TypeArchived, Limit: 101}, "query:limit"},
		{FeedQuery{Type: TypeArchived, Limit: -1}, "query:limit"},
		{FeedQuery{Type: TypeArchived, Kind: "gif"}, "query:kind"},
		{FeedQuery{Type: TypeArchived, Tag: "a,b"}, "query:tag"},
		{FeedQuery{Type: TypeArchived, Cursor: "nope"}, "query:cursor"},
		{FeedQuery{Type: TypeArchived, Cursor: encodeFeedCursor("12-x")}, "query:cursor"},
	}
	for _, c := range cases {
		_, _, err := e.feed.List(context.Background(), tenant, c.q)
		ae := wantKind(t, err, apperr.Invalid)
		if len(ae.Fields) != 1 || ae.Fields[0].Pointer != c.pointer {
			t.Errorf("%+v: fields %+v, want %s", c.q, ae.Fields, c.pointer)
		}
	}
	if _, _, err := e.feed.List(context.Background(), tenant, FeedQuery{Type: TypeArchived, Limit: 100}); err != nil {
		t.Errorf("limit 100: %v", err)
	}
	wantKind(t, e.feed.Append(context.Background(), Event{ID: "evt_x", Type: "nope", TenantID: tenant}), apperr.Invalid)
	wantKind(t, e.feed.Append(context.Background(), Event{Type: TypeArchived, TenantID: tenant}), apperr.Invalid)
}
