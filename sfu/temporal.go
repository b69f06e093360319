package sfu

// VP8 temporal layers (RFC 7741 §4.2: TID in the payload descriptor).
// A publisher encoding L1T3 sends its frames in three temporal layers: TID
// 0 every fourth frame, TID 1 between them, TID 2 in between again, each
// layer referring only to the ones below it. A down-track whose
// subscriber's downlink fits less than the full frame rate forwards the
// frames of TIDs up to its target and drops the rest, whole frames at a
// time; the target changes only at the start of a base-layer frame, so a
// subscriber never gets a frame whose references it was not sent.
//
// The subscriber must see one contiguous stream: each dropped packet
// takes one from the outgoing sequence numbers and each dropped frame one
// from the picture IDs (TL0PICIDX counts base-layer frames, which are
// never dropped). The outgoing numbers of later packets therefore no
// longer differ from the incoming ones by one offset, and a seqMap
// remembers, for the recent packets, which incoming packet (of which
// layer, with which offsets) each outgoing number stands for: NACKs map
// back through it, and a packet arriving late (a publisher's
// retransmission) takes the number kept for it when the gap was seen.

const (
	// maxTID forwards every temporal layer: L1T3 has TIDs 0–2, and the
	// descriptor's two bits allow 3.
	maxTID = 3
	// seqMapSize is how many recent outgoing sequence numbers map back:
	// the retransmission cache holds at most about 512 packets of a
	// layer (its index), so an older NACK could not be answered anyway.
	seqMapSize = 512
)

// seqEntry is what one outgoing sequence number stands for.
type seqEntry struct {
	out, in   uint16
	state     uint8 // seqUnused, seqForwarded, seqPadding
	layer     int8
	tl0Offset uint8
	picOffset uint16
	tsOffset  uint32
}

const (
	seqUnused uint8 = iota
	// seqForwarded: the incoming packet was sent, or its number is kept
	// for it while it is missing.
	seqForwarded
	// seqPadding: the packet came late and was of a dropped temporal
	// layer, so its number carried padding (an empty packet a receiver
	// takes as filling the gap).
	seqPadding
)

// seqMap maps a down-track's outgoing sequence numbers to incoming ones
// and back. Guarded by the down-track's mu.
type seqMap struct {
	byOut [seqMapSize]seqEntry
	byIn  [seqMapSize]uint16 // incoming seq → outgoing; valid when byOut agrees
}

// record notes that outgoing out carries (or is kept for) incoming in.
func (s *seqMap) record(out, in uint16, state uint8, m *munger) {
	s.byOut[out%seqMapSize] = seqEntry{out: out, in: in, state: state, layer: int8(m.layer),
		tl0Offset: m.tl0Offset, picOffset: m.picOffset, tsOffset: m.tsOffset}
	s.byIn[in%seqMapSize] = out
}

// forIn returns the entry kept for incoming in on layer, if any.
func (s *seqMap) forIn(in uint16, layer int) (*seqEntry, bool) {
	e := &s.byOut[s.byIn[in%seqMapSize]%seqMapSize]
	return e, e.state != seqUnused && e.in == in && int(e.layer) == layer
}

// forOut returns the entry of outgoing out, if still remembered.
func (s *seqMap) forOut(out uint16) (seqEntry, bool) {
	e := s.byOut[out%seqMapSize]
	return e, e.state != seqUnused && e.out == out
}

// setTemporalTarget sets the highest temporal layer to forward (maxTID:
// all); it takes effect at the next base-layer frame.
func (d *DownTrack) setTemporalTarget(tid int) {
	d.tidTarget.Store(int32(min(max(tid, 0), maxTID)))
}

// paddingPayload fills b with an RTP padding run (RFC 3550 §5.1: the
// last byte counts the padding, itself included) and returns it.
func paddingPayload(b []byte) []byte {
	const n = 4
	p := b[:n]
	clear(p)
	p[n-1] = n
	return p
}
