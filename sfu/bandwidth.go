package sfu

import (
	"time"
)

const (
	// bandwidthTick is how often a subscriber's downlink budget is
	// checked against what it is sent: fast enough to drop the focused
	// student to the low layer within a couple of seconds of congestion,
	// slow enough that one REMB dip is not a switch.
	bandwidthTick = time.Second
	// headroom is the share of the estimate the sent video may use before
	// a layer is dropped; the rest absorbs audio, RTCP and retransmissions.
	headroom = 0.9
	// upgradeMargin is how much more than the full-quality rate the
	// estimate must show, for upgradeTicks in a row, before a dropped
	// layer comes back: hysteresis, so a link at the edge does not flap.
	upgradeMargin = 1.25
	upgradeTicks  = 3
	// downgradeTicks is how many ticks in a row the estimate must be
	// short before a layer is capped: one low REMB is noise.
	downgradeTicks = 2
	// warmup is how long after the PeerConnection is made its estimates
	// are not acted on: a browser's REMB starts near 300 kb/s and ramps up
	// over the first seconds, which would otherwise drop every focused
	// student at once.
	warmup = 5 * time.Second
)

// bandwidthLoop looks after a subscriber's video once per tick. It keeps
// it within the downlink estimate (REMB): when the layers it wants need
// more than the estimate, the most expensive down-track above the low
// layer is capped to it, one per tick; when the estimate has room again
// for a while, caps are lifted one per tick. Audio is never touched. It
// also re-requests a keyframe for any down-track still waiting for one
// (a lost PLI must not leave a tile black).
func (p *Peer) bandwidthLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(bandwidthTick)
	defer tick.Stop()
	prev := map[*layer]uint64{} // layer → bytes at the previous tick
	calm, short := 0, 0
	start := time.Now()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		est := float64(p.remb.Load())
		p.mu.Lock()
		downs := make([]*DownTrack, 0, len(p.subs))
		for _, s := range p.subs {
			if s.down.src.kind == KindVideo {
				downs = append(downs, s.down)
			}
		}
		p.mu.Unlock()

		rate := func(t *Track, q int) float64 {
			i := t.nearest(q)
			if i == QualityOff {
				return 0
			}
			l := t.layers[i].Load()
			b := l.bytes.Load()
			r := float64(b-prev[l]) * 8 / bandwidthTick.Seconds()
			return r
		}
		var sending, full float64
		var costliest *DownTrack
		var costliestRate float64
		for _, d := range downs {
			target := int(d.target.Load())
			if target == QualityOff {
				continue
			}
			// What is sent is the layer forwarded now, not the one a
			// switch waits for: that layer's publisher may be sending it
			// already (every layer on, ConcealFocus), and counting it
			// before the subscriber receives it would cap a switch the
			// estimate never got to see.
			full += rate(d.src, target)
			cur := d.Layer()
			if cur == QualityOff {
				continue
			}
			sending += rate(d.src, cur)
			if cur > d.src.nearest(QualityLow) {
				if r := rate(d.src, cur); r > costliestRate {
					costliest, costliestRate = d, r
				}
			}
		}
		for _, d := range downs {
			if w := d.want(); w != QualityOff && d.binding.Load() != nil && d.Layer() != d.src.nearest(w) {
				d.src.RequestKeyframe(w)
			}
			for i := range d.src.layers {
				if l := d.src.layers[i].Load(); l != nil {
					prev[l] = l.bytes.Load()
				}
			}
		}
		if est <= 0 || time.Since(start) < warmup {
			continue
		}
		switch {
		case sending > est*headroom && costliest != nil:
			calm = 0
			if short++; short < downgradeTicks {
				break
			}
			short = 0
			costliest.setLimit(QualityLow)
			p.log.Info("downlink congested: capping a layer", "estimate_bps", int(est), "sending_bps", int(sending), "track", costliest.src.id)
		case est > full*upgradeMargin:
			short = 0
			if calm++; calm >= upgradeTicks {
				for _, d := range downs {
					if int(d.limit.Load()) < QualityHigh {
						d.setLimit(QualityHigh)
						p.log.Info("downlink recovered: lifting a layer cap", "estimate_bps", int(est), "track", d.src.id)
						break
					}
				}
				calm = 0
			}
		default:
			calm, short = 0, 0
		}
	}
}
