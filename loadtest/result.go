package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one run measured. Server fields are present only when
// the run was given the node's pid. "Steady" fields cover the window
// from a few seconds after the last join to the stop of media, without
// the join storm's handshakes; the others cover the whole run.
type Result struct {
	Client          string   `json:"client"` // lean or pion
	Rooms           int      `json:"rooms"`
	StudentsPerRoom int      `json:"students_per_room"`
	ProctorsPerRoom int      `json:"proctors_per_room"`
	Layers          []string `json:"layers"` // the camera's RIDs, "" for one layer
	DurationSeconds float64  `json:"duration_seconds"`
	RampSeconds     float64  `json:"ramp_seconds"`

	StudentsAttempted int `json:"students_attempted"`
	StudentsConnected int `json:"students_connected"`
	ProctorsAttempted int `json:"proctors_attempted"`
	ProctorsConnected int `json:"proctors_connected"`
	// Failures counts, by reason, participants that did not connect or
	// failed later (dial, join_<code>, ice_failed, …).
	Failures map[string]int `json:"failures,omitempty"`
	// ServerErrors counts the error codes the server sent.
	ServerErrors map[string]int `json:"server_errors,omitempty"`

	// Join time: a student's join message sent → its first packet at a
	// proctor (the earliest of its room's proctors).
	JoinSamples int     `json:"join_samples"`
	JoinP50MS   float64 `json:"join_p50_ms"`
	JoinP95MS   float64 `json:"join_p95_ms"`
	JoinP99MS   float64 `json:"join_p99_ms"`
	JoinMaxMS   float64 `json:"join_max_ms"`
	// MediaPairs counts (proctor, connected student of its room) pairs
	// where the proctor received both the student's video and audio.
	MediaPairs         int `json:"media_pairs"`
	MediaPairsExpected int `json:"media_pairs_expected"`

	SentPackets      int64   `json:"sent_packets"`      // RTP packets the students sent
	ForwardedPackets int64   `json:"forwarded_packets"` // RTP packets the proctors received
	ForwardedBytes   int64   `json:"forwarded_bytes"`
	DeliveredKbps    float64 `json:"delivered_kbps"` // at all proctors together, steady window if any
	// Loss at proctors after retransmission: sequence numbers never
	// received over those expected, video and audio together.
	LossRatio      float64 `json:"loss_ratio"`
	VideoLossRatio float64 `json:"video_loss_ratio"`
	AudioLossRatio float64 `json:"audio_loss_ratio"`
	LostPackets    int64   `json:"lost_packets"`
	NACKs          int64   `json:"nacks"`          // sequence numbers proctors NACKed
	NACKRecovered  int64   `json:"nack_recovered"` // gaps filled by a late packet
	UpstreamNACKs  int64   `json:"upstream_nacks"` // sequence numbers the node NACKed from students
	PLIs           int64   `json:"plis"`           // PLIs and FIRs students received
	DelayP50MS     float64 `json:"delay_p50_ms"`   // one-way, student → proctor
	DelayP99MS     float64 `json:"delay_p99_ms"`
	// The same over the packets received in the steady window only (after
	// the join storm's handshakes): 0 without a steady window.
	SteadyDelayP50MS float64 `json:"steady_delay_p50_ms,omitempty"`
	SteadyDelayP99MS float64 `json:"steady_delay_p99_ms,omitempty"`

	FocusSwitches int     `json:"focus_switches"`
	FocusMissed   int     `json:"focus_missed"` // replaced before the high layer arrived
	FocusP50MS    float64 `json:"focus_p50_ms"`
	FocusP99MS    float64 `json:"focus_p99_ms"`

	// The load generator's own cost, and whether it kept its schedule.
	LoadgenCPUSeconds float64 `json:"loadgen_cpu_seconds"`
	SendLateMaxMS     float64 `json:"send_late_max_ms"`
	SendLateP99MS     float64 `json:"send_late_p99_ms"` // a frame's send time − its schedule
	// LoadgenMicrosPerPacket is the load generator's CPU over the RTP
	// packets it sent and received (sent + forwarded), beside the
	// node's CPUMicrosPerPacket over the same packets.
	LoadgenMicrosPerPacket float64 `json:"loadgen_cpu_us_per_packet"`
	SkippedFrames          int64   `json:"skipped_frames"`
	SendErrors             int64   `json:"send_errors"`

	ServerCPUSeconds    float64 `json:"server_cpu_seconds,omitempty"`
	ServerRSSBytes      int64   `json:"server_rss_bytes,omitempty"` // at the end, everyone connected
	ServerRSSStartBytes int64   `json:"server_rss_start_bytes,omitempty"`
	RSSPerStudentBytes  int64   `json:"rss_per_student_bytes,omitempty"` // growth over connected students
	CPUMicrosPerPacket  float64 `json:"cpu_us_per_packet,omitempty"`     // server CPU / (sent + forwarded)

	SteadySeconds           float64 `json:"steady_seconds,omitempty"`
	SteadySentPackets       int64   `json:"steady_sent_packets,omitempty"`
	SteadyForwardedPackets  int64   `json:"steady_forwarded_packets,omitempty"`
	SteadyLoadgenCPUSeconds float64 `json:"steady_loadgen_cpu_seconds,omitempty"`
	SteadyServerCPUSeconds  float64 `json:"steady_server_cpu_seconds,omitempty"`
	SteadyCPUMicrosPerPkt   float64 `json:"steady_cpu_us_per_packet,omitempty"`
	SteadyLoadgenMicrosPkt  float64 `json:"steady_loadgen_cpu_us_per_packet,omitempty"`
}

