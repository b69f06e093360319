package loadtest

import (
	"math"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
)

// BenchmarkLeanProctorRTP is a lean proctor's work on one received
// packet, the receive loop's per-packet path without the socket: SRTP
// decryption in place, the stream by SSRC among a room's 50 (25
// students' audio and video), and the counts. The packets are encrypted
// beforehand, outside the timer, in rounds over the streams.
func BenchmarkLeanProctorRTP(b *testing.B) {
	const streams, chunk = 50, 50 * 200
	key, salt := make([]byte, 16), make([]byte, 12)
	for i := range key {
		key[i] = byte(i)
	}
	tx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		b.Fatal(err)
	}
	rx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		b.Fatal(err)
	}
	r := &run{epoch: time.Now()}
	p := &participant{r: r}
	p.proctor = newProctor(p, cameraLayers(false))
	lp := &leanPeer{k: &leanKit{r: r}, p: p, keys: &srtpPair{rx: rx, tx: tx}}
	lpr := newLeanProctor(lp)
	lpr.nextRR = math.MaxInt64 // no reports: they need a writer
	sec := nodeSection{kind: "audio", port: 9, pt: ptOpus}
	ssrcs := make([]uint32, streams)
	seqs := make([]uint16, streams)
	for i := range ssrcs {
		ssrcs[i] = randomSSRC()
		sec.ssrcs = append(sec.ssrcs, ssrcLine{ssrc: ssrcs[i], stream: "PA_bench"})
	}
	lpr.noteSections(&nodeDesc{sections: []nodeSection{sec}})
	sealed := make([][]byte, chunk)
	for i := range sealed {
		sealed[i] = make([]byte, 0, 256)
	}
	var plain [256]byte
	wall := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		b.StopTimer()
		n := min(chunk, b.N-done)
		for i := range n {
			s := (done + i) % streams
			putHeader(plain[:], false, ptOpus, seqs[s], uint32(done+i), ssrcs[s], midMic[0], 0, 0)
			writeOpus(plain[rtpHeaderSize:rtpHeaderSize+audioBytes], stamp{seq: uint32(seqs[s]), sent: r.clock()})
			seqs[s]++
			out, err := tx.EncryptRTP(sealed[i][:0], plain[:rtpHeaderSize+audioBytes], nil)
			if err != nil {
				b.Fatal(err)
			}
			sealed[i] = out
		}
		b.StartTimer()
		for i := range n {
			lpr.rtpIn(sealed[i], wall, r.clock(), nil)
		}
	}
	b.StopTimer()
	if got := r.forwarded.Load(); got != int64(b.N) {
		b.Fatalf("counted %d of %d packets (decrypt errors %d, unknown SSRC %d)", got, b.N, lp.k.decryptErrors.Load(), lp.k.unknownSSRC.Load())
	}
}
