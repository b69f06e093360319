package testclient

import (
	"strconv"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// What a test client sends: a student's camera and microphone (VP8 or
// H.264, simulcast when asked) and a proctor's talk-back microphone.

// publish adds a VP8 camera (two simulcast layers, q and h, when the
// client was joined with Simulcast) and an Opus microphone, offers, and
// sends VP8-shaped RTP at 30 frames a second until closed. Each layer's
// payload carries its RID at byte layerTagAt so receivers can tell which
// layer reached them. A PLI makes the next frame a keyframe; a layers
// message pauses the layers it leaves out, as the SDK does.
func (c *Client) publish() {
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if c.opts.H264 {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	}
	rids := []string{""}
	if c.opts.Simulcast {
		rids = []string{"q", "h"}
	}
	var video []*webrtc.TrackLocalStaticRTP
	for _, rid := range rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, "camera", "student", opts...)
		if err != nil {
			c.t.Fatal(err)
		}
		video = append(video, tr)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "student")
	if err != nil {
		c.t.Fatal(err)
	}
	vsender, err := c.pc.AddTrack(video[0])
	if err != nil {
		c.t.Fatal(err)
	}
	for _, tr := range video[1:] {
		if err := vsender.AddEncoding(tr); err != nil {
			c.t.Fatal(err)
		}
	}
	asender, err := c.pc.AddTrack(audio)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, sender := range []*webrtc.RTPSender{vsender, asender} {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						c.PLIs.Add(1)
						c.forceKey.Store(true)
					}
				}
			}
		}()
	}
	c.offer(nil)
	payload := make([]byte, 1000)
	seqs := make([]uint16, len(rids))
	wasPaused := make([]bool, len(rids))
	c.every(33*time.Millisecond, func(i uint32) {
		key := i%60 == 0 || c.forceKey.Swap(false)
		// pion does not tag simulcast packets itself: a layered
		// publisher must carry mid and rid header extensions (RFC 8852).
		midID, ridID := simulcastExtensionIDs(vsender)
		starve := c.Starve.Load()
		for j, tr := range video {
			if c.StopVideo.Load() || starve && (j > 0 || i%10 != 0) {
				break
			}
			if rids[j] != "" && (midID == 0 || ridID == 0) {
				// Not negotiated yet. An untagged layer would be lost
				// for good: pion probes an unknown SSRC's first packets
				// for a rid and ignores the SSRC when none has one.
				continue
			}
			if c.paused(rids[j]) {
				wasPaused[j] = true
				continue
			}
			// A browser restarts a re-enabled encoding with a keyframe.
			layerKey := key || wasPaused[j]
			wasPaused[j] = false
			size := 300 + 600*j // the higher layer is larger
			if starve {
				size = 40
			}
			if c.opts.H264 {
				writeH264(payload[:size], layerKey)
			} else {
				writeVP8(payload[:size], uint16(i+uint32(j)*1000), layerKey, rids[j])
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: seqs[j], Timestamp: i * 3000}, Payload: payload[:size]}
			if rids[j] != "" && midID != 0 && ridID != 0 {
				_ = pkt.Header.SetExtension(midID, []byte(vmid(c.pc, vsender)))
				_ = pkt.Header.SetExtension(ridID, []byte(rids[j]))
			}
			_ = tr.WriteRTP(pkt)
			seqs[j]++
		}
		_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: i * 960}, Payload: payload[:80]})
	})
}

// PublishTalkback makes a proctor send its microphone, as the proctor
// page does for talk-back: one Opus track labelled talkback, offered by
// the client, then 50 packets a second until closed. Call it when the
// proctor's negotiation is quiet (this client is not a full perfect-
// negotiation peer).
func (c *Client) PublishTalkback() {
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "talkback", "proctor")
	if err != nil {
		c.t.Fatal(err)
	}
	tr, err := c.pc.AddTransceiverFromTrack(mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		c.t.Fatal(err)
	}
	c.negMu.Lock()
	c.nameMidLocked(tr)
	c.negMu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			if _, _, err := tr.Sender().ReadRTCP(); err != nil {
				return
			}
		}
	}()
	c.offer(map[string]any{"id": "talkback", "tracks": []map[string]string{{"mid": tr.Mid(), "source": "talkback"}}})
	payload := make([]byte, 60)
	c.every(20*time.Millisecond, func(i uint32) {
		if mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: i * 960}, Payload: payload}) == nil {
			c.TalkbackSent.Add(1)
		}
	})
}

