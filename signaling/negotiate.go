package signaling

import (
	"errors"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// Negotiation: the client's offers, answers and candidates go to its
// Peer; the Peer's go to the client through the session (sfu.Signaler).
// The server is the impolite peer of perfect negotiation: a client offer
// that crosses the server's is answered glare and ignored; the client
// rolls back and answers (docs/protocol.md, "Flow").

var _ sfu.Signaler = (*session)(nil)

// handleOffer applies a client's offer. A student sends its camera,
// microphone and screen; a proctor only its talk-back microphone, one
// audio section whatever it labels it.
func (s *session) handleOffer(m *Inbound) error {
	sections, err := sendingSections(m.SDP)
	if err != nil {
		return protoErr(CodeSDPInvalid, "offer not parsed: %v", err)
	}
	if n := len(sections); n > s.srv.cfg.Limits.MaxTracks {
		return protoErr(CodeTooManyTracks, "the offer sends %d tracks; the limit is %d", n, s.srv.cfg.Limits.MaxTracks)
	}
	sources := make(map[string]string, len(m.Tracks))
	switch s.p.Role {
	case room.RoleProctor:
		if len(sections) > 1 || len(sections) == 1 && sections[0].kind != "audio" {
			return protoErr(CodeForbidden, "a proctor sends one audio track (talk-back) and nothing else")
		}
		for _, sec := range sections {
			sources[sec.mid] = room.SourceTalkback
		}
	default:
		for _, t := range m.Tracks {
			if t.Source == room.SourceTalkback {
				return protoErr(CodeForbidden, "only a proctor sends talk-back")
			}
			sources[t.Mid] = t.Source
		}
	}
	err = s.peer.HandleOffer(m.SDP, sources)
	if err != nil && !errors.Is(err, sfu.ErrGlare) {
		return protoErr(CodeSDPInvalid, "offer not applied: %v", err)
	}
	return err
}

// handleAnswer applies the client's answer to the server's offer.
func (s *session) handleAnswer(m *Inbound) error {
	if err := s.peer.HandleAnswer(m.SDP); err != nil {
		return protoErr(CodeSDPInvalid, "answer not applied: %v", err)
	}
	return nil
}

// handleCandidate adds one trickled candidate, within the session's
// budget. A missing candidate (end of candidates) is accepted.
func (s *session) handleCandidate(m *Inbound) error {
	if m.Candidate == nil {
		return nil
	}
	if s.cands++; s.cands > s.srv.cfg.Limits.MaxCandidates {
		return protoErr(CodeTooManyCandidates, "more than %d candidates in one session", s.srv.cfg.Limits.MaxCandidates)
	}
	err := s.peer.AddCandidate(*m.Candidate)
	if err != nil && !errors.Is(err, sfu.ErrTooManyCandidates) {
		return protoErr(CodeCandidateInvalid, "candidate not added: %v", err)
	}
	return err
}

// SendOffer implements sfu.Signaler.
func (s *session) SendOffer(sdp string) {
	s.send(SDPMessage{Envelope: envelope(TypeOffer, ""), SDP: sdp})
}

// SendAnswer implements sfu.Signaler.
func (s *session) SendAnswer(sdp string) {
	s.send(SDPMessage{Envelope: envelope(TypeAnswer, ""), SDP: sdp})
}

// SendCandidate implements sfu.Signaler.
func (s *session) SendCandidate(c sfu.Candidate) {
	s.send(CandidateMessage{Envelope: envelope(TypeCandidate, ""), Candidate: c})
}
