package main

import (
	"os"
	"runtime/debug"
)

// serverGCPercent is the garbage collector's target for `invigil serve`
// unless GOGC is set. A node's live heap is mostly fixed per participant
// (PeerConnections, retransmission rings) and it makes little garbage (a
// few MB/s, nearly all pion's per-packet RTP header in the RTCP report
// interceptor), so collecting at +50% instead of Go's default +100%
// costs little CPU and keeps ~20% of RSS per student (docs/benchmarks.md).
const serverGCPercent = 50

// tuneGC applies serverGCPercent unless the operator chose with GOGC.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serverGCPercent)
	}
}
