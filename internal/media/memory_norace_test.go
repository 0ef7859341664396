//go:build !race

package media_test

const (
	memRaceEnabled = false
	memHeapBudget  = 64 << 20 // the product goal: 8 × 64 MiB archives in under 64 MiB of heap
)
