//go:build !race

package blobstore_test

const raceEnabled = false
