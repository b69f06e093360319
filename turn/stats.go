package turn

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// RefusalReason names why the server refused a request or dropped relayed
// traffic; Stats counts each. cmd turns them into a metric label.
type RefusalReason string

// The refusal reasons, with the error code the client receives
// (RFC 8656 §6.2, §7.2, §9.1).
const (
	// RefusedBadCredentials: MESSAGE-INTEGRITY did not verify (wrong
	// secret or password) or the username is not of the REST form. 401.
	RefusedBadCredentials RefusalReason = "bad_credentials"
	// RefusedExpired: the REST credential's expiry has passed. 401.
	RefusedExpired RefusalReason = "expired"
	// RefusedForbiddenPeer: the peer policy refused a permission, channel
	// binding or connection (403), or dropped a datagram to a refused
	// port of an allowed IP (Send indications and ChannelData carry no
	// answer).
	RefusedForbiddenPeer RefusalReason = "forbidden_peer"
	// RefusedQuota: the identity already holds MaxAllocationsPerUser
	// allocations. 486 (508 when two Allocates race for the last slot).
	RefusedQuota RefusalReason = "quota"
	// RefusedDenied: the credential is valid but Config.Deny refuses its
	// identity (the exam platform revoked it). 401.
	RefusedDenied RefusalReason = "denied"
	// RefusedBandwidth: a relayed UDP datagram dropped, or a TCP relay
	// read or write delayed, by the per-allocation bandwidth cap.
	RefusedBandwidth RefusalReason = "bandwidth"
)

// refusal indexes the counters; the order matches refusalReasons.
type refusal int

const (
	refBadCredentials refusal = iota
	refExpired
	refForbiddenPeer
	refQuota
	refBandwidth
	refDenied
	numRefusals
)

// reason returns the exported name of r.
func (r refusal) reason() RefusalReason {
	return [numRefusals]RefusalReason{
		RefusedBadCredentials, RefusedExpired, RefusedForbiddenPeer, RefusedQuota, RefusedBandwidth, RefusedDenied,
	}[r]
}

// refusalLogInterval is the least time between two log lines of one
// refusal kind. A flood of bad requests (a scanner, a misconfigured
// client retrying, a relay over its cap dropping every packet) then
// costs one line per kind per interval, carrying how many were
// suppressed; the counters stay exact.
const refusalLogInterval = 10 * time.Second

// Stats is a snapshot of the server's counters, plain values for cmd to
// export as metrics.
type Stats struct {
	// Allocations is the number of live allocations.
	Allocations int
	// RelayedBytes counts payload bytes the relays sent to and received
	// from peers, in both directions, over UDP and TCP relays, since New.
	RelayedBytes uint64
	// Refused counts refusals since New, by reason; every reason is
	// present, zero or not.
	Refused map[RefusalReason]uint64
	// CertNotAfter is the expiry of the TLS certificate in use; zero when
	// TURNS is off.
	CertNotAfter time.Time
}

// refusals counts refusals and logs them at Warn (a client's fault), one
// line per kind per refusalLogInterval. It allocates nothing when a line
// is suppressed, since a bandwidth refusal happens per dropped packet.
type refusals struct {
	log        *slog.Logger
	count      [numRefusals]atomic.Uint64
	suppressed [numRefusals]atomic.Uint64
	next       [numRefusals]atomic.Int64 // Unix nanoseconds before which a kind stays quiet
}

// refuse counts one refusal of kind r and, if that kind has not been
// logged for refusalLogInterval, logs it with attrs (built lazily by the
// caller's closure so that a suppressed refusal costs no allocation).
func (rs *refusals) refuse(r refusal, attrs func() []slog.Attr) {
	rs.count[r].Add(1)
	now := time.Now().UnixNano()
	next := rs.next[r].Load()
	if now < next || !rs.next[r].CompareAndSwap(next, now+int64(refusalLogInterval)) {
		rs.suppressed[r].Add(1)
		return
	}
	all := append(attrs(),
		slog.String("reason", string(r.reason())),
		slog.Uint64("suppressed", rs.suppressed[r].Swap(0)))
	rs.log.LogAttrs(context.Background(), slog.LevelWarn, "turn refused", all...)
}

func (rs *refusals) snapshot() map[RefusalReason]uint64 {
	m := make(map[RefusalReason]uint64, numRefusals)
	for r := range numRefusals {
		m[r.reason()] = rs.count[r].Load()
	}
	return m
}
