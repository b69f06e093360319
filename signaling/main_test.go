package signaling

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// session, PeerConnection and track reader must be gone once closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