// offer sends an offer of the client's PeerConnection as it is now, with
// extra fields (id, tracks) in the message.
func (c *Client) offer(extra map[string]any) {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	c.offerLocked(extra)
}

// offerLocked is offer with negMu held. A first offer is applied at
// once (ICE gathers from it). A renegotiation offer is only sent, and
// applied when its answer comes (applyAnswer): if a server offer comes
// first, the two crossed and this one is dropped (see answer), with no
// rollback needed. Transceivers added after the first negotiation get
// mids of the client's own ("c1", …): pion numbers new mids after the
// highest it has seen, as the server's pion does, so a transceiver of a
// crossed offer would otherwise take the mid of the m-line the server's
// offer adds.
func (c *Client) offerLocked(extra map[string]any) {
	renegotiation := c.pc.RemoteDescription() != nil
	if renegotiation {
		for _, tr := range c.pc.GetTransceivers() {
			c.nameMidLocked(tr)
		}
	}
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		c.fail("create offer", err)
		return
	}
	if renegotiation {
		c.sent, c.sentExtra = &o, extra
	} else if err := c.pc.SetLocalDescription(o); err != nil {
		c.fail("set offer", err)
		return
	}
	msg := map[string]any{"v": 1, "type": "offer", "sdp": o.SDP}
	for k, v := range extra {
		msg[k] = v
	}
	c.Send(msg)
}

// nameMidLocked gives tr a mid of the client's own if it has none yet.
func (c *Client) nameMidLocked(tr *webrtc.RTPTransceiver) {
	if tr.Mid() != "" {
		return
	}
	c.mids++
	if err := tr.SetMid("c" + strconv.Itoa(c.mids)); err != nil {
		c.fail("name a mid", err)
	}
}

// every calls send with 0, 1, 2, … once an interval, on a goroutine the
// Client waits for, until the Client closes.
func (c *Client) every(interval time.Duration, send func(i uint32)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := uint32(0); ; i++ {
			select {
			case <-c.sendStop:
				return
			case <-tick.C:
			}
			send(i)
		}
	}()
}

// simulcastExtensionIDs returns the negotiated ids of the mid and
// rtp-stream-id header extensions, 0 before negotiation.
func simulcastExtensionIDs(sender *webrtc.RTPSender) (mid, rid uint8) {
	for _, e := range sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			mid = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			rid = uint8(e.ID)
		}
	}
	return mid, rid
}

// vmid is the mid of sender's transceiver.
func vmid(pc *webrtc.PeerConnection, sender *webrtc.RTPSender) string {
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == sender {
			return tr.Mid()
		}
	}
	return ""
}

// layerTagAt is where a test payload carries its layer's RID.
const layerTagAt = 6

// writeVP8 fills p with a VP8 payload descriptor (RFC 7741 §4.2: X, S,
// partition 0, a 15-bit picture ID), a frame header byte whose P bit says
// whether this is a keyframe, and the layer tag.
func writeVP8(p []byte, picID uint16, key bool, rid string) {
	p[0], p[1] = 0x90, 0x80
	p[2], p[3] = 0x80|byte(picID>>8)&0x7F, byte(picID)
	p[4] = 0x01
	if key {
		p[4] = 0x00
	}
	p[layerTagAt] = '-'
	if rid != "" {
		p[layerTagAt] = rid[0]
	}
}

// writeH264 fills p with one H.264 NAL unit (RFC 6184 §5.6): an IDR
// slice for a keyframe, else a non-IDR slice.
func writeH264(p []byte, key bool) {
	p[0] = 0x41 // nal_ref_idc 2, type 1: non-IDR slice
	if key {
		p[0] = 0x65 // nal_ref_idc 3, type 5: IDR slice
	}
}

// paused reports whether the server's last layers message left rid out.
func (c *Client) paused(rid string) bool {
	if rid == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active != nil && !c.active[rid]
}
