package sfu

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// TestAbsSendTimeValue: 6.18 fixed point, wrapping every 64 s.
func TestAbsSendTimeValue(t *testing.T) {
	for _, c := range []struct {
		name string
		at   time.Duration
		want uint32
	}{
		{"zero", 0, 0},
		{"half a second", 500 * time.Millisecond, 1 << 17},
		{"one second", time.Second, 1 << 18},
		{"63.75 s", 63*time.Second + 750*time.Millisecond, 63<<18 | 3<<16},
		{"wraps at 64 s", 64 * time.Second, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := absSendTime(int64(c.at)); got != c.want {
				t.Errorf("absSendTime(%s) = %#x, want %#x", c.at, got, c.want)
			}
		})
	}
}

// TestAbsSendTimeNegotiatedAndStamped: the node offers abs-send-time on
// what it sends, and once the subscriber accepts it every packet it gets
// carries the extension with the node's send time.
func TestAbsSendTimeNegotiatedAndStamped(t *testing.T) {
	e := newPathEngine(t, false)
	r := newPathRoom(t, e, 1)
	sub := r.subs[0]
	offer := sub.sig.last(t, true, 1)
	if !strings.Contains(offer, "a=extmap:2 "+extAbsSendTime) {
		t.Fatalf("the offer maps no abs-send-time:\n%s", offer)
	}
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 100}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		hdr.SequenceNumber++
		r.pub.sendRTP(&hdr, vp8Payload(true))
		before := absSendTime(time.Now().UnixNano())
		if _, err := sub.recvRTP(time.Now().Add(200 * time.Millisecond)); err != nil {
			continue
		}
		v := sub.rhdr.GetExtension(2)
		if len(v) != 3 {
			t.Fatalf("a forwarded packet carries no abs-send-time (extensions %v)", sub.rhdr.GetExtensionIDs())
		}
		got := uint32(v[0])<<16 | uint32(v[1])<<8 | uint32(v[2])
		// Within 100 ms (26214 units) of when the packet was sent.
		if d := (got - before) & 0xFFFFFF; d > 26214 && d < 0xFFFFFF-26214 {
			t.Fatalf("abs-send-time %#x, the send time was about %#x", got, before)
		}
		return
	}
	t.Fatal("no packet forwarded")
}

// TestAbsSendTimeIDAvoidsClientIDs: an id the client mapped to another
// extension is never the node's abs-send-time id.
func TestAbsSendTimeIDAvoidsClientIDs(t *testing.T) {
	p := &Peer{}
	p.ext.merge(extIDs{mid: 1, twcc: 3, used: 1<<1 | 1<<2 | 1<<3})
	if id := p.absIDLocked(); id != 4 {
		t.Errorf("id %d, want 4 (1-3 are the client's)", id)
	}
	q := &Peer{}
	q.ext.merge(extIDs{abs: 9, used: 1 << 9})
	if id := q.absIDLocked(); id != 9 {
		t.Errorf("id %d, want the client's own 9", id)
	}
}
