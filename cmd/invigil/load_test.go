package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/loadtest"
)

// TestLoadSmall runs `invigil load` against a node served in-process: 2
// rooms × 5 students × 1 proctor for 8 s, with the lean client and then
// with pion PeerConnections (an independent implementation). It asserts
// correctness only (everyone connected, every proctor got every
// student's media, loss under 1%, sane delay) and that both clients
// agree on it; figures are for the benchmarks (docs/benchmarks.md).
func TestLoadSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("two real 8 s load runs")
	}
	srv := startServe(t, "--api-secret", secret)
	var results []loadtest.Result
	for _, client := range []string{loadtest.ClientLean, loadtest.ClientPion} {
		res := smallLoad(t, srv.base, client)
		if res.Client != client {
			t.Errorf("ran client %q, want %q", res.Client, client)
		}
		results = append(results, res)
	}
	lean, pion := results[0], results[1]
	// Loopback delays are well under a millisecond each way; the two
	// clients' medians differ by far less than 20 ms unless one of them
	// measures wrongly.
	if d := lean.DelayP50MS - pion.DelayP50MS; d > 20 || d < -20 {
		t.Errorf("median one-way delay: lean %.2f ms, pion %.2f ms", lean.DelayP50MS, pion.DelayP50MS)
	}
}

// smallLoad is one 2 × 5 run with the given client.
func smallLoad(t *testing.T, base, client string) loadtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"--url", base, "--api-secret", secret, "--rooms", "2", "--students-per-room", "5",
		"--proctors-per-room", "1", "--duration", "8s", "--ramp", "2s", "--focus-every", "2s",
		"--server-pid", strconv.Itoa(os.Getpid()), "--client", client, "--json"}
	if err := load(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("load --client %s: %v\n%s", client, err, stderr.String())
	}
	var res loadtest.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("load output is not one JSON object: %v\n%s", err, stdout.String())
	}
	t.Logf("%s: %s", client, stdout.String())
	if res.StudentsAttempted != 10 || res.StudentsConnected != 10 || res.ProctorsConnected != 2 {
		t.Errorf("%s: connected: students %d/%d, proctors %d/2; failures %v, server errors %v",
			client, res.StudentsConnected, res.StudentsAttempted, res.ProctorsConnected, res.Failures, res.ServerErrors)
	}
	if res.MediaPairsExpected != 10 || res.MediaPairs != 10 {
		t.Errorf("%s: proctors got video and audio from %d of %d students", client, res.MediaPairs, res.MediaPairsExpected)
	}
	if res.JoinSamples != 10 {
		t.Errorf("%s: only %d students' media reached a proctor", client, res.JoinSamples)
	}
	if res.LossRatio >= 0.01 {
		t.Errorf("%s: loss after retransmission %.4f, want < 1%%", client, res.LossRatio)
	}
	if res.DelayP50MS <= 0 || res.DelayP99MS > 500 {
		t.Errorf("%s: one-way delay p50 %.2f ms, p99 %.2f ms: not sane", client, res.DelayP50MS, res.DelayP99MS)
	}
	// 10 students × (30 video + 50 audio packets) a second for ~5 s at
	// least; the proctors get the low layer and audio of each.
	if res.SentPackets < 10*80*5 || res.ForwardedPackets < res.SentPackets/3 {
		t.Errorf("%s: sent %d, forwarded %d packets: too few", client, res.SentPackets, res.ForwardedPackets)
	}
	if res.FocusSwitches == 0 {
		t.Errorf("%s: no focus switch reached a proctor (%d missed)", client, res.FocusMissed)
	}
	if res.ServerCPUSeconds <= 0 || res.ServerRSSBytes <= 0 {
		t.Errorf("%s: server figures from /proc missing: cpu %v s, rss %d", client, res.ServerCPUSeconds, res.ServerRSSBytes)
	}
	return res
}

// TestLoadRefuses checks the bounds and the loopback-only target.
func TestLoadRefuses(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"remote url", []string{"--url", "http://192.0.2.1:7880"}, "not loopback"},
		{"ws url", []string{"--url", "ws://127.0.0.1:7880"}, "http"},
		{"too many peers", []string{"--rooms", "100", "--students-per-room", "25"}, "more than"},
		{"too long", []string{"--duration", "2h"}, "duration"},
		{"ramp past the end", []string{"--duration", "10s", "--ramp", "10s"}, "ramp"},
		{"no secret", []string{"--api-secret", ""}, "secret"},
		{"unknown client", []string{"--client", "chrome"}, "client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--api-secret", secret}, tc.args...)
			var stdout, stderr bytes.Buffer
			err := load(context.Background(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
