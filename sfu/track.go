package sfu

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// maxLayers is the most simulcast encodings a track may have.
const maxLayers = 3

// Quality indexes a simulcast layer: 0 is the lowest resolution.
// QualityOff asks for no video at all.
const (
	QualityLow  = 0
	QualityMid  = 1
	QualityHigh = 2
	QualityOff  = -1
)

// layerIndex maps a simulcast RID to a quality. The SDK publishes q
// (quarter), h (half) and f (full), as Chrome's own tests do; l/m/h
// naming is accepted too. A non-simulcast track is one layer, 0.
func layerIndex(rid string) int {
	switch strings.ToLower(rid) {
	case "", "q", "l", "lo", "low":
		return QualityLow
	case "h", "m", "mid", "medium":
		return QualityMid
	}
	return QualityHigh
}

// Track is one published media track: audio, plain video, or a video
// with up to three simulcast layers. Each layer's packets arrive on the
// goroutine reading its publisher's path, which fans them out to the
// track's down-tracks.
type Track struct {
	id       string // unique on this node, the subscribers' MediaStreamTrack id
	streamID string // the publisher's id, the subscribers' MediaStream id
	source   string // camera, microphone or screen: the caller's label
	mid      string // the publisher's section for it
	kind     Kind
	codec    Codec
	codecs   []sdpCodec // the section's payload types (RTX's apt)
	mime     string     // codec MIME type, lower case
	pub      *Peer      // the publisher
	// sendPLI asks the publisher for a keyframe on one layer's SSRC.
	sendPLI func(ssrc uint32) bool

	layers [maxLayers]atomic.Pointer[layer]
	pliGap time.Duration
	// conceal: the publisher is never told who watches (conceal.go).
	conceal bool
	stats   *counters

	// subs is the fan-out list: immutable, swapped whole on add/remove so
	// the packet path never locks to find subscribers.
	subs atomic.Pointer[[]*DownTrack]
	// subsMu serialises writers of subs (add/remove).
	subsMu sync.Mutex
	// demandMu guards told and serialises onDemand calls, so the
	// publisher hears changes in order.
	demandMu sync.Mutex
	told     string   // the active RIDs last told, comma-joined
	declared []string // RIDs the publisher's offer lists, before any arrives

	onFirstForward func(*Track)
	onDemand       func(t *Track, active []string)
	forwarded      atomic.Bool

	lastPacket atomic.Int64 // unix nanos of the last packet of any layer
	done       chan struct{}
	endOnce    sync.Once
}

// layer is one encoding of a Track. The goroutine reading the publisher
// (under its rxMu) owns the scratch fields.
type layer struct {
	index int
	rid   string
	ssrc  uint32
	cache *packetCache // nil for audio

	// Counted by the publisher's reader alone, so each is a load and a
	// store on a line no other core writes (no locked add); the Engine
	// sums them on scrape.
	bytes      atomic.Uint64 // RTP bytes in
	packetsIn  atomic.Uint64
	packetsOut atomic.Uint64 // packets written to subscribers
	bytesOut   atomic.Uint64

	lastPLI    atomic.Int64 // unix nanos of the last PLI sent
	pliPending atomic.Bool  // a deferred PLI is scheduled

	// Owned by the reader: the outgoing header, its extension array and
	// a payload buffer for the packets a switch made us rewrite.
	out     rtp.Header
	extBuf  [maxOutExtensions]rtp.Extension
	absBuf  [3]byte
	payload [maxCachedPacket]byte
}

// ID is the track's id on this node.
func (t *Track) ID() string { return t.id }

// StreamID is the id of the publishing peer.
func (t *Track) StreamID() string { return t.streamID }

// Source is what the publisher said the track carries.
func (t *Track) Source() string { return t.source }

// Mid is the publisher's media id (SDP a=mid) for the track.
func (t *Track) Mid() string { return t.mid }

// Simulcast reports whether the publisher sends more than one layer, or
// named its one layer (a RID): then it can pause layers on request.
func (t *Track) Simulcast() bool {
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil && l.rid != "" {
			return true
		}
	}
	return false
}

// Kind is audio or video.
func (t *Track) Kind() Kind { return t.kind }

// Codec is the codec the publisher sends; subscribers receive the same.
func (t *Track) Codec() Codec { return t.codec }

// LastPacket is when the track's last packet (of any layer) arrived;
// zero before the first.
func (t *Track) LastPacket() time.Time {
	if n := t.lastPacket.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// BytesReceived is the RTP bytes received so far on every layer of the
// track; a watchdog samples it to see the publisher's bitrate.
func (t *Track) BytesReceived() uint64 {
	var n uint64
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil {
			n += l.bytes.Load()
		}
	}
	return n
}

// Done is closed when the track has ended: unpublished, or its
// publisher's session closed.
func (t *Track) Done() <-chan struct{} { return t.done }

