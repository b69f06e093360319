package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// l1t3 marshals a VP8 packet of an L1T3 stream, as Chromium sends one:
// 15-bit picture ID, TL0PICIDX, TID (and the layer-sync bit), one packet
// per frame unless start is false (a frame's later packet).
func l1t3(tb testing.TB, seq uint16, frame int, start, key bool) []byte {
	tb.Helper()
	payload := make([]byte, 600)
	payload[0] = 0x80 // X
	if start {
		payload[0] |= 0x10 // S, partition 0
	}
	payload[1] = 0xE0 // I, L, T
	pic := uint16(frame)
	payload[2], payload[3] = 0x80|byte(pic>>8), byte(pic)
	payload[4] = byte(frame / 4) // TL0PICIDX: base-layer frames so far
	payload[5] = byte(l1t3TID(frame)<<6) | 0x20
	payload[6] = 0x01
	if key {
		payload[6] = 0x00
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(frame) * 3000, SSRC: 0xCAFE, Marker: true}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// l1t3TID is the temporal layer of frame n in L1T3's pattern 0 2 1 2.
func l1t3TID(n int) int { return [4]int{0, 2, 1, 2}[n%4] }

// TestTemporalLayerDropKeepsStreamContiguous: a subscriber held to the
// base layer gets every fourth frame, with sequence numbers and picture
// IDs that continue without gaps, and TL0PICIDX unchanged; one at TID 1
// gets every other frame; one with no limit gets everything.
func TestTemporalLayerDropKeepsStreamContiguous(t *testing.T) {
	for _, c := range []struct {
		name   string
		target int
		every  int
	}{{"base", 0, 4}, {"tid1", 1, 2}, {"all", maxTID, 1}} {
		t.Run(c.name, func(t *testing.T) {
			tr, ls := testTrack(QualityLow)
			downs, writers := subscribe(tr, 1, QualityLow)
			downs[0].setTemporalTarget(c.target)
			w := writers[0]
			w.keep = true
			var pkt rtp.Packet
			var vp8s [][]byte
			for f := range 40 {
				feed(t, tr, ls[0], &pkt, l1t3(t, uint16(1000+f), f, true, f == 0))
				if len(w.sent) > len(vp8s) {
					vp8s = append(vp8s, append([]byte(nil), w.payload...))
				}
			}
			if want := 40 / c.every; len(w.sent) != want {
				t.Fatalf("%d packets forwarded, want %d", len(w.sent), want)
			}
			for i := 1; i < len(w.sent); i++ {
				if w.sent[i].SequenceNumber != w.sent[i-1].SequenceNumber+1 {
					t.Fatalf("sequence numbers %d then %d", w.sent[i-1].SequenceNumber, w.sent[i].SequenceNumber)
				}
				v0, v1 := parseVP8(vp8s[i-1]), parseVP8(vp8s[i])
				if p0, p1 := v0.pictureID(vp8s[i-1]), v1.pictureID(vp8s[i]); p1 != p0+1 {
					t.Fatalf("picture IDs %d then %d", p0, p1)
				}
				if tid := v1.tid(vp8s[i]); tid > c.target {
					t.Fatalf("a TID %d frame forwarded to a subscriber at %d", tid, c.target)
				}
				if got, want := vp8s[i][v1.tl0At], byte(i*c.every/4); got != want {
					t.Fatalf("frame %d: TL0PICIDX %d, want %d", i, got, want)
				}
			}
			wantDrops := uint64(40 - 40/c.every)
			if got := tr.stats.temporalDrops.Load(); got != wantDrops {
				t.Errorf("temporal drops counted %d, want %d", got, wantDrops)
			}
		})
	}
}

// TestTemporalTargetChangesAtBaseLayer: a new target takes effect at the
// next base-layer frame, never inside a group of frames.
func TestTemporalTargetChangesAtBaseLayer(t *testing.T) {
	tr, ls := testTrack(QualityLow)
	downs, writers := subscribe(tr, 1, QualityLow)
	d, w := downs[0], writers[0]
	w.keep = true
	var pkt rtp.Packet
	for f := range 6 { // frames 0-5 at full rate
		feed(t, tr, ls[0], &pkt, l1t3(t, uint16(f), f, true, f == 0))
	}
	d.setTemporalTarget(0)
	for f := 6; f < 12; f++ { // 6, 7 still at full rate; from 8 the base layer only
		feed(t, tr, ls[0], &pkt, l1t3(t, uint16(f), f, true, false))
	}
	if w.packets != 9 { // 0-7, then 8
		t.Fatalf("%d packets, want 9 (the target changes at frame 8)", w.packets)
	}
	d.setTemporalTarget(maxTID)
	for f := 12; f < 16; f++ {
		feed(t, tr, ls[0], &pkt, l1t3(t, uint16(f), f, true, false))
	}
	if w.packets != 13 {
		t.Fatalf("%d packets after lifting the target, want 13", w.packets)
	}
}

// TestTemporalNACKAndLatePackets: with frames dropped, a NACK for an
// outgoing number is answered with the incoming packet it stands for; a
// packet that arrives late takes the number kept for it, or padding when
// its layer is not forwarded.
func TestTemporalNACKAndLatePackets(t *testing.T) {
	tr, ls := testTrack(QualityLow)
	downs, writers := subscribe(tr, 1, QualityLow)
	d, w := downs[0], writers[0]
	d.setTemporalTarget(1)
	w.keep = true
	var pkt rtp.Packet
	// Frames of two packets each: seq 2f and 2f+1.
	send := func(f int, second bool) {
		seq := uint16(2 * f)
		if second {
			seq++
		}
		feed(t, tr, ls[0], &pkt, l1t3(t, seq, f, !second, f == 0 && !second))
	}
	for f := range 8 {
		if f == 5 { // frame 5 (TID 2) is lost on the way in, then arrives late
			continue
		}
		if f == 6 { // frame 6 (TID 1): its second packet is late
			send(f, false)
			continue
		}
		send(f, false)
		send(f, true)
	}
	// Forwarded so far: frames 0, 2, 4 whole, frame 6's first packet, 7 is
	// TID 2: out seqs 0-1 (f0), 2-3 (f2), 4-5 (f4), then the 2 numbers
	// kept for f5, 8 for f6's first packet and 9 kept for its second.
	if len(w.sent) != 7 {
		t.Fatalf("%d packets forwarded, want 7", len(w.sent))
	}
	n := len(w.sent)
	send(6, true) // late, TID 1: its kept number
	if len(w.sent) != n+1 || w.sent[n].SequenceNumber != 9 || w.sent[n].Padding {
		t.Fatalf("late TID 1 packet sent as %+v", w.sent[len(w.sent)-1])
	}
	send(5, false) // late, TID 2: padding in its kept number
	if len(w.sent) != n+2 || !w.sent[n+1].Padding || w.sent[n+1].SequenceNumber != 6 || len(w.payload) != 4 {
		t.Fatalf("late TID 2 packet: %+v, %d payload bytes", w.sent[len(w.sent)-1], len(w.payload))
	}
	// NACK of out 4 (frame 4's first packet, incoming seq 8): the cached packet.
	if !d.resend(nil, 4, time.Now().UnixNano()) {
		t.Fatal("NACK of a forwarded packet not answered")
	}
	got := w.sent[len(w.sent)-1]
	v := parseVP8(w.payload)
	// Frames 1 and 3 were dropped, so frame 4 is picture 2.
	if got.SequenceNumber != 4 || got.Timestamp != 4*3000 || v.pictureID(w.payload) != 2 {
		t.Errorf("retransmission of 4: seq %d ts %d picture %d, want 4, 12000, 2", got.SequenceNumber, got.Timestamp, v.pictureID(w.payload))
	}
	if !d.resend(nil, 6, time.Now().UnixNano()) || !w.sent[len(w.sent)-1].Padding {
		t.Error("NACK of a padded number not answered with padding")
	}
	if d.resend(nil, 7, time.Now().UnixNano()) {
		t.Error("NACK of a number kept for a packet that never arrived answered")
	}
	if d.resend(nil, 200, time.Now().UnixNano()) {
		t.Error("NACK of a number never used answered")
	}
}