// result computes the Result once every goroutine of the run has ended.
func (r *run) result(students, proctors []*participant, sf sendFigures, start mark, steady *mark, end mark) *Result {
	c := r.cfg
	res := &Result{
		Client: c.Client, Rooms: c.Rooms, StudentsPerRoom: c.StudentsPerRoom, ProctorsPerRoom: c.ProctorsPerRoom,
		DurationSeconds: round(end.at.Sub(start.at).Seconds(), 3), RampSeconds: c.Ramp.Seconds(),
		Failures: map[string]int{}, ServerErrors: maps.Clone(r.serverErrors),
		SentPackets: end.sent, ForwardedPackets: end.forwarded, ForwardedBytes: end.fwdBytes,
		NACKs: r.nacks.Load(), LoadgenCPUSeconds: round((end.self - start.self).Seconds(), 3),
		SendLateMaxMS: ms(sf.lateMax), SendLateP99MS: ms(sf.lateP99), SkippedFrames: sf.skipped, SendErrors: sf.writeErrors,
		LoadgenMicrosPerPacket: perPacket(end.self-start.self, end.sent+end.forwarded),
	}
	for _, l := range r.layers {
		res.Layers = append(res.Layers, l.rid)
	}
	connectedIn := make([][]*student, c.Rooms) // connected students by room
	var joins []time.Duration
	for _, p := range students {
		if !p.launched {
			continue // the run was cut short before its turn
		}
		res.StudentsAttempted++
		tally(p, &res.StudentsConnected, res.Failures)
		s := p.student
		if p.connected.Load() {
			connectedIn[p.roomIdx] = append(connectedIn[p.roomIdx], s)
		}
		if first := s.firstMedia.Load(); first != 0 {
			joins = append(joins, time.Unix(0, first).Sub(p.joinSent))
		}
		res.PLIs += s.plis.Load()
		res.UpstreamNACKs += s.nacksIn.Load()
	}
	res.JoinSamples = len(joins)
	res.JoinP50MS, res.JoinP95MS = ms(percentile(joins, 0.50)), ms(percentile(joins, 0.95))
	res.JoinP99MS, res.JoinMaxMS = ms(percentile(joins, 0.99)), ms(percentile(joins, 1))

	var delays, steadyDelays delayHist
	var focus []time.Duration
	var lost, expected, vLost, vExpected, aLost, aExpected int64
	for _, p := range proctors {
		if !p.launched {
			continue
		}
		res.ProctorsAttempted++
		tally(p, &res.ProctorsConnected, res.Failures)
		pr := p.proctor
		got := map[string][2]bool{} // sid → video, audio received
		for _, rs := range pr.streams {
			delays.merge(&rs.delay)
			steadyDelays.merge(&rs.steady)
			l, e := rs.seq.lost(), rs.seq.expected()
			lost, expected = lost+l, expected+e
			res.NACKRecovered += rs.seq.late
			g := got[rs.sid]
			if rs.video {
				vLost, vExpected = vLost+l, vExpected+e
				g[0] = g[0] || rs.packets > 0
			} else {
				aLost, aExpected = aLost+l, aExpected+e
				g[1] = g[1] || rs.packets > 0
			}
			got[rs.sid] = g
		}
		for _, s := range connectedIn[p.roomIdx] {
			res.MediaPairsExpected++
			if g := got[s.p.sid]; g[0] && g[1] {
				res.MediaPairs++
			}
		}
		focus = append(focus, pr.focusTimes...)
		res.FocusMissed += pr.focusMissed
	}
	res.LostPackets = lost
	res.LossRatio, res.VideoLossRatio, res.AudioLossRatio = ratio(lost, expected), ratio(vLost, vExpected), ratio(aLost, aExpected)
	res.DelayP50MS, res.DelayP99MS = ms(delays.quantile(0.50)), ms(delays.quantile(0.99))
	if steadyDelays.n > 0 {
		res.SteadyDelayP50MS, res.SteadyDelayP99MS = ms(steadyDelays.quantile(0.50)), ms(steadyDelays.quantile(0.99))
	}
	res.FocusSwitches = len(focus)
	res.FocusP50MS, res.FocusP99MS = ms(percentile(focus, 0.50)), ms(percentile(focus, 0.99))

	from := start
	if steady != nil {
		from = *steady
	}
	if secs := end.at.Sub(from.at).Seconds(); secs > 0 {
		res.DeliveredKbps = round(float64(end.fwdBytes-from.fwdBytes)*8/1000/secs, 1)
	}
	if start.serverOK && end.serverOK {
		cpu := end.server.cpu - start.server.cpu
		res.ServerCPUSeconds = round(cpu.Seconds(), 3)
		res.ServerRSSBytes, res.ServerRSSStartBytes = end.server.rss, start.server.rss
		if res.StudentsConnected > 0 {
			res.RSSPerStudentBytes = (end.server.rss - start.server.rss) / int64(res.StudentsConnected)
		}
		res.CPUMicrosPerPacket = perPacket(cpu, end.sent+end.forwarded)
	}
	if steady != nil {
		res.SteadySeconds = round(end.at.Sub(steady.at).Seconds(), 3)
		res.SteadySentPackets, res.SteadyForwardedPackets = end.sent-steady.sent, end.forwarded-steady.forwarded
		res.SteadyLoadgenCPUSeconds = round((end.self - steady.self).Seconds(), 3)
		res.SteadyLoadgenMicrosPkt = perPacket(end.self-steady.self, res.SteadySentPackets+res.SteadyForwardedPackets)
		if steady.serverOK && end.serverOK {
			cpu := end.server.cpu - steady.server.cpu
			res.SteadyServerCPUSeconds = round(cpu.Seconds(), 3)
			res.SteadyCPUMicrosPerPkt = perPacket(cpu, res.SteadySentPackets+res.SteadyForwardedPackets)
		}
	}
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	if len(res.ServerErrors) == 0 {
		res.ServerErrors = nil
	}
	return res
}

