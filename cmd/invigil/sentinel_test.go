package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
	"github.com/redis/go-redis/v9"
)

// sentinelMaster is the name the test's sentinels monitor the primary as.
const sentinelMaster = "invigil"

// Sentinel timing for tests: a primary silent for a second is down, and a
// failover that stalls is retried after 5 s. Sentinel's defaults (30 s,
// 3 min) would outlast any test.
const (
	sentinelDownAfter       = 1000 * time.Millisecond
	sentinelFailoverTimeout = 5 * time.Second
)

// freePort is a loopback TCP port nothing listens on (for daemons that
// need their port on the command line).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSentinel runs redis-sentinel on a free loopback port monitoring
// the primary at 127.0.0.1:primary with quorum 2; it is SIGKILLed by PID
// when the test ends. It returns host:port.
func startSentinel(t *testing.T, primary int) string {
	t.Helper()
	if _, err := exec.LookPath("redis-sentinel"); err != nil {
		t.Fatal("redis-sentinel missing: scripts/install-test-deps.sh installs it")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
daemonize no
dir %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, dir, sentinelMaster, primary, sentinelMaster, sentinelDownAfter.Milliseconds(),
		sentinelMaster, sentinelFailoverTimeout.Milliseconds(), sentinelMaster)
	path := filepath.Join(dir, "sentinel.conf") // sentinel rewrites it: its own file
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-sentinel", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	testclient.Eventually(t, 5*time.Second, "redis-sentinel listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// sentinelMasterInfo is SENTINEL MASTER <name> as one sentinel sees it.
func sentinelMasterInfo(t *testing.T, addr string) map[string]string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := sc.Master(ctx, sentinelMaster).Result()
	if err != nil {
		return nil
	}
	return m
}

// replicaUp says whether the replica's link to its primary is up.
func replicaUp(t *testing.T, rdb *redis.Client) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(info, "master_link_status:up")
}

