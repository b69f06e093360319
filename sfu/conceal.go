package sfu

import "github.com/invigil/invigil/sfu/internal/rtcpx"

// Concealing attention (Config.ConcealFocus). A student's browser sees
// what the node asks of its uplink; with dynacast and keyframes on
// demand that tells it when a proctor focuses it: its high layer is
// unpaused, a PLI arrives on that layer, and NACKs arrive on a layer
// only a focused proctor receives. With ConcealFocus nothing the
// publisher receives depends on who watches:
//
//   - every simulcast layer stays on (updateDemand asks for all, in a
//     fixed order, so the layers message is the same whoever watches);
//     down-tracks forward the layer they want and the node drops the rest;
//   - no keyframe request of a subscriber, a layer switch, a tap or the
//     bandwidth loop reaches the publisher (requestLayerKeyframe counts
//     it in PLIsConcealed); instead each layer of each published video
//     track gets one PLI every Config.ConcealKeyframes (keyframeCadence),
//     watched or not, so a switch waits for the next one;
//   - NACKs: the node's NACK generator (nackDue) already runs on every
//     layer it receives, watched or not, and subscribers' NACKs are
//     answered from the node's cache, never passed on; with every layer
//     on, the NACKs a publisher gets depend on the path alone.

// keyframeCadence sends a PLI on each layer of the client's video tracks
// whose last one is ConcealKeyframes old. The caller holds rxMu.
func (p *Peer) keyframeCadence(s *sender, now int64) {
	cadence := int64(p.e.cadence)
	for _, t := range p.rx.tracks {
		if t.kind != KindVideo || t.ended() {
			continue
		}
		for i := range t.layers {
			l := t.layers[i].Load()
			if l == nil || now-l.lastPLI.Load() < cadence {
				continue
			}
			l.lastPLI.Store(now)
			b := rtcpx.AppendPLI(p.rx.rtcp.buf[:0], p.rx.ssrc, l.ssrc)
			if p.writeRTCP(s, b) {
				p.e.counter.plisSent.Add(1)
			}
		}
	}
}
