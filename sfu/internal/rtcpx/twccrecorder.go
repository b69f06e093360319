package rtcpx

import "encoding/binary"

// TWCCWindow is how many transport-wide sequence numbers a TWCCRecorder
// holds: a student's camera and microphone send ~100 packets a second, so
// twenty seconds of them (two at 1,000 packets a second), far more than
// feedback every 100 ms or so ever covers.
const TWCCWindow = 2048

// TWCCMaxPacketLen is the most octets AppendFeedback puts in one feedback
// packet. With SRTCP's trailer (14 octets), UDP (8) and IPv6 (40) it fits
// the 1,280-octet IPv6 minimum MTU, so feedback is never fragmented.
const TWCCMaxPacketLen = 1200

// twccSlot is one sequence number's arrival. seq is the extended sequence
// number, so that a slot reused TWCCWindow numbers later is told apart; 0 means
// empty (extended numbers start above 1<<32).
type twccSlot struct {
	seq     int64
	arrival int64
}

// TWCCRecorder records the arrival of packets carrying a transport-wide
// sequence number and writes the transport-wide CC feedback
// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) that the
// sender's bandwidth estimator (Chrome's and Firefox's send-side BWE)
// reads.
//
// Arrival times are microseconds on any clock that does not jump, such as
// time.Since(start).Microseconds(): only their differences matter, and the
// reference time written is the first arrival of a feedback packet in 64 ms
// units, modulo 2^24. Sequence numbers may wrap around, be reordered or
// duplicated; the first arrival of a number is the one reported.
//
// Its storage is fixed (about 33 KiB, for the last TWCCWindow sequence
// numbers) and allocated with it; Record and AppendFeedback allocate
// nothing. The zero value is ready to use. One goroutine owns a
// TWCCRecorder: it is not safe for concurrent use.
type TWCCRecorder struct {
	slots   [TWCCWindow]twccSlot
	deltas  [TWCCMaxPacketLen]byte // one packet's receive deltas, written after its chunks
	started bool
	highest int64 // highest extended sequence number recorded
	next    int64 // first extended sequence number the next feedback covers
	fbCount uint8
}

// Record notes that the packet with transport-wide sequence number seq
// arrived at arrival (microseconds). A number more than TWCCWindow behind
// the highest one recorded is too old to report and is dropped; a duplicate
// is ignored. A packet that arrives after feedback already reported it lost
// makes the next feedback start again from it, as libwebrtc's receiver
// does, so that the sender learns it arrived.
func (r *TWCCRecorder) Record(seq uint16, arrival int64) {
	var ext int64
	if !r.started {
		r.started = true
		ext = 1<<32 + int64(seq)
		r.highest, r.next = ext, ext
	} else {
		ext = r.highest + int64(int16(seq-uint16(r.highest)))
	}
	if ext <= r.highest-TWCCWindow {
		return
	}
	slot := &r.slots[ext%TWCCWindow]
	if slot.seq == ext {
		return
	}
	slot.seq, slot.arrival = ext, arrival
	r.highest = max(r.highest, ext)
	r.next = min(r.next, ext)
}

// AppendFeedback appends to dst feedback for every sequence number from
// where the previous feedback ended (or from the first recorded) up to the
// highest recorded, with those not recorded reported as not received, and
// reports whether there was anything to report. The feedback is one or
// more RTPFB FMT 15 packets, each at most TWCCMaxPacketLen octets with its
// own reference time and the next feedback packet count; a new packet
// starts where one would grow too long, or where a receive delta does not
// fit in 16 bits (over 8 s, as after a pause). They may be sent in one
// compound or apart.
func (r *TWCCRecorder) AppendFeedback(dst []byte, senderSSRC, mediaSSRC uint32) ([]byte, bool) {
	if !r.started || r.next > r.highest {
		return dst, false
	}
	for ext := max(r.next, r.highest-TWCCWindow+1); ext <= r.highest; {
		dst, ext = r.appendPacket(dst, ext, senderSSRC, mediaSSRC)
	}
	r.next = r.highest + 1
	return dst, true
}

// appendPacket appends one feedback packet whose statuses start at
// extended sequence number from and returns where the next one starts.
func (r *TWCCRecorder) appendPacket(dst []byte, from int64, senderSSRC, mediaSSRC uint32) ([]byte, int64) {
	start := len(dst)
	dst = appendHeader(dst, FmtTWCC, TypeRTPFB)
	dst = binary.BigEndian.AppendUint32(dst, senderSSRC)
	dst = binary.BigEndian.AppendUint32(dst, mediaSSRC)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // base, count, reference time, fb count: below

	var enc chunkEncoder
	deltas := r.deltas[:0]
	var refTime, last int64 // reference time, and the last arrival reported, in 250 µs units
	haveRef := false
	ext := from
statuses:
	for ; ext <= r.highest; ext++ {
		// Stop before this status could push the packet past its limit:
		// one more chunk, a two-octet delta and padding.
		if ext > from && len(dst)+2*enc.pending()+len(deltas)+2+2+3-start > TWCCMaxPacketLen {
			break statuses
		}
		sym, delta := uint8(twccNotReceived), int64(0)
		slot := &r.slots[ext%TWCCWindow]
		if slot.seq == ext {
			at := floorDiv(slot.arrival, TWCCDeltaMicros)
			if !haveRef {
				refTime = floorDiv(slot.arrival, TWCCRefTimeMicros)
				last, haveRef = refTime*(TWCCRefTimeMicros/TWCCDeltaMicros), true
			}
			delta = at - last
			switch {
			case delta >= 0 && delta <= 0xff:
				sym = twccSmallDelta
			case delta >= -1<<15 && delta < 1<<15:
				sym = twccLargeDelta
			default:
				break statuses // this one starts the next packet, with its own reference time
			}
			last = at
		}
		dst = enc.add(dst, sym)
		switch sym {
		case twccSmallDelta:
			deltas = append(deltas, byte(delta))
		case twccLargeDelta:
			deltas = binary.BigEndian.AppendUint16(deltas, uint16(delta))
		}
	}
	dst = enc.flush(dst)
	dst = append(dst, deltas...)
	for (len(dst)-start)%4 != 0 {
		dst = append(dst, 0) // zero padding (§3.1), not RTCP padding
	}
	fixed := dst[start+headerLen+8:]
	binary.BigEndian.PutUint16(fixed, uint16(from))
	binary.BigEndian.PutUint16(fixed[2:], uint16(ext-from))
	binary.BigEndian.PutUint32(fixed[4:], uint32(refTime)<<8|uint32(r.fbCount))
	r.fbCount++
	return finish(dst, start), ext
}

// floorDiv is a/b rounded towards minus infinity, so that arrival times
// before the clock's zero quantise like the others.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
