package events

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/chatvault/chatvault/internal/apperr"
)

func TestHooksCreateListGetDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	a := e.mustCreate(t, "https://hooks.zapier.com/hooks/standard/1/abc", []string{TypeArchived, TypeArchived, TypeTagged}, Filters{CustomerID: "wa:491", Kind: "audio", Tag: "  VIP "})
	if !ValidHookID(a.ID) {
		t.Errorf("ID %q is not hook_ + ULID", a.ID)
	}
	if !strings.HasPrefix(a.Secret, "whsec_") {
		t.Errorf("secret %q lacks whsec_", a.Secret)
	} else if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(a.Secret, "whsec_")); err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not 32 bytes of base64url (%v)", a.Secret, err)
	}
	if got, want := strings.Join(a.Events, ","), TypeArchived+","+TypeTagged; got != want {
		t.Errorf("events = %s, want %s (deduplicated, in order)", got, want)
	}
	if a.Filters != (Filters{CustomerID: "wa:491", Kind: "audio", Tag: "vip"}) {
		t.Errorf("filters = %+v", a.Filters)
	}
	if !a.CreatedAt.Equal(newClock().Now()) || a.TenantID != tenant {
		t.Errorf("created_at %v tenant %q", a.CreatedAt, a.TenantID)
	}
	b := e.mustCreate(t, "http://crm.example.com/in", []string{TypeDeleted}, Filters{})

	// The document in storage is the truth.
	doc, err := e.blobs.GetSmall(ctx, "tenants/"+tenant+"/hooks/"+a.ID+".json")
	if err != nil {
		t.Fatalf("stored document: %v", err)
	}
	var stored Subscription
	if err := json.Unmarshal(doc, &stored); err != nil || stored.Secret != a.Secret || stored.URL != a.URL {
		t.Errorf("stored document %s (%v)", doc, err)
	}

	list, err := e.hooks.List(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("List = %+v, want a then b", list)
	}
	for _, s := range list {
		if s.Secret != "" {
			t.Errorf("List shows the secret of %s", s.ID)
		}
	}
	if j, _ := json.Marshal(list[0]); strings.Contains(string(j), "secret") {
		t.Errorf("listed subscription JSON %s mentions a secret", j)
	}

	got, err := e.hooks.Get(ctx, tenant, a.ID)
	if err != nil || got.Secret != a.Secret || got.URL != a.URL {
		t.Errorf("Get = %+v, %v", got, err)
	}
	// Another tenant sees nothing of it.
	if _, err := e.hooks.Get(ctx, "other", a.ID); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("Get from another tenant: %v, want not found", err)
	}
	wantKind(t, e.hooks.Delete(ctx, "other", a.ID), apperr.NotFound)
	if l, _ := e.hooks.List(ctx, "other"); len(l) != 0 {
		t.Errorf("other tenant lists %+v", l)
	}

	if err := e.hooks.Delete(ctx, tenant, a.ID); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.hooks.Delete(ctx, tenant, a.ID), apperr.NotFound)
	wantKind(t, e.hooks.Delete(ctx, tenant, "hook_nope"), apperr.NotFound)
	wantKind(t, e.hooks.Delete(ctx, tenant, "hook_../../media"), apperr.NotFound)
	if _, err := e.blobs.GetSmall(ctx, "tenants/"+tenant+"/hooks/"+a.ID+".json"); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("document after Delete: %v", err)
	}
	list, _ = e.hooks.List(ctx, tenant)
	if len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("List after Delete = %+v", list)
	}
}

func TestHooksValidation(t *testing.T) {
	e := newEnv(t)
	ok := []string{TypeArchived}
	cases := []struct {
		name    string
		url     string
		events  []string
		f       Filters
		pointer string
	}{
		{"no url", "", ok, Filters{}, "/url"},
		{"relative url", "/hooks/1", ok, Filters{}, "/url"},
		{"ftp", "ftp://example.com/x", ok, Filters{}, "/url"},
		{"javascript", "javascript:alert(1)", ok, Filters{}, "/url"},
		{"credentials", "https://user:pw@example.com/x", ok, Filters{}, "/url"},
		{"too long", "https://example.com/" + strings.Repeat("a", MaxURLLen), ok, Filters{}, "/url"},
		{"no events", "https://example.com/x", nil, Filters{}, "/events"},
		{"unknown event", "https://example.com/x", []string{TypeArchived, "media.exploded"}, Filters{}, "/events/1"},
		{"bad kind", "https://example.com/x", ok, Filters{Kind: "gif"}, "/filters/kind"},
		{"bad tag", "https://example.com/x", ok, Filters{Tag: "a,b"}, "/filters/tag"},
		{"long tag", "https://example.com/x", ok, Filters{Tag: strings.Repeat("t", MaxTagLen+1)}, "/filters/tag"},
		{"long customer", "https://example.com/x", ok, Filters{CustomerID: strings.Repeat("c", MaxCustomerIDLen+1)}, "/filters/customer_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.hooks.Create(context.Background(), tenant, c.url, c.events, c.f)
			ae := wantKind(t, err, apperr.Invalid)
			if len(ae.Fields) == 0 || ae.Fields[0].Pointer != c.pointer {
				t.Errorf("fields %+v, want pointer %s", ae.Fields, c.pointer)
			}
		})
	}
	// Exactly the longest allowed URL passes.
	long := "https://example.com/" + strings.Repeat("a", MaxURLLen-len("https://example.com/"))
	e.mustCreate(t, long, ok, Filters{})
	if l, _ := e.hooks.List(context.Background(), tenant); len(l) != 1 {
		t.Errorf("failed creates left subscriptions behind: %+v", l)
	}
}

