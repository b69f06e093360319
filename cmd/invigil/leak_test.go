package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: a node
// run in-process must release everything when serve returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