// TestSentinelFailover: a primary, a replica and three sentinels (quorum
// 2) on loopback; a node on --redis-sentinel-addrs runs a live room; the
// primary is SIGKILLed and the sentinels promote the replica. Media goes
// on; the events recorded during and after the failover reach the
// proctor live and the new primary's stream holds every event of the
// room once, in order, seq gap-free (entries the new primary lacks, as
// asynchronous replication can lose them, are shipped again from the
// spool); placement
// answers again within 15 s of the kill.
func TestSentinelFailover(t *testing.T) {
	primary := testredis.Start(t, 0)
	replica := testredis.Start(t, 0, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
	rrdb := redis.NewClient(&redis.Options{Addr: replica.Addr(), MaxRetries: -1})
	defer rrdb.Close()
	testclient.Eventually(t, 10*time.Second, "the replica in sync", func() bool { return replicaUp(t, rrdb) })
	var sentinels []string
	for range 3 {
		sentinels = append(sentinels, startSentinel(t, primary.Port))
	}
	testclient.Eventually(t, 15*time.Second, "each sentinel sees the replica and the other two", func() bool {
		for _, s := range sentinels {
			m := sentinelMasterInfo(t, s)
			if m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
				return false
			}
		}
		return true
	})

	a := startNodeProc(t, "--redis-sentinel-addrs", strings.Join(sentinels, ","), "--redis-sentinel-master", sentinelMaster,
		"--node-id", "a", "--log-level", "info")
	t.Cleanup(func() { // the node first, while the new primary serves
		a.cmd.Process.Signal(syscall.SIGTERM)
		a.cmd.Wait()
	})
	testclient.Eventually(t, 5*time.Second, "placement", func() bool { code, _ := place(t, a.base, "exam-sentinel", 3); return code == http.StatusOK })
	proctor := testclient.Join(t, wsURL(a.base), secret, "exam-sentinel", "proctor-1", room.RoleProctor)
	feed := &liveFeed{c: proctor, events: map[int64]room.Event{}, inDown: map[int64]bool{}}
	alice := testclient.Join(t, wsURL(a.base), secret, "exam-sentinel", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "alice's media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })
	feed.until(t, 5*time.Second, "alice's track_published", func() bool { return feed.has(room.EventTrackPublished, "alice") })
	prdb := redis.NewClient(&redis.Options{Addr: primary.Addr(), MaxRetries: -1})
	defer prdb.Close()
	testclient.Eventually(t, 5*time.Second, "alice's events shipped", func() bool {
		evs, err := streamEvents(t, prdb, "exam-sentinel")
		return err == nil && len(evs) >= len(feed.events)
	})
	// An event shipped to the primary just before it dies, likely not yet
	// replicated: the case asynchronous replication loses.
	alice.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden", "details": map[string]any{"at": "kill"}})
	feed.until(t, 5*time.Second, "alice's violation, live", func() bool { return feed.has(room.EventViolation, "alice") })

	primary.Stop() // SIGKILL by PID
	killed := time.Now()
	feed.down = true
	bob := testclient.Join(t, wsURL(a.base), secret, "exam-sentinel", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "bob's media during the failover", func() bool { return proctor.PacketsFrom(bob.Me.SID) > 30 })
	bob.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden"})
	feed.until(t, 5*time.Second, "bob's violation, live", func() bool { return feed.has(room.EventViolation, "bob") })

	testclient.Eventually(t, 15*time.Second, "the sentinels promote the replica", func() bool {
		m := sentinelMasterInfo(t, sentinels[0])
		return m["port"] == strconv.Itoa(replica.Port)
	})
	// What asynchronous replication can lose: entries the old primary
	// acknowledged and never sent. Whether the kill above lost any is up
	// to timing, so the new primary's stream is made what it would be
	// had the last two never arrived (rewritten without them: XDEL would
	// keep the stream's last ID); the node must find its stream behind
	// and ship them again.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	key := "invigil:events:exam-sentinel"
	entries, err := rrdb.XRange(ctx, key, "-", "+").Result()
	if err != nil || len(entries) < 3 {
		t.Fatalf("the new primary's stream: %d entries, %v", len(entries), err)
	}
	if _, err := rrdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		for _, m := range entries[:len(entries)-2] {
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: m.ID, Values: m.Values})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cancel()
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 15*time.Second-time.Since(killed), "placement answers again within 15 s of the kill", func() bool {
		code, _ := place(t, a.base, "exam-after", 2)
		return code == http.StatusOK
	})
	t.Logf("placement answered %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	feed.down = false
	bob.Close()
	feed.until(t, 5*time.Second, "bob's leave, live", func() bool { return feed.has(room.EventLeave, "bob") })
	testclient.Eventually(t, 5*time.Second, "alice's media after the failover", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+30 })

	var stream []room.Event
	last := int64(0)
	testclient.Eventually(t, 15*time.Second, "every event in the new primary's stream", func() bool {
		feed.drain(t)
		for seq := range feed.events {
			last = max(last, seq)
		}
		evs, err := streamEvents(t, rrdb, "exam-sentinel")
		stream = evs
		return err == nil && int64(len(evs)) >= last && value(parse(t, scrape(t, a.base)), "invigil_trail_spool_backlog_events", nil) == 0
	})
	for i, e := range stream {
		if e.Seq != int64(i+1) {
			t.Fatalf("stream entry %d has seq %d: not gap-free from 1, or duplicated (%d entries)", i, e.Seq, len(stream))
		}
		live, ok := feed.events[e.Seq]
		if !ok {
			t.Errorf("seq %d (%s/%s) is in the stream but never came live", e.Seq, e.Kind, e.Subject)
			continue
		}
		if live.Kind != e.Kind || live.Subject != e.Subject || !live.Time.Equal(e.Time) {
			t.Errorf("seq %d: live %s/%s, in the stream %s/%s", e.Seq, live.Kind, live.Subject, e.Kind, e.Subject)
		}
	}
	for seq := range feed.events {
		if seq < 1 || seq > int64(len(stream)) {
			t.Errorf("seq %d came live but is not in the new primary's stream (%d entries)", seq, len(stream))
		}
	}
	for _, want := range []struct{ kind, subject string }{
		{room.EventViolation, "alice"}, {room.EventJoin, "bob"}, {room.EventTrackPublished, "bob"},
		{room.EventViolation, "bob"}, {room.EventLeave, "bob"},
	} {
		found := false
		for _, e := range stream {
			found = found || (e.Kind == want.kind && e.Subject == want.subject)
		}
		if !found {
			t.Errorf("no %s of %s in the new primary's stream", want.kind, want.subject)
		}
	}
	fams := parse(t, scrape(t, a.base))
	if v := value(fams, "invigil_trail_reships_total", nil); v < 1 {
		t.Errorf("invigil_trail_reships_total %v: the stream that lost its tail was not shipped again", v)
	}
	t.Logf("%d events in the stream after the failover; %v re-ships", len(stream), value(fams, "invigil_trail_reships_total", nil))
}

// TestSentinelFlags: the two sentinel flags go together, and with them
// the node is in cluster mode without --redis-url.
func TestSentinelFlags(t *testing.T) {
	base := []string{"--api-secret", secret}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		cluster bool
		addrs   int
	}{
		{name: "none", args: nil},
		{name: "both", args: []string{"--redis-sentinel-addrs", "127.0.0.1:26379, 127.0.0.1:26380", "--redis-sentinel-master", "m"}, cluster: true, addrs: 2},
		{name: "with url", args: []string{"--redis-url", "redis://:pw@ignored:6379/2", "--redis-sentinel-addrs", "127.0.0.1:26379", "--redis-sentinel-master", "m"}, cluster: true, addrs: 1},
		{name: "addrs alone", args: []string{"--redis-sentinel-addrs", "127.0.0.1:26379"}, wantErr: "go together"},
		{name: "master alone", args: []string{"--redis-sentinel-master", "m"}, wantErr: "go together"},
		{name: "empty list", args: []string{"--redis-sentinel-addrs", " , ", "--redis-sentinel-master", "m"}, wantErr: "names no sentinel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServe(append(append([]string{}, base...), tc.args...), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.clusterMode() != tc.cluster || len(c.sentinels()) != tc.addrs {
				t.Errorf("cluster mode %v with %d sentinels, want %v with %d", c.clusterMode(), len(c.sentinels()), tc.cluster, tc.addrs)
			}
			if tc.cluster {
				r, err := c.openRedis()
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
