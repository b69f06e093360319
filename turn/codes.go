package turn

import (
	"net"
	"sync"

	"github.com/pion/stun/v4"
)

// maxPendingClients bounds codeFixer's maps. An entry normally lives from
// a request's authentication to its response, microseconds; entries of
// requests pion drops without an answer are overwritten by the client's
// next request. Should a flood of such requests fill the maps anyway,
// they are emptied: the price is a 401 or 447 where a 403 was due.
const maxPendingClients = 16384

// STUN message types (RFC 8489 §5) of the answers codeFixer corrects.
const (
	typeChannelBindError = 0x0119 // RFC 8656 §12, ChannelBind error response
	typeConnectError     = 0x011a // RFC 6062 §6.1, Connect error response
)

// codeFixer corrects two error codes pion/turn v5 sends for a peer the
// policy refuses, without forking it:
//
//   - ChannelBind to a refused peer: pion answers 401 Unauthorized; RFC
//     8656 §12 and §9.1 want 403 Forbidden (the client is authenticated;
//     a 401 tells it to retry with other credentials).
//   - Connect (RFC 6062 §5.2) to a refused port of an allowed IP: the
//     refusal can only happen when pion dials, so pion answers 447
//     Connection Timeout or Failure; 403 says what happened.
//
// pion already answers 403 to CreatePermission and to Connect when the
// permission check refuses the IP.
//
// It works on the wire: the authentication handler records each client's
// long-term key, the policy marks a client when it refuses its request,
// and the client-facing sockets pass every STUN response through
// response, which re-signs a marked client's 401 or 447 as 403. pion
// answers each client's requests one at a time on one socket (one read
// loop per UDP socket, one goroutine per TCP connection), so the key and
// mark taken for a response belong to its request.
type codeFixer struct {
	mu      sync.Mutex          // guards keys and refused
	keys    map[string][]byte   // client → key of its last authenticated request
	refused map[string]struct{} // clients whose in-flight request the policy refused
}

func newCodeFixer() *codeFixer {
	return &codeFixer{keys: make(map[string][]byte), refused: make(map[string]struct{})}
}

// addrKey names a transport address; the network keeps a UDP and a TCP
// address with the same IP and port apart.
func addrKey(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.Network() + "|" + a.String()
}

// authenticated records the key client's current request verified with.
func (f *codeFixer) authenticated(client net.Addr, key []byte) {
	k := addrKey(client)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.keys) >= maxPendingClients {
		clear(f.keys)
	}
	f.keys[k] = key
}

// refusedPeer marks client's current request as refused by the policy.
func (f *codeFixer) refusedPeer(client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.refused) >= maxPendingClients {
		clear(f.refused)
	}
	f.refused[client] = struct{}{}
}

// isResponse reports whether p may be a STUN success or error response
// (RFC 8489 §5: the class bits make the first byte 0x01). It is the
// per-packet test on the client-facing sockets: ChannelData starts with
// 0x40–0x7f and Data indications with 0x00.
func isResponse(p []byte) bool {
	return len(p) >= 20 && p[0] == 0x01
}

// response returns the bytes to send to client instead of the response p:
// p itself, or p re-signed as 403 Forbidden. It consumes client's key and
// mark, so they never outlive the request.
func (f *codeFixer) response(p []byte, client net.Addr) []byte {
	k := addrKey(client)
	f.mu.Lock()
	key := f.keys[k]
	_, refused := f.refused[k]
	delete(f.keys, k)
	delete(f.refused, k)
	f.mu.Unlock()

	typ := uint16(p[0])<<8 | uint16(p[1])
	if !refused || key == nil || (typ != typeChannelBindError && typ != typeConnectError) {
		return p
	}
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	if err := m.Decode(); err != nil {
		return p
	}
	var code stun.ErrorCodeAttribute
	if err := code.GetFrom(m); err != nil {
		return p
	}
	want := stun.CodeUnauthorized
	if typ == typeConnectError {
		want = stun.CodeConnTimeoutOrFailure
	}
	// Only an answer signed with the recorded key is pion's answer to this
	// request; anything else passes unchanged.
	if code.Code != want || stun.MessageIntegrity(key).Check(m) != nil {
		return p
	}
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(m.TransactionID), m.Type,
		stun.CodeForbidden, stun.MessageIntegrity(key),
	}
	if m.Contains(stun.AttrFingerprint) {
		setters = append(setters, stun.Fingerprint)
	}
	out, err := stun.Build(setters...)
	if err != nil {
		return p
	}
	return out.Raw
}
