package blobstore_test

import (
	"os"
	"testing"

	"github.com/chatvault/chatvault/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopS3()
	os.Exit(code)
}
