package turn

import "errors"

var (
	// ErrNoListener is returned by Config.Validate when neither a UDP, TCP
	// nor TLS listener is configured.
	ErrNoListener = errors.New("turn: no UDP, TCP or TLS listener")

	// ErrNoSecret is returned by Config.Validate when the REST API shared
	// secret is empty: every credential would be forgeable.
	ErrNoSecret = errors.New("turn: empty shared secret")

	// ErrNoRelayIP is returned by Config.Validate when RelayIP is missing or
	// unspecified: clients must be told a routable relay address
	// (RFC 8656 §7.3, XOR-RELAYED-ADDRESS).
	ErrNoRelayIP = errors.New("turn: relay IP missing or unspecified")

	// ErrTLSConfig is returned by Config.Validate when a TLS listener comes
	// without a certificate and key, or a certificate without a listener.
	ErrTLSConfig = errors.New("turn: TLS listener and certificate/key files must be set together")

	// ErrInvalidAddr is returned by Config.Validate for an invalid entry in
	// AllowPeers, MediaAddrs or DenyAddrs.
	ErrInvalidAddr = errors.New("turn: invalid address in peer policy")

	// ErrBadUsername is the cause of a refusal whose USERNAME is not of the
	// REST API form "<expiry-unix>:<identity>".
	ErrBadUsername = errors.New("turn: username is not <expiry-unix>:<identity>")

	// ErrExpired is the cause of a refusal whose REST credential has expired.
	ErrExpired = errors.New("turn: credential expired")

	// ErrQuota is returned by the relay allocator when the user already holds
	// MaxAllocationsPerUser allocations (RFC 8656 §7.2 step 10, 486).
	ErrQuota = errors.New("turn: allocation quota reached")

	// ErrForbiddenPeer is returned when the peer policy refuses a peer
	// address (RFC 8656 §9.1 and §21, 403).
	ErrForbiddenPeer = errors.New("turn: peer address forbidden")

	// ErrNoAllocation is returned by the relay allocator for a TCP connection
	// request whose relay address belongs to no live allocation.
	ErrNoAllocation = errors.New("turn: no allocation for relay address")

	// ErrCloseTimeout is returned by Close when the server's goroutines did
	// not all finish within the close timeout.
	ErrCloseTimeout = errors.New("turn: timed out waiting for connections to close")
)
