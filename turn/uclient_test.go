package turn

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// uclientTimeout bounds one turnutils_uclient run; a run takes well under
// a second here.
const uclientTimeout = 30 * time.Second

// uclientMessages is how many messages each turnutils_uclient run relays.
const uclientMessages = 20

// allowLoopback is --turn-allow-peers 127.0.0.0/8, which the tests' peers
// on 127.0.0.1 need.
func allowLoopback(c *Config) {
	c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

// runUclient runs coturn's turnutils_uclient against port with REST
// credentials made by the tool itself (-W secret -u name) and the extra
// flags, and returns its output and exit error.
func runUclient(t *testing.T, port, peerPort int, extra ...string) (string, error) {
	t.Helper()
	bin := requireTool(t, "turnutils_uclient", "coturn")
	args := []string{
		"-p", strconv.Itoa(port), "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-n", strconv.Itoa(uclientMessages), "-l", "120", "-z", "5", "-c",
	}
	args = append(append(args, extra...), "127.0.0.1")
	return runTool(t, uclientTimeout, bin, args...)
}

// requireRelayed fails unless turnutils_uclient's summary says every
// message it sent came back: at least uclientMessages, more with -y (as
// -T implies), where both clients' messages are counted.
func requireRelayed(t *testing.T, out string, err error) {
	t.Helper()
	m := regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`).FindStringSubmatch(out)
	ok := err == nil && m != nil && strings.Contains(out, "Total lost packets 0 ")
	if ok {
		sent, _ := strconv.Atoi(m[1])
		received, _ := strconv.Atoi(m[2])
		ok = sent >= uclientMessages && received == sent
	}
	if !ok {
		t.Fatalf("turnutils_uclient did not relay its %d messages (err %v):\n%s", uclientMessages, err, out)
	}
}

// TestUclientRelays has coturn's own client allocate and relay through the
// embedded server with REST credentials it derives itself (-W), to a
// turnutils_peer echo peer: TURN over UDP, TURN over TCP (-t), and an
// RFC 6062 TCP relay between two clients (-T).
func TestUclientRelays(t *testing.T) {
	t.Parallel() // turnutils_uclient runs take seconds of waiting
	ts := newTestServer(t, allowLoopback)
	peer := startPeer(t)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"udp", nil},
		{"tcp", []string{"-t"}},
		{"udp_send_indications", []string{"-s"}},
		{"tcp_relay_rfc6062", []string{"-T"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.Stats().RelayedBytes
			out, err := runUclient(t, ts.port, peer, append([]string{"-W", testSecret, "-u", "student-" + tc.name}, tc.flags...)...)
			requireRelayed(t, out, err)
			if after := ts.Stats().RelayedBytes; after-before < 2*uclientMessages*120 {
				t.Errorf("RelayedBytes grew by %d, want >= %d", after-before, 2*uclientMessages*120)
			}
		})
	}
}

// TestUclientRefused has turnutils_uclient fail to allocate with a wrong
// secret and with an expired username (whose password is otherwise
// right), over UDP and TCP, and checks the refusals are counted and
// logged.
func TestUclientRefused(t *testing.T) {
	ts := newTestServer(t, allowLoopback)
	peer := startPeer(t)
	expiredUser, expiredPass := Credentials([]byte(testSecret), "alice", time.Now().Add(-time.Minute))
	for _, tc := range []struct {
		name   string
		flags  []string
		reason RefusalReason
	}{
		{"wrong_secret_udp", []string{"-W", "not-the-secret", "-u", "alice"}, RefusedBadCredentials},
		{"wrong_secret_tcp", []string{"-t", "-W", "not-the-secret", "-u", "alice"}, RefusedBadCredentials},
		{"expired_udp", []string{"-u", expiredUser, "-w", expiredPass}, RefusedExpired},
		{"expired_tcp", []string{"-t", "-u", expiredUser, "-w", expiredPass}, RefusedExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.Stats().Refused[tc.reason]
			out, err := runUclient(t, ts.port, peer, tc.flags...)
			if err == nil || !strings.Contains(out, "Cannot complete Allocation") {
				t.Fatalf("turnutils_uclient was not refused (err %v):\n%s", err, out)
			}
			if ts.Stats().Refused[tc.reason] == before {
				t.Errorf("Refused[%s] did not grow", tc.reason)
			}
		})
	}
	if ts.Stats().Allocations != 0 {
		t.Errorf("Allocations = %d after refused clients", ts.Stats().Allocations)
	}
	logs := ts.logs.String()
	for _, reason := range []string{"reason=bad_credentials", "reason=expired"} {
		if lines(logs, reason) == "" {
			t.Errorf("no %s line logged", reason)
		}
	}
}

// TestUclientPeerPolicy relays to a loopback peer: refused (403) by
// default, over channels and over Send indications, and relayed with
// --turn-allow-peers 127.0.0.0/8.
func TestUclientPeerPolicy(t *testing.T) {
	t.Parallel() // turnutils_uclient runs take seconds of waiting
	peer := startPeer(t)
	t.Run("refused_by_default", func(t *testing.T) {
		ts := newTestServer(t, nil)
		for _, flags := range [][]string{nil, {"-s"}, {"-t"}} {
			out, err := runUclient(t, ts.port, peer, append([]string{"-W", testSecret, "-u", "mallory"}, flags...)...)
			if err == nil || !strings.Contains(out, "403") {
				t.Fatalf("turnutils_uclient %v to 127.0.0.1 was not refused with 403 (err %v):\n%s", flags, err, out)
			}
		}
		if ts.Stats().Refused[RefusedForbiddenPeer] == 0 {
			t.Error("forbidden_peer not counted")
		}
	})
	t.Run("allowed_with_allow_peers", func(t *testing.T) {
		ts := newTestServer(t, allowLoopback)
		out, err := runUclient(t, ts.port, peer, "-W", testSecret, "-u", "student")
		requireRelayed(t, out, err)
	})
}
