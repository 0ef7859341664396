package index

import (
	"context"
	"time"

	"github.com/chatvault/chatvault/internal/apperr"
)

// Claim marks key as seen for ttl, once: it reports false when the key was
// already claimed. Webhook deliveries use it so a provider's retries of one
// message enqueue it once; a short first ttl, extended by Confirm once the
// work is safely queued, means a crash in between does not drop the message
// for good (the provider's next retry claims it again).
func (ix *Index) Claim(ctx context.Context, tenantID, key string, ttl time.Duration) (bool, error) {
	ok, err := ix.rdb.SetNX(ctx, ix.claimKey(tenantID, key), "1", ttl).Result()
	if err != nil {
		return false, apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
	}
	return ok, nil
}

// Confirm extends a claim to ttl.
func (ix *Index) Confirm(ctx context.Context, tenantID, key string, ttl time.Duration) error {
	if err := ix.rdb.PExpire(ctx, ix.claimKey(tenantID, key), ttl).Err(); err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
	}
	return nil
}

// Forget drops a claim, so the next delivery is taken.
func (ix *Index) Forget(ctx context.Context, tenantID, key string) error {
	if err := ix.rdb.Del(ctx, ix.claimKey(tenantID, key)).Err(); err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "the index is unavailable")
	}
	return nil
}

func (ix *Index) claimKey(tenantID, key string) string {
	return string(ix.space(tenantID)) + "seen:" + esc(key)
}
