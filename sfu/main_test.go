package sfu

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives its tests: every
// Peer, track reader and RTCP reader is waited for by its owner.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