// end marks the track ended; subscribers get nothing more of it.
func (t *Track) end() { t.endOnce.Do(func() { close(t.done) }) }

// ended reports whether end was called.
func (t *Track) ended() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func newTrack(id string, pub *Peer, s *rxSection, codec Codec) *Track {
	t := &Track{
		id:             id,
		streamID:       pub.id,
		source:         s.source,
		mid:            s.mid,
		kind:           s.kind,
		codec:          codec,
		codecs:         s.codecs,
		mime:           strings.ToLower(codec.MimeType),
		pub:            pub,
		pliGap:         pub.e.pliGap,
		conceal:        pub.e.conceal,
		stats:          &pub.e.counter,
		onFirstForward: pub.cfg.OnFirstForward,
		onDemand:       pub.cfg.OnLayerDemand,
		sendPLI:        pub.sendPLI,
		done:           make(chan struct{}),
	}
	if len(s.rids) > 1 || len(s.rids) == 1 && len(s.ssrcs) == 0 {
		t.declared = append([]string(nil), s.rids...)
	}
	t.subs.Store(&[]*DownTrack{})
	return t
}

// addLayer registers the encoding rid on ssrc; fresh is false when it was
// known already (the same SSRC). nil: its slot is taken by another SSRC.
func (t *Track) addLayer(rid string, ssrc uint32) (l *layer, fresh bool) {
	idx := layerIndex(rid)
	if old := t.layers[idx].Load(); old != nil {
		if old.ssrc == ssrc {
			return old, false
		}
		return nil, false
	}
	l = &layer{index: idx, rid: rid, ssrc: ssrc}
	if t.kind == KindVideo {
		budget := cacheBytesHigh
		if l.index == QualityLow {
			budget = cacheBytesLow
		}
		l.cache = newPacketCache(budget)
	}
	if !t.layers[idx].CompareAndSwap(nil, l) {
		return nil, false
	}
	t.updateDemand()
	return l, true
}

// repairedLayer is the layer an RTX stream repairs: by its repaired rid,
// else by the media SSRC its FID group names, else the track's one layer.
func (t *Track) repairedLayer(rid string, fidMain uint32) *layer {
	var only *layer
	n := 0
	for i := range t.layers {
		l := t.layers[i].Load()
		if l == nil {
			continue
		}
		n++
		only = l
		if rid != "" && l.rid == rid || rid == "" && fidMain != 0 && l.ssrc == fidMain {
			return l
		}
	}
	if rid == "" && n == 1 {
		return only
	}
	return nil
}

// forward caches one packet of layer l for retransmission and offers it
// to every subscriber. pkt is the packet parsed, raw the same packet as
// bytes (what the cache keeps). It allocates nothing.
func (t *Track) forward(s *sender, l *layer, pkt *rtp.Packet, raw []byte, at int64) {
	if l.cache != nil {
		l.cache.put(pkt.SequenceNumber, raw)
	}
	info := packetInfo{now: at}
	t.lastPacket.Store(at)
	sent := uint64(0)
	for _, d := range *t.subs.Load() {
		if d.forward(s, l, pkt, raw, &info) && !d.tap {
			sent++
		}
	}
	// Single writer (see layer). The bandwidth loop and the watchdog read
	// bytes; the rest are metrics.
	n := uint64(len(raw))
	l.bytes.Store(l.bytes.Load() + n)
	l.packetsIn.Store(l.packetsIn.Load() + 1)
	l.packetsOut.Store(l.packetsOut.Load() + sent)
	l.bytesOut.Store(l.bytesOut.Load() + sent*n)
}

// count adds the track's forwarding counters, summed over its layers, to s.
func (t *Track) count(s *Stats) {
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil {
			s.PacketsIn += l.packetsIn.Load()
			s.BytesIn += l.bytes.Load()
			s.PacketsOut += l.packetsOut.Load()
			s.BytesOut += l.bytesOut.Load()
		}
	}
}

// packetInfo is what subscribers learn of the packet being forwarded,
// worked out at most once per packet however many subscribers there are.
type packetInfo struct {
	now       int64 // arrival, unix nanos
	key       int8  // keyUnknown, keyNo, keyYes
	vp8Parsed bool
	vp8       vp8Descriptor // valid when vp8Parsed and the codec is VP8
}

// keyframe states of a packet.
const (
	keyUnknown int8 = iota
	keyNo
	keyYes
)

func (t *Track) isKeyframe(payload []byte, info *packetInfo) bool {
	if info.key == keyUnknown {
		info.key = keyNo
		if t.kind == KindVideo && isKeyframeStart(t.mime, payload) {
			info.key = keyYes
		}
	}
	return info.key == keyYes
}

