package index

import (
	"context"
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatvault/chatvault/internal/apperr"
)

const (
	pollMin = 5 * time.Millisecond
	pollMax = 100 * time.Millisecond
)

// The token makes renew and release act only on our own lock: after a
// lease ran out and someone else took it, they must not touch theirs.
var (
	renewLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	releaseLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)
)

// Lock takes the tenant's lock called name. While another holder has it,
// Lock polls for up to wait (0 means one attempt) and then returns
// apperr.Conflict. The lease is renewed until unlock is called or ctx ends;
// a holder that crashes, or whose ctx ends, frees the lock when the lease
// runs out. unlock is safe to call more than once.
func (ix *Index) Lock(ctx context.Context, tenantID, name string, wait time.Duration) (func(), error) {
	key := ix.space(tenantID).lock(name)
	token := crand.Text()
	deadline := time.Now().Add(wait)
	backoff := pollMin
	for {
		ok, err := ix.rdb.SetNX(ctx, key, token, ix.lease).Result()
		if err != nil {
			return nil, unavailable(err)
		}
		if ok {
			return ix.hold(ctx, key, token), nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, apperr.New(apperr.Conflict, "another request is working on this resource; retry later")
		}
		// Jitter spreads waiters out so they don't all retry on one tick.
		sleep := min(backoff/2+rand.N(backoff/2+1), left)
		backoff = min(backoff*2, pollMax)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// hold renews the lease every third of it, so two missed renewals in a row
// still leave the lock held.
func (ix *Index) hold(ctx context.Context, key, token string) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(ix.lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				n, err := renewLock.Run(ctx, ix.rdb, []string{key}, token, ix.lease.Milliseconds()).Int()
				if err == nil && n == 0 {
					// The lease ran out (Redis was unreachable too long) and
					// the lock is gone or someone else's: stop renewing it.
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			// The caller's ctx is often done by now; release anyway. If this
			// fails, the lease frees the lock.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = releaseLock.Run(rctx, ix.rdb, []string{key}, token).Err()
		})
	}
}