func TestHooksURLCheckUsesTheSSRFGuard(t *testing.T) {
	e := newEnv(t)
	e.hooks = NewHooks(e.blobs, e.rdb, e.prefix, WithURLCheck(e.fetcher.CheckURL))
	e.allowlist("127.0.0.1:8443")
	ctx := context.Background()
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://127.0.0.1:8080/hook",
		"http://[::1]/hook",
		"http://10.1.2.3/hook",
		"http://2130706433/hook",
	} {
		_, err := e.hooks.Create(ctx, tenant, u, []string{TypeArchived}, Filters{})
		ae := wantKind(t, err, apperr.Invalid)
		if ae.Fields[0].Pointer != "/url" || !strings.Contains(ae.Fields[0].Detail, "not allowed") {
			t.Errorf("%s: %+v", u, ae.Fields)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8443/hook", "https://hooks.zapier.com/hooks/1", "https://93.184.215.14/x"} {
		if _, err := e.hooks.Create(ctx, tenant, u, []string{TypeArchived}, Filters{}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestHooksLimitPerTenant(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Concurrent creates cannot overshoot the cap.
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for range MaxHooks + 10 {
		wg.Go(func() {
			_, err := e.hooks.Create(ctx, tenant, "https://example.com/x", []string{TypeArchived}, Filters{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case apperr.Is(err, apperr.Unprocessable):
				refused++
			default:
				t.Errorf("Create: %v", err)
			}
		})
	}
	wg.Wait()
	if created != MaxHooks || refused != 10 {
		t.Fatalf("created %d, refused %d; want %d and 10", created, refused, MaxHooks)
	}
	list, err := e.hooks.List(ctx, tenant)
	if err != nil || len(list) != MaxHooks {
		t.Fatalf("List: %d, %v", len(list), err)
	}
	n := 0
	_ = e.blobs.List(ctx, "tenants/"+tenant+"/hooks/", func(string) error { n++; return nil })
	if n != MaxHooks {
		t.Errorf("%d documents in storage, want %d", n, MaxHooks)
	}
	// Another tenant has its own cap; a deletion makes room.
	if _, err := e.hooks.Create(ctx, "other", "https://example.com/x", []string{TypeArchived}, Filters{}); err != nil {
		t.Errorf("other tenant: %v", err)
	}
	if err := e.hooks.Delete(ctx, tenant, list[0].ID); err != nil {
		t.Fatal(err)
	}
	e.mustCreate(t, "https://example.com/y", []string{TypeArchived}, Filters{})
}

func TestHooksSurviveRedisWipe(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var made []Subscription
	for i, u := range []string{"https://a.example/1", "https://b.example/2", "https://c.example/3"} {
		made = append(made, e.mustCreate(t, u, []string{Types[i]}, Filters{Kind: "image"}))
	}

	e.wipeRedis(t)
	list, err := e.hooks.List(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(made) {
		t.Fatalf("after the wipe List = %+v, want %d", list, len(made))
	}
	for i := range made {
		want := made[i]
		want.Secret = ""
		got := list[i]
		if got.ID != want.ID || got.URL != want.URL || got.Events[0] != want.Events[0] || got.Filters != want.Filters || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("rebuilt %+v, want %+v", got, want)
		}
	}
	// The cache is loaded again, and secrets survived for deliveries.
	if n, _ := e.rdb.Exists(ctx, e.hooks.keys(tenant).loaded).Result(); n != 1 {
		t.Error("the rebuild did not mark the cache loaded")
	}
	if ttl, _ := e.rdb.PTTL(ctx, e.hooks.keys(tenant).loaded).Result(); ttl <= 0 || ttl > DefaultCacheTTL {
		t.Errorf("marker TTL %v", ttl)
	}
	if s, err := e.hooks.Get(ctx, tenant, made[1].ID); err != nil || s.Secret != made[1].Secret {
		t.Errorf("Get after the wipe: %+v, %v", s, err)
	}

	// ForEvent also rebuilds on its own.
	e.wipeRedis(t)
	subs, err := e.hooks.ForEvent(ctx, tenant, Event{Type: TypeTagged, TenantID: tenant, Kind: "image"})
	if err != nil || len(subs) != 1 || subs[0].ID != made[1].ID || subs[0].Secret == "" {
		t.Errorf("ForEvent after the wipe = %+v, %v", subs, err)
	}
	// And a wipe does not break the cap or deletes.
	e.wipeRedis(t)
	if err := e.hooks.Delete(ctx, tenant, made[0].ID); err != nil {
		t.Fatal(err)
	}
	e.wipeRedis(t)
	if list, _ := e.hooks.List(ctx, tenant); len(list) != 2 {
		t.Errorf("after delete and wipe: %+v", list)
	}
}

// fencingStore runs during before the first listing goes on.
type fencingStore struct {
	BlobStore
	once   sync.Once
	during func()
}

func (f *fencingStore) List(ctx context.Context, prefix string, fn func(string) error) error {
	f.once.Do(f.during)
	return f.BlobStore.List(ctx, prefix, fn)
}

func TestHooksRebuildIsFencedByConcurrentWrites(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.mustCreate(t, "https://a.example/1", []string{TypeArchived}, Filters{})
	e.wipeRedis(t)

	// A create or delete lands while a rebuild lists storage: the rebuild
	// must not mark a cache loaded that may lack that change.
	fs := &fencingStore{BlobStore: e.blobs}
	fs.during = func() { e.rdb.Incr(ctx, e.hooks.keys(tenant).ver) }
	h := NewHooks(fs, e.rdb, e.prefix)
	list, err := h.List(ctx, tenant)
	if err != nil || len(list) != 1 || list[0].ID != s.ID {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if n, _ := e.rdb.Exists(ctx, h.keys(tenant).loaded).Result(); n != 0 {
		t.Fatal("a rebuild raced by a write marked the cache loaded")
	}
	// The next read rebuilds for good.
	if list, err := h.List(ctx, tenant); err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if n, _ := e.rdb.Exists(ctx, h.keys(tenant).loaded).Result(); n != 1 {
		t.Fatal("an undisturbed rebuild left the cache unloaded")
	}
}

func TestHooksDeleteFindsADocumentTheCacheMissed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.mustCreate(t, "https://a.example/1", []string{TypeArchived}, Filters{})
	// As after a create whose cache write failed and whose rollback failed
	// too: the document exists, the loaded cache lacks it.
	if err := e.rdb.HDel(ctx, e.hooks.keys(tenant).hash, s.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.hooks.Delete(ctx, tenant, s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := e.blobs.GetSmall(ctx, docKey(tenant, s.ID)); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("document still there: %v", err)
	}
}

func TestSubscriptionMatches(t *testing.T) {
	sub := func(evs []string, f Filters) Subscription {
		return Subscription{ID: "hook_x", TenantID: tenant, Events: evs, Filters: f}
	}
	ev := archived("evt_1", "wa:491", "audio", "vip", "lead")
	all := []string{TypeArchived, TypeTagged}
	cases := []struct {
		name string
		s    Subscription
		e    Event
		want bool
	}{
		{"no filters", sub(all, Filters{}), ev, true},
		{"other type", sub([]string{TypeDeleted}, Filters{}), ev, false},
		{"customer", sub(all, Filters{CustomerID: "wa:491"}), ev, true},
		{"other customer", sub(all, Filters{CustomerID: "wa:492"}), ev, false},
		{"kind", sub(all, Filters{Kind: "audio"}), ev, true},
		{"other kind", sub(all, Filters{Kind: "video"}), ev, false},
		{"tag", sub(all, Filters{Tag: "lead"}), ev, true},
		{"missing tag", sub(all, Filters{Tag: "cold"}), ev, false},
		{"all filters", sub(all, Filters{CustomerID: "wa:491", Kind: "audio", Tag: "vip"}), ev, true},
		{"all but one", sub(all, Filters{CustomerID: "wa:491", Kind: "audio", Tag: "cold"}), ev, false},
		{"other tenant", sub(all, Filters{}), func() Event { x := ev; x.TenantID = "other"; return x }(), false},
		{"event without kind", sub([]string{TypeFailed}, Filters{Kind: "audio"}), Event{Type: TypeFailed, TenantID: tenant}, false},
		{"event without facets, no filters", sub([]string{TypeFailed}, Filters{}), Event{Type: TypeFailed, TenantID: tenant}, true},
	}
	for _, c := range cases {
		if got := c.s.Matches(c.e); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
}
