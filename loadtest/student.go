package loadtest

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// student is a synthetic student: it publishes the camera of layers.go
// and Opus-shaped audio. The run's sender goroutine writes its media.
type student struct {
	p      *participant
	layers []videoLayer

	// Made by publish (the session goroutine) before out is stored.
	video   []*webrtc.TrackLocalStaticRTP // one per layer
	audio   *webrtc.TrackLocalStaticRTP
	vsender *webrtc.RTPSender
	vmid    string
	reoffer bool // session-owned: offer again once the crossing offer is answered

	// out is what the sender writes to, stored once connected.
	out atomic.Pointer[outTracks]
	// layerOn says which layers the server wants (its layers message);
	// every layer is on until it speaks.
	layerOn [maxLayers]atomic.Bool
	// forceKey asks the sender for a keyframe on a layer (PLI/FIR).
	forceKey [maxLayers]atomic.Bool

	plis    atomic.Int64 // PLIs and FIRs received
	nacksIn atomic.Int64 // sequence numbers the node NACKed (upstream loss)
	// firstMedia is when a proctor first received any of its packets
	// (unix nanoseconds; the earliest proctor wins), 0 until then.
	firstMedia atomic.Int64

	tx sendState // owned by the sender goroutine
}

// outTracks is what the sender needs to write a student's media.
type outTracks struct {
	video          []*webrtc.TrackLocalStaticRTP
	audio          *webrtc.TrackLocalStaticRTP
	midExt, ridExt uint8 // negotiated header extension ids, 0 if none
	mid            []byte
	rids           [][]byte
}

func newStudent(p *participant, layers []videoLayer) *student {
	s := &student{p: p, layers: layers}
	for i := range layers {
		s.layerOn[i].Store(true)
	}
	return s
}

// publish adds the camera (its layers as simulcast encodings of one
// sendonly transceiver) and the microphone, starts draining their RTCP,
// and offers.
func (s *student) publish(ctx context.Context) error {
	pc := s.p.pc
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	for _, l := range s.layers {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if l.rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(l.rid))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, "camera", s.p.identity, opts...)
		if err != nil {
			return err
		}
		s.video = append(s.video, tr)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "microphone", s.p.identity)
	if err != nil {
		return err
	}
	s.audio = audio
	sendonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}
	vt, err := pc.AddTransceiverFromTrack(s.video[0], sendonly)
	if err != nil {
		return fmt.Errorf("add camera: %w", err)
	}
	s.vsender = vt.Sender()
	for _, tr := range s.video[1:] {
		if err := s.vsender.AddEncoding(tr); err != nil {
			return fmt.Errorf("add layer %s: %w", tr.RID(), err)
		}
	}
	at, err := pc.AddTransceiverFromTrack(audio, sendonly)
	if err != nil {
		return fmt.Errorf("add microphone: %w", err)
	}
	for i, l := range s.layers {
		s.drainRTCP(s.vsender, l.rid, i)
	}
	s.drainRTCP(at.Sender(), "", -1)
	return s.offer(ctx)
}

// offer sends an offer naming the camera and microphone m-lines.
func (s *student) offer(ctx context.Context) error {
	pc := s.p.pc
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	var tracks []trackSource
	for _, t := range pc.GetTransceivers() {
		switch t.Sender() {
		case nil:
		case s.vsender:
			s.vmid = t.Mid()
			tracks = append(tracks, trackSource{Mid: t.Mid(), Source: "camera"})
		default:
			tracks = append(tracks, trackSource{Mid: t.Mid(), Source: "microphone"})
		}
	}
	return s.p.sig.send(ctx, outMsg{Type: typeOffer, SDP: offer.SDP, Tracks: tracks})
}

// drainRTCP reads one encoding's RTCP (layer ≥ 0) or the microphone's
// (layer -1) until the PeerConnection closes: reading is what lets
// pion's interceptors (NACK responder, reports) see it. PLI and FIR ask
// the sender for a keyframe on that layer (RFC 4585 §6.3.1, RFC 5104
// §4.3.1); NACKs are counted.
func (s *student) drainRTCP(sender *webrtc.RTPSender, rid string, layer int) {
	if !s.p.addReader() {
		return
	}
	go func() {
		defer s.p.wg.Done()
		buf := make([]byte, 1500)
		for {
			var n int
			var err error
			if rid == "" {
				n, _, err = sender.Read(buf)
			} else {
				n, _, err = sender.ReadSimulcast(buf, rid)
			}
			if err != nil {
				return
			}
			pkts, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			for _, pkt := range pkts {
				switch pkt := pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					s.plis.Add(1)
					if layer >= 0 {
						s.forceKey[layer].Store(true)
					}
				case *rtcp.TransportLayerNack:
					for _, pair := range pkt.Nacks {
						s.nacksIn.Add(int64(1 + bits.OnesCount16(uint16(pair.LostPackets))))
					}
				}
			}
		}
	}()
}

// start hands the student to the sender once its PeerConnection is
// connected, with the negotiated ids of the mid and rid header
// extensions: pion does not tag simulcast packets itself, and the node
// tells a publisher's layers apart by them (RFC 8852).
func (s *student) start() {
	out := &outTracks{video: s.video, audio: s.audio}
	if s.layers[0].rid != "" {
		for _, e := range s.vsender.GetParameters().HeaderExtensions {
			switch e.URI {
			case sdp.SDESMidURI:
				out.midExt = uint8(e.ID)
			case sdp.SDESRTPStreamIDURI:
				out.ridExt = uint8(e.ID)
			}
		}
		for _, t := range s.p.pc.GetTransceivers() {
			if t.Sender() == s.vsender {
				out.mid = []byte(t.Mid())
			}
		}
		for _, l := range s.layers {
			out.rids = append(out.rids, []byte(l.rid))
		}
	}
	s.out.Store(out)
	s.p.r.addSender(s)
}

// setLayers applies a layers message: the layers it lists stay on, the
// others pause until listed again (as the SDK does with setParameters).
func (s *student) setLayers(mid string, active []string) {
	if mid != s.vmid || s.layers[0].rid == "" {
		return
	}
	for i, l := range s.layers {
		s.layerOn[i].Store(slices.Contains(active, l.rid))
	}
}

// noteFirstMedia records a proctor's first packet of this student.
func (s *student) noteFirstMedia(at time.Time) {
	ns := at.UnixNano()
	for {
		old := s.firstMedia.Load()
		if old != 0 && old <= ns {
			return
		}
		if s.firstMedia.CompareAndSwap(old, ns) {
			return
		}
	}
}
