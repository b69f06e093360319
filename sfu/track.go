package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// maxRTPPacket is the read buffer of a track reader: the largest UDP payload
// on an Ethernet path, which bounds any SRTP packet a browser sends.
const maxRTPPacket = 1500

// Track is one published media track, read by one goroutine that forwards
// every packet to the down-tracks subscribed to it.
type Track struct {
	id       string // unique on this node, the subscribers' MediaStreamTrack id
	streamID string // the publisher's id, the subscribers' MediaStream id
	source   string // camera, microphone or screen: the caller's label
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecParameters
	ssrc     uint32

	remote  *webrtc.TrackRemote
	writeTo func([]rtcp.Packet) error // RTCP to the publisher
	pliGap  time.Duration
	stats   *counters

	// subs is the fan-out list: immutable, swapped whole on add/remove so
	// the reader never locks.
	subs atomic.Pointer[[]*DownTrack]
	// subsMu serialises writers of subs (add/remove), never the reader.
	subsMu sync.Mutex

	// onFirstForward is called once, on the reader, after the first
	// packet reached a subscriber; forwarded records that it was.
	onFirstForward func(*Track)
	forwarded      bool

	lastPLI    atomic.Int64 // unix nanos of the last PLI sent
	pliPending atomic.Bool  // a deferred PLI is scheduled
	done       chan struct{}
}

// ID is the track's id on this node.
func (t *Track) ID() string { return t.id }

// StreamID is the id of the publishing peer.
func (t *Track) StreamID() string { return t.streamID }

// Source is what the publisher said the track carries.
func (t *Track) Source() string { return t.source }

// Kind is audio or video.
func (t *Track) Kind() webrtc.RTPCodecType { return t.kind }

// Codec is the codec the publisher sends; subscribers receive the same.
func (t *Track) Codec() webrtc.RTPCodecParameters { return t.codec }

// Done is closed when the publisher stops sending the track for good.
func (t *Track) Done() <-chan struct{} { return t.done }

// Subscribers returns how many down-tracks receive this track now.
func (t *Track) Subscribers() int { return len(*t.subs.Load()) }

func newTrack(id, streamID, source string, remote *webrtc.TrackRemote, writeRTCP func([]rtcp.Packet) error, pliGap time.Duration, stats *counters) *Track {
	t := &Track{
		id:       id,
		streamID: streamID,
		source:   source,
		kind:     remote.Kind(),
		codec:    remote.Codec(),
		ssrc:     uint32(remote.SSRC()),
		remote:   remote,
		writeTo:  writeRTCP,
		pliGap:   pliGap,
		stats:    stats,
		done:     make(chan struct{}),
	}
	t.subs.Store(&[]*DownTrack{})
	return t
}

// run is the track's reader: it owns buf and pkt and returns when the
// publisher's stream ends. Every down-track write happens here.
func (t *Track) run() {
	defer close(t.done)
	buf := make([]byte, maxRTPPacket)
	var pkt rtp.Packet
	for {
		n, _, err := t.remote.Read(buf)
		if err != nil {
			return
		}
		t.forward(&pkt, buf[:n])
	}
}

// forward parses one packet into pkt (reusing its slices) and writes it to
// every subscriber. It is the whole per-packet cost the SFU adds on top of
// pion's SRTP and interceptors, and allocates nothing.
func (t *Track) forward(pkt *rtp.Packet, b []byte) {
	if err := pkt.Unmarshal(b); err != nil {
		t.stats.malformed.Add(1)
		return
	}
	t.stats.packetsIn.Add(1)
	t.stats.bytesIn.Add(uint64(len(b)))
	for _, d := range *t.subs.Load() {
		d.writeRTP(pkt, len(b))
	}
}

func (t *Track) addSubscriber(d *DownTrack) {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	old := *t.subs.Load()
	next := make([]*DownTrack, 0, len(old)+1)
	next = append(next, old...)
	next = append(next, d)
	t.subs.Store(&next)
}

func (t *Track) removeSubscriber(d *DownTrack) {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	old := *t.subs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, s := range old {
		if s != d {
			next = append(next, s)
		}
	}
	t.subs.Store(&next)
}

// RequestKeyframe asks the publisher for a keyframe with an RTCP PLI
// (RFC 4585 §6.3.1), at most once per PLI interval. A request inside the
// interval is not lost: one PLI is sent when the interval ends, covering
// every request that came meanwhile.
func (t *Track) RequestKeyframe() {
	if t.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	now := time.Now().UnixNano()
	last := t.lastPLI.Load()
	if wait := time.Duration(last + int64(t.pliGap) - now); wait > 0 {
		t.stats.plisFolded.Add(1)
		if t.pliPending.CompareAndSwap(false, true) {
			time.AfterFunc(wait, func() {
				t.pliPending.Store(false)
				t.RequestKeyframe()
			})
		}
		return
	}
	if !t.lastPLI.CompareAndSwap(last, now) {
		return // a concurrent caller sends this one
	}
	select {
	case <-t.done:
		return
	default:
	}
	if err := t.writeTo([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.ssrc}}); err == nil {
		t.stats.plisSent.Add(1)
	}
}
