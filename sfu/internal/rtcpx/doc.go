// Package rtcpx parses and builds the RTCP packets Invigil's media plane
// reads and sends, without allocating.
//
// pion/rtcp's Unmarshal and Marshal allocate for every packet, and the media
// plane handles thousands of RTCP packets a second. rtcpx instead walks a
// compound packet in place (Packets), parses each kind it reads into a small
// struct whose lists (report blocks, NACK pairs, FIR entries, REMB SSRCs)
// are index-based views of the packet's own bytes, and builds the packets it
// sends by appending to a caller's buffer. It covers:
//
//   - SR and RR with report blocks (RFC 3550 §6.4), SDES with one CNAME
//     (RFC 3550 §6.5);
//   - Generic NACK (RFC 4585 §6.2.1), PLI (RFC 4585 §6.3.1), FIR
//     (RFC 5104 §4.3.1), REMB (draft-alvestrand-rmcat-remb-03 §2.2);
//   - transport-wide congestion control feedback
//     (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1): a parser,
//     and TWCCRecorder, which turns recorded arrivals into feedback.
//
// Parsers return sentinel errors, never wrapped ones, so that rejecting a
// malformed packet allocates nothing either. Tests check every parser and
// builder against pion/rtcp.
//
// rtcpx imports no Invigil package, and nothing but the standard library.
package rtcpx
