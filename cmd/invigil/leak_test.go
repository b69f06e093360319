package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: a node
// run in-process must release everything when serve returns.
//
// With INVIGIL_TEST_RUN_MAIN=1 the test binary is the invigil command
// instead (its arguments are the command's), so a test can run a node in
// a child process it may SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("INVIGIL_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}
