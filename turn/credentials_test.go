package turn

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestCredentialsKnownAnswer pins the REST scheme to an independently
// computed value (Python: base64(hmac.new(b"north", b"1700000000:alice",
// sha1).digest())), the worked example of docs/turn.md.
func TestCredentialsKnownAnswer(t *testing.T) {
	u, p := Credentials([]byte("north"), "alice", time.Unix(1700000000, 0))
	if u != "1700000000:alice" || p != "Cd/49soE35ICqcJF/bCTn8Z4OyE=" {
		t.Fatalf("Credentials = %q, %q", u, p)
	}
}

func TestParseUsername(t *testing.T) {
	for _, tc := range []struct {
		in       string
		identity string
		unix     int64
		err      error
	}{
		{"1700000000:alice", "alice", 1700000000, nil},
		{"1700000000:room:a:b", "room:a:b", 1700000000, nil},
		{"alice", "", 0, ErrBadUsername},
		{":alice", "", 0, ErrBadUsername},
		{"1700000000:", "", 0, ErrBadUsername},
		{"-5:alice", "", 0, ErrBadUsername},
		{"+5:alice", "", 0, ErrBadUsername},
		{"0x10:alice", "", 0, ErrBadUsername},
		{"99999999999999999999:alice", "", 0, ErrBadUsername},
		{"alice:1700000000", "", 0, ErrBadUsername},
	} {
		t.Run(tc.in, func(t *testing.T) {
			exp, id, err := parseUsername(tc.in)
			if !errors.Is(err, tc.err) || id != tc.identity || (err == nil && exp.Unix() != tc.unix) {
				t.Fatalf("parseUsername(%q) = %v, %q, %v", tc.in, exp.Unix(), id, err)
			}
		})
	}
}

func TestCheckUsernameExpiry(t *testing.T) {
	now := time.Unix(1700000000, 0)
	u, _ := Credentials([]byte("k"), "alice", now.Add(-time.Second))
	if _, _, err := checkUsername([]byte("k"), "r", u, now); !errors.Is(err, ErrExpired) {
		t.Errorf("expired username: %v", err)
	}
	u, _ = Credentials([]byte("k"), "alice", now)
	if id, key, err := checkUsername([]byte("k"), "r", u, now); err != nil || id != "alice" || len(key) != 16 {
		t.Errorf("username expiring now: %q %x %v", id, key, err)
	}
}

// FuzzParseUsername: any USERNAME a client sends parses without panic,
// and what parses is the expiry before the first ':' and the rest.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"1700000000:alice", "1:a:b", "", ":", "x:y", "18446744073709551616:a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, id, err := parseUsername(s)
		if err != nil {
			return
		}
		ts, rest, _ := strings.Cut(s, ":")
		if n, _ := strconv.ParseInt(ts, 10, 64); rest != id || n != exp.Unix() {
			t.Fatalf("parseUsername(%q) = %v, %q", s, exp.Unix(), id)
		}
	})
}

// TestWrongCredentialsAnswer401 checks the exact code (RFC 8656 §6.2,
// RFC 8489 §9.2.4) for each refused credential, over UDP and TCP.
func TestWrongCredentialsAnswer401(t *testing.T) {
	ts := newTestServer(t, nil)
	expired, expiredPass := Credentials([]byte(testSecret), "alice", time.Now().Add(-time.Minute))
	_, wrongPass := Credentials([]byte("other secret"), "alice", time.Now().Add(time.Hour))
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name, username, password string
			reason                   RefusalReason
		}{
			{"wrong_secret", "", wrongPass, RefusedBadCredentials},
			{"expired", expired, expiredPass, RefusedExpired},
			{"not_rest_form", "alice", "x", RefusedBadCredentials},
		} {
			t.Run(network+"_"+tc.name, func(t *testing.T) {
				c := dialRaw(t, network, ts.udpAddr(), "alice")
				if tc.username != "" {
					c.username = tc.username
				}
				c.password = tc.password
				before := ts.Stats().Refused[tc.reason]
				if _, code := c.request(stun.MethodAllocate, rawAttr{stun.AttrRequestedTransport, []byte{protoUDP, 0, 0, 0}}); code != 401 {
					t.Fatalf("Allocate: code %d, want 401", code)
				}
				if ts.Stats().Refused[tc.reason] != before+1 {
					t.Errorf("Refused[%s] did not grow by 1", tc.reason)
				}
			})
		}
	}
}

// TestCredentialExpiringMidAllocation: requests after a credential expires
// are refused with 401 too (RFC 8656 §7.3: every request is
// authenticated), so an allocation outlives its credential only until its
// next Refresh.
func TestCredentialExpiringMidAllocation(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialRaw(t, "udp", ts.udpAddr(), "alice")
	// The expiry is whole seconds (the username's Unix time): 2 s ahead
	// leaves the Allocate at least 1 s of validity however slow it is, and
	// the credential has expired once the clock is past that second.
	expires := time.Now().Add(2 * time.Second)
	c.username, c.password = Credentials([]byte(testSecret), "alice", expires)
	c.allocate(protoUDP)
	time.Sleep(time.Until(time.Unix(expires.Unix(), 0)) + 100*time.Millisecond)
	if _, code := c.request(stun.MethodRefresh, lifetime(600)); code != 401 {
		t.Fatalf("Refresh with an expired credential: code %d, want 401", code)
	}
}

func TestURLs(t *testing.T) {
	got := strings.Join(URLs("turn.example.com", 3478, 5349), " ")
	want := "stun:turn.example.com:3478 turn:turn.example.com:3478?transport=udp turn:turn.example.com:3478?transport=tcp turns:turn.example.com:5349?transport=tcp"
	if got != want {
		t.Errorf("URLs = %s", got)
	}
	if got := URLs("2001:db8::1", 3478, 0); len(got) != 3 || got[0] != "stun:[2001:db8::1]:3478" {
		t.Errorf("URLs without TLS = %v", got)
	}
}
