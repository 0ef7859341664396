package index

import (
	"context"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/media"
)

// A tenant's tags: one set of tag names, and per tag a set of media IDs.
// Sets (not counters) keep Put idempotent: re-warming a cached record
// counts nothing twice.
func (s space) tagNames() string         { return string(s) + "tags" }
func (s space) tagSet(tag string) string { return string(s) + "tagset:" + esc(tag) }

// tagMembers queues the tag-set changes from prev to m.
func (s space) tagMembers(ctx context.Context, p redis.Pipeliner, prev *media.Media, m media.Media) {
	now := map[string]bool{}
	for _, t := range m.Tags {
		now[t] = true
		p.SAdd(ctx, s.tagSet(t), m.ID)
		p.SAdd(ctx, s.tagNames(), t)
	}
	if prev != nil {
		for _, t := range prev.Tags {
			if !now[t] {
				s.dropTagMember(ctx, p, t, prev.ID)
			}
		}
	}
}

// dropTagMember removes id from tag's set, and the tag from the tenant's
// list once no media carries it.
func (s space) dropTagMember(ctx context.Context, p redis.Pipeliner, tag, id string) {
	p.SRem(ctx, s.tagSet(tag), id)
	dropUnusedTag.Eval(ctx, p, []string{s.tagNames(), s.tagSet(tag)}, tag)
}

var dropUnusedTag = redis.NewScript(`
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end
return 0`)

// Tags lists the tenant's tags, most used first, at most limit. Tags no
// longer in use are dropped from the list as they are found.
func (ix *Index) Tags(ctx context.Context, tenantID string, limit int) ([]media.TagCount, error) {
	s := ix.space(tenantID)
	names, err := ix.rdb.SMembers(ctx, s.tagNames()).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	counts := make([]*redis.IntCmd, len(names))
	_, err = ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			counts[i] = p.SCard(ctx, s.tagSet(n))
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]media.TagCount, 0, len(names))
	var unused []any
	for i, n := range names {
		if c := counts[i].Val(); c > 0 {
			out = append(out, media.TagCount{Tag: n, Count: c})
		} else {
			unused = append(unused, n)
		}
	}
	for _, n := range unused {
		// Atomic: a tag re-used since the count above stays listed.
		dropUnusedTag.Run(ctx, ix.rdb, []string{s.tagNames(), s.tagSet(n.(string))}, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Tag < out[j].Tag
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
