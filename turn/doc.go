// Package turn is Invigil's embedded STUN/TURN server: the fallback path for
// students whose networks block the SFU's own UDP and TCP ports. It runs
// pion/turn v5 on listeners it is given: UDP and TCP on one port number,
// and TLS on another. It authenticates with the TURN REST API's ephemeral
// credentials (coturn's use-auth-secret). It also keeps the relay from
// becoming a door into the operator's network: a relay may reach the
// node's own media ports and the public internet, nothing else unless
// configured.
//
// Where things are:
//   - credentials.go: the REST credential scheme and its verification
//     (RFC 8489 §9.2).
//   - policy.go: which peer addresses a relay may reach (RFC 8656 §9.1,
//     §21).
//   - relay.go, bandwidth.go: relay sockets, the per-user allocation
//     quota, the per-allocation bandwidth cap and relayed-byte counting.
//   - codes.go: the RFC 8656 error codes pion/turn does not send itself.
//   - listener.go, tlscert.go: the client-facing sockets, TLS and
//     certificate reload.
//   - stats.go: counters and rate-limited refusal lines. pion/turn's own
//     lines go to Config.PionLogs (cmd bridges them to slog).
//
// turn imports pion (turn, stun, transport, logging) and the standard
// library only. It must not import any other Invigil package, and knows
// nothing of rooms, tokens or Redis. cmd/invigil builds its Config from
// flags, calls Reload on SIGHUP, puts Credentials and URLs in the join
// response, and exports Stats as metrics.
package turn