// tally counts a connected participant, or its failure's reason.
func tally(p *participant, connected *int, failures map[string]int) {
	if p.connected.Load() {
		*connected++
	}
	switch f := p.failure.Load(); {
	case f != nil:
		failures[*f]++
	case !p.connected.Load():
		failures["not_connected"]++
	}
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return round(float64(a)/float64(b), 6)
}

func perPacket(cpu time.Duration, packets int64) float64 {
	if packets == 0 {
		return 0
	}
	return round(float64(cpu.Microseconds())/float64(packets), 2)
}

func round(x float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// WriteText prints the Result as a table for people.
func (res *Result) WriteText(w io.Writer) error {
	layers := "one layer"
	if len(res.Layers) > 0 && res.Layers[0] != "" {
		layers = "simulcast " + strings.Join(res.Layers, "+")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("run", "%s client, %d rooms × (%d students + %d proctors), %s, %.1f s (ramp %.1f s)",
		res.Client, res.Rooms, res.StudentsPerRoom, res.ProctorsPerRoom, layers, res.DurationSeconds, res.RampSeconds)
	row("connected", "students %d/%d, proctors %d/%d", res.StudentsConnected, res.StudentsAttempted, res.ProctorsConnected, res.ProctorsAttempted)
	if len(res.Failures) > 0 {
		row("failures", "%s", formatCounts(res.Failures))
		if res.Failures["dial_http_429"] > 0 {
			row("", "the node refused connections from this address (HTTP 429): all synthetic peers share one;")
			row("", "raise --max-connections-per-ip and --connection-rate-per-ip/--connection-burst-per-ip on the node")
		}
	}
	if len(res.ServerErrors) > 0 {
		row("server errors", "%s", formatCounts(res.ServerErrors))
	}
	row("media at proctors", "%d/%d proctor-student pairs with video and audio", res.MediaPairs, res.MediaPairsExpected)
	row("join → first media", "p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms (%d students)",
		res.JoinP50MS, res.JoinP95MS, res.JoinP99MS, res.JoinMaxMS, res.JoinSamples)
	row("packets", "sent %d, forwarded %d, delivered %.0f kb/s", res.SentPackets, res.ForwardedPackets, res.DeliveredKbps)
	row("loss after NACK", "%.4f%% (video %.4f%%, audio %.4f%%); NACKed %d, recovered %d; upstream NACKed %d; PLIs %d",
		100*res.LossRatio, 100*res.VideoLossRatio, 100*res.AudioLossRatio, res.NACKs, res.NACKRecovered, res.UpstreamNACKs, res.PLIs)
	row("one-way delay", "p50 %.2f ms, p99 %.2f ms", res.DelayP50MS, res.DelayP99MS)
	if res.FocusSwitches+res.FocusMissed > 0 {
		row("focus switch", "p50 %.0f ms, p99 %.0f ms (%d switches, %d missed)", res.FocusP50MS, res.FocusP99MS, res.FocusSwitches, res.FocusMissed)
	}
	row("load generator", "%.2f CPU s, %.2f µs/packet; sends p99 %.2f ms late, at most %.1f ms; %d frames skipped, %d write errors",
		res.LoadgenCPUSeconds, res.LoadgenMicrosPerPacket, res.SendLateP99MS, res.SendLateMaxMS, res.SkippedFrames, res.SendErrors)
	if res.ServerRSSBytes > 0 {
		row("server", "%.2f CPU s, %.2f µs/packet; RSS %.1f MiB (%.1f MiB at start, %.0f KiB per student)",
			res.ServerCPUSeconds, res.CPUMicrosPerPacket, float64(res.ServerRSSBytes)/(1<<20),
			float64(res.ServerRSSStartBytes)/(1<<20), float64(res.RSSPerStudentBytes)/(1<<10))
	}
	if res.SteadySeconds > 0 {
		row("steady window", "%.1f s: %d sent + %d forwarded; one-way delay p50 %.2f ms, p99 %.2f ms; load generator %.2f CPU s, %.2f µs/packet; server %.2f CPU s, %.2f µs/packet",
			res.SteadySeconds, res.SteadySentPackets, res.SteadyForwardedPackets, res.SteadyDelayP50MS, res.SteadyDelayP99MS,
			res.SteadyLoadgenCPUSeconds, res.SteadyLoadgenMicrosPkt, res.SteadyServerCPUSeconds, res.SteadyCPUMicrosPerPkt)
	}
	return tw.Flush()
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
