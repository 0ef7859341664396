//go:build race

package media_test

// Under the race detector sync.Pool drops a share of Puts on purpose and
// every allocation carries shadow bookkeeping, so the heap of the same
// work peaks higher; the bound is looser, the measurement is still logged.
const (
	memRaceEnabled = true
	memHeapBudget  = 128 << 20
)
