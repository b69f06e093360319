package sfu

import "errors"

var (
	// ErrGlare is returned by HandleOffer when the client's offer crossed an
	// offer of the server's own. The server is the impolite peer of perfect
	// negotiation: the client rolls back and answers the server's offer.
	ErrGlare = errors.New("sfu: offer collided with a pending server offer")

	// ErrClosed is returned by operations on a closed Peer or Engine.
	ErrClosed = errors.New("sfu: closed")

	// ErrTooManyCandidates is returned when a client trickles more remote
	// candidates before its first description than a Peer will hold.
	ErrTooManyCandidates = errors.New("sfu: too many early ICE candidates")

	// ErrCodecNotNegotiated is returned by a down-track's Bind when the
	// subscriber did not accept the publisher's codec: Invigil forwards
	// without transcoding, so both ends must share it.
	ErrCodecNotNegotiated = errors.New("sfu: subscriber does not support the publisher's codec")

	// ErrNotSubscribed is returned by Unsubscribe for a track the peer does
	// not receive.
	ErrNotSubscribed = errors.New("sfu: not subscribed to that track")
)
