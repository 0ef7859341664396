//go:build race

package blobstore_test

// Under the race detector sync.Pool drops a share of Puts on purpose, so
// part buffers are reallocated and heap peaks carry extra garbage.
const raceEnabled = true
