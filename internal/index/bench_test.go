package index

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/media"
)

// seed queues m's cache entry and set members on pipe: the same keys Put
// writes, without a MULTI per record, so large fixtures load quickly.
func seed(ctx context.Context, pipe redis.Pipeliner, s space, m media.Media) {
	doc, _ := json.Marshal(m)
	pipe.Set(ctx, s.record(m.ID), doc, 0)
	for key, mem := range s.entries(m) {
		pipe.ZAdd(ctx, key, redis.Z{Member: mem})
	}
}

// BenchmarkListByCustomer shows that a page costs the same for a customer
// with 10 or 100,000 media, at the newest end, deep inside the set and with
// filters. Pages hold 5 records, which even the 10-media customer fills in
// every case, so both sizes do the same work per page.
func BenchmarkListByCustomer(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		ix, rdb, _ := newIndex(b)
		ctx := context.Background()
		s := ix.space("t")
		pipe := rdb.Pipeline()
		for i := range n {
			kind := media.KindImage
			if i%2 == 1 {
				kind = media.KindVideo
			}
			seed(ctx, pipe, s, rec("t", "c", fmt.Sprintf("m%06d", i), kind, base.Add(time.Duration(i)*time.Second), "vip"))
			if pipe.Len() >= 5000 {
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		// A cursor halfway down the set (or at the oldest record for n=10).
		mid := rec("t", "c", fmt.Sprintf("m%06d", n/2), media.KindImage, base.Add(time.Duration(n/2)*time.Second))
		deep := encodeCursor(member(mid))

		for _, bc := range []struct {
			name string
			q    media.ListQuery
		}{
			{"first", media.ListQuery{Limit: 5}},
			{"deep", media.ListQuery{Limit: 5, Cursor: deep}},
			{"kind", media.ListQuery{Limit: 5, Kind: media.KindVideo}},
			{"since-until", media.ListQuery{Limit: 5, Since: base, Until: base.Add(time.Duration(n/2) * time.Second)}},
		} {
			b.Run(fmt.Sprintf("n=%d/%s", n, bc.name), func(b *testing.B) {
				var records int
				for b.Loop() {
					page, _, err := ix.ListByCustomer(ctx, "t", "c", bc.q)
					if err != nil || len(page) == 0 {
						b.Fatalf("%d records, err %v", len(page), err)
					}
					records = len(page)
				}
				b.ReportMetric(float64(records), "records/page")
			})
		}
	}
}
