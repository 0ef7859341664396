package events

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	// FeedMaxLen is how many recent events a tenant's feed keeps. Trimming
	// is approximate (MAXLEN ~), which Redis does a whole stream node at a
	// time: the stream holds at least this many once it has had them, and
	// at most one node (stream-node-max-entries, 100 by default) more.
	FeedMaxLen = 10000

	DefaultFeedLimit = 20
	MaxFeedLimit     = 100

	// FeedMaxScan bounds the entries one List call reads. Filters are
	// applied to entries as they are read, so a query whose matches are
	// rare returns a short (even empty) page with a next cursor rather than
	// walk the whole stream in one request; callers keep following the
	// cursor.
	FeedMaxScan = 1000
	feedBatch   = 200
)

// FeedQuery selects a page of a tenant's feed, newest first.
type FeedQuery struct {
	Type       string // required
	CustomerID string // "" for any
	Kind       string // "" for any
	Tag        string // "" for any; normalised here
	Limit      int    // 1..MaxFeedLimit; 0 for DefaultFeedLimit
	Cursor     string // opaque, from a previous page
}

// FeedOption configures a Feed.
type FeedOption func(*Feed)

// WithFeedMaxLen sets how many events the feed keeps (FeedMaxLen); tests
// use small values to watch trimming.
func WithFeedMaxLen(n int64) FeedOption {
	return func(f *Feed) {
		if n > 0 {
			f.maxLen = n
		}
	}
}

// Feed is the per-tenant polling feed: a Redis stream of event bodies with
// their facets beside them, so filters need no decoding. It is safe for
// concurrent use.
type Feed struct {
	rdb    redis.UniversalClient
	prefix string
	maxLen int64
}

// NewFeed returns the feed keeping its streams under prefix (brace-free).
func NewFeed(rdb redis.UniversalClient, prefix string, opts ...FeedOption) *Feed {
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("events: prefix %q must not contain braces", prefix))
	}
	f := &Feed{rdb: rdb, prefix: prefix, maxLen: FeedMaxLen}
	for _, o := range opts {
		o(f)
	}
	return f
}

func (f *Feed) key(tenantID string) string { return space(f.prefix, tenantID) + "events" }

// Append adds e, which must carry its ID and CreatedAt, to its tenant's
// feed and trims the oldest entries beyond the feed's length.
func (f *Feed) Append(ctx context.Context, e Event) error {
	if !validTenant(e.TenantID) || e.ID == "" || !ValidType(e.Type) {
		return apperr.New(apperr.Invalid, "event needs a tenant, an ID and a known type")
	}
	body, err := encodeEvent(e)
	if err != nil {
		return err
	}
	tags, _ := json.Marshal(nonNil(e.Tags))
	err = f.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: f.key(e.TenantID),
		MaxLen: f.maxLen,
		Approx: true,
		Values: []any{
			"event", body,
			"type", e.Type,
			"customer", e.CustomerID,
			"kind", e.Kind,
			"tags", tags,
		},
	}).Err()
	if err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "event feed unavailable")
	}
	return nil
}

// List returns one page of the tenant's events of q.Type that pass q's
// filters, newest first, and the cursor of the next page ("" after the
// last). It reads at most FeedMaxScan entries, so a page can be short, or
// empty, while the cursor is set.
func (f *Feed) List(ctx context.Context, tenantID string, q FeedQuery) ([]Event, string, error) {
	q, after, err := checkFeedQuery(q)
	if err != nil {
		return nil, "", err
	}
	if !validTenant(tenantID) {
		return []Event{}, "", nil
	}
	key := f.key(tenantID)
	start := "+"
	if after != "" {
		start = "(" + after // exclusive: that entry ended the previous page
	}
	out := []Event{}
	scanned := 0
	last := ""
	for scanned < FeedMaxScan {
		n := min(feedBatch, FeedMaxScan-scanned)
		msgs, err := f.rdb.XRevRangeN(ctx, key, start, "-", int64(n)).Result()
		if err != nil {
			return nil, "", apperr.Wrap(apperr.Unavailable, err, "event feed unavailable")
		}
		for i, m := range msgs {
			scanned++
			last = m.ID
			e, ok := decodeEntry(tenantID, m)
			if !ok || !q.matches(e) {
				continue
			}
			out = append(out, e)
			if len(out) == q.Limit {
				// The rest of this batch, or a full batch, says more may
				// follow; a short batch read to its end says none does.
				if i == len(msgs)-1 && len(msgs) < n {
					return out, "", nil
				}
				return out, encodeFeedCursor(last), nil
			}
		}
		if len(msgs) < n {
			return out, "", nil // the stream's start
		}
		start = "(" + last
	}
	return out, encodeFeedCursor(last), nil
}

func (q FeedQuery) matches(e Event) bool {
	return e.Type == q.Type && Filters{CustomerID: q.CustomerID, Kind: q.Kind, Tag: q.Tag}.match(e)
}

func checkFeedQuery(q FeedQuery) (FeedQuery, string, error) {
	var fields []apperr.FieldError
	bad := func(ptr, detail string) { fields = append(fields, apperr.FieldError{Pointer: ptr, Detail: detail}) }
	switch {
	case q.Type == "":
		bad("query:type", "type is required: one of "+strings.Join(Types, ", "))
	case !ValidType(q.Type):
		bad("query:type", "unknown event type; use one of "+strings.Join(Types, ", "))
	}
	if q.Kind != "" && !slices.Contains(kinds, q.Kind) {
		bad("query:kind", "kind must be one of "+strings.Join(kinds, ", "))
	}
	tag, err := normalizeTag(q.Tag)
	if err != nil {
		bad("query:tag", err.Error())
	}
	q.Tag = tag
	switch {
	case q.Limit == 0:
		q.Limit = DefaultFeedLimit
	case q.Limit < 1 || q.Limit > MaxFeedLimit:
		bad("query:limit", fmt.Sprintf("limit must be between 1 and %d", MaxFeedLimit))
	}
	after := ""
	if q.Cursor != "" {
		var ok bool
		if after, ok = decodeFeedCursor(q.Cursor); !ok {
			bad("query:cursor", "not a cursor from this feed; start again without one")
		}
	}
	if len(fields) > 0 {
		return q, "", apperr.WithFields("invalid event feed query", fields...)
	}
	return q, after, nil
}

// Cursors wrap the stream entry ID of a page's last read entry, with a
// version byte so the format can change without misreading old ones.
const feedCursorV1 byte = 1

var entryIDPattern = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

func encodeFeedCursor(entryID string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{feedCursorV1}, entryID...))
}

func decodeFeedCursor(c string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != feedCursorV1 || !entryIDPattern.Match(b[1:]) {
		return "", false
	}
	return string(b[1:]), true
}

func decodeEntry(tenantID string, m redis.XMessage) (Event, bool) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	var e Event
	if err := json.Unmarshal([]byte(str("event")), &e); err != nil || e.ID == "" {
		return Event{}, false
	}
	e.TenantID = tenantID
	e.CustomerID = str("customer")
	e.Kind = str("kind")
	_ = json.Unmarshal([]byte(str("tags")), &e.Tags)
	return e, true
}

// encodeEvent is the event body: what the feed keeps and deliveries send.
func encodeEvent(e Event) ([]byte, error) {
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, apperr.Wrap(apperr.Invalid, err, "event data is not valid JSON")
	}
	return b, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