// vp8Fields returns the packet's VP8 descriptor, if the codec is VP8 and
// the descriptor parses.
func (t *Track) vp8Fields(payload []byte, info *packetInfo) (vp8Descriptor, bool) {
	if t.mime != "video/vp8" {
		return vp8Descriptor{}, false
	}
	if !info.vp8Parsed {
		info.vp8, info.vp8Parsed = parseVP8(payload), true
	}
	return info.vp8, !info.vp8.malformed
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

// nearest is the published layer closest to quality q, preferring lower.
func (t *Track) nearest(q int) int {
	best := QualityOff
	for i := range t.layers {
		if t.layers[i].Load() == nil {
			continue
		}
		if best == QualityOff || abs(i-q) < abs(best-q) {
			best = i
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// updateDemand recomputes which layers subscribers need and tells the
// publisher when that changed, so it stops encoding layers nobody
// watches. The lowest layer always stays on: a proctor who arrives or
// scrolls a tile into view gets video at once. onDemand only queues a
// message, so calling it under demandMu keeps the order without blocking.
func (t *Track) updateDemand() {
	if t.kind != KindVideo || t.onDemand == nil || !t.Simulcast() {
		return
	}
	t.demandMu.Lock()
	defer t.demandMu.Unlock()
	lowest := t.nearest(QualityLow)
	if lowest == QualityOff {
		return
	}
	mask := uint8(1) << lowest
	if t.conceal {
		mask = 1<<maxLayers - 1 // every layer, whoever watches
	}
	for _, d := range *t.subs.Load() {
		if q := d.want(); q != QualityOff {
			mask |= 1 << t.nearest(q)
		}
	}
	var active []string
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil && mask&(1<<i) != 0 {
			active = append(active, l.rid)
		}
	}
	// A layer the offer declares is known only once its first packet
	// arrives; pausing it before then would mean it never arrives, and
	// focus could never switch to it. It stays on until it is seen.
	for _, rid := range t.declared {
		if t.layers[layerIndex(rid)].Load() == nil {
			active = append(active, rid)
		}
	}
	if t.conceal {
		// In a fixed order, so that layers arriving do not change it.
		slices.SortFunc(active, func(a, b string) int { return layerIndex(a) - layerIndex(b) })
	}
	if told := strings.Join(active, ","); told != t.told {
		t.told = told
		t.onDemand(t, active)
	}
}

// RequestKeyframe asks for a keyframe on the layer nearest quality q.
func (t *Track) RequestKeyframe(q int) {
	if t.kind != KindVideo {
		return
	}
	if i := t.nearest(q); i != QualityOff {
		t.requestLayerKeyframe(t.layers[i].Load())
	}
}

// requestLayerKeyframe sends an RTCP PLI (RFC 4585 §6.3.1) for one layer,
// at most once per PLI interval. A request inside the interval is not
// lost: one PLI is sent when the interval ends, covering every request
// that came meanwhile.
func (t *Track) requestLayerKeyframe(l *layer) {
	if t.conceal {
		t.stats.plisConcealed.Add(1) // the cadence sends one (conceal.go)
		return
	}
	now := time.Now().UnixNano()
	last := l.lastPLI.Load()
	if wait := time.Duration(last + int64(t.pliGap) - now); wait > 0 {
		t.stats.plisFolded.Add(1)
		if l.pliPending.CompareAndSwap(false, true) {
			time.AfterFunc(wait, func() {
				l.pliPending.Store(false)
				t.requestLayerKeyframe(l)
			})
		}
		return
	}
	if !l.lastPLI.CompareAndSwap(last, now) {
		return // a concurrent caller sends this one
	}
	if t.ended() {
		return
	}
	if t.sendPLI != nil && t.sendPLI(l.ssrc) {
		t.stats.plisSent.Add(1)
	}
}

// Tap feeds w the track as one continuous stream at quality q, the way
// a subscriber gets it: across simulcast layer switches the sequence
// numbers, timestamps and VP8 picture IDs continue, and a layer is
// entered only on its keyframe (one is requested now). The payload type
// is the publisher's. w runs on the packet path, so it must copy what it
// keeps and never block; a write that fails (w's queue is full) makes the
// tap wait for the next keyframe, as a subscriber's full backlog does.
// Taps count in no forwarding figure. stop detaches w; a call already in
// flight may still reach w after stop returns, so w must tolerate being
// closed.
func (t *Track) Tap(w RTPWriter, q int) (stop func()) {
	d := newDownTrack(t, nil, q)
	d.tap = true
	d.out = tapSink{w}
	d.binding.Store(&binding{ssrc: 1, pt: t.codec.PayloadType})
	t.addSubscriber(d)
	t.updateDemand()
	t.RequestKeyframe(q)
	return func() {
		t.removeSubscriber(d)
		d.binding.Store(nil)
		t.updateDemand()
	}
}
