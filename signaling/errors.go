package signaling

import (
	"errors"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// Wire error codes of docs/protocol.md.
const (
	CodeMalformed          = "malformed"
	CodeUnknownType        = "unknown_type"
	CodeUnsupportedVersion = "unsupported_version"
	CodeTooLarge           = "too_large"
	CodeJoinRequired       = "join_required"
	CodeJoinTimeout        = "join_timeout"
	CodeAlreadyJoined      = "already_joined"
	CodeTokenMissing       = "token_missing"
	CodeTokenInvalid       = "token_invalid"
	CodeTokenExpired       = "token_expired"
	CodeTokenNotYetValid   = "token_not_yet_valid"
	CodeRoleUnknown        = "role_unknown"
	CodeRoomMismatch       = "room_mismatch"
	CodeRoomFull           = "room_full"
	CodeNodeFull           = "node_full"
	CodeForbidden          = "forbidden"
	CodeSDPInvalid         = "sdp_invalid"
	CodeSDPTooLarge        = "sdp_too_large"
	CodeCandidateInvalid   = "candidate_invalid"
	CodeTooManyCandidates  = "too_many_candidates"
	CodeTooManyTracks      = "too_many_tracks"
	CodeTooManyRooms       = "too_many_rooms"
	CodeRateLimited        = "rate_limited"
	CodeDraining           = "draining"
	CodeGlare              = "glare"
	CodeSlowConsumer       = "slow_consumer"
	CodeShuttingDown       = "shutting_down"
	CodeInternal           = "internal"
	// CodeRedirect: another node holds the room; join there (url).
	CodeRedirect = "redirect"
	// CodeUnavailable: the cluster store cannot say who holds the room;
	// retry with backoff.
	CodeUnavailable = "unavailable"
	// CodeRoomEnded: the exam platform ended the room after this token
	// was issued; a token issued later joins.
	CodeRoomEnded = "room_ended"
	// CodeRevoked: the exam platform revoked this identity.
	CodeRevoked = "revoked"
	// CodeSuperseded: the identity joined again on a newer connection
	// while this one's join was under way; the newer one stays.
	CodeSuperseded = "superseded"
)

// Token errors, told apart because each has its own wire code.
var (
	ErrTokenMissing     = errors.New("token missing")
	ErrTokenInvalid     = errors.New("token invalid")
	ErrTokenExpired     = errors.New("token expired")
	ErrTokenNotYetValid = errors.New("token not yet valid")
	ErrRoomMismatch     = errors.New("token is for another room")
)

// refusalCodes are the codes counted as refusals (Observer.Refused): a
// request turned down by policy rather than a malformed one.
var refusalCodes = map[string]bool{
	CodeTokenMissing: true, CodeTokenInvalid: true, CodeTokenExpired: true, CodeTokenNotYetValid: true,
	CodeRoleUnknown: true, CodeRoomMismatch: true, CodeRoomFull: true, CodeNodeFull: true, CodeTooManyRooms: true,
	CodeForbidden: true, CodeTooManyCandidates: true, CodeTooManyTracks: true, CodeSDPTooLarge: true,
	CodeTooLarge: true, CodeJoinTimeout: true, CodeSlowConsumer: true, CodeDraining: true,
	CodeRoomEnded: true, CodeRevoked: true,
}

// fatalCodes close the connection right after the error frame.
var fatalCodes = map[string]bool{
	CodeUnsupportedVersion: true, CodeJoinTimeout: true, CodeTokenMissing: true,
	CodeTokenInvalid: true, CodeTokenExpired: true, CodeTokenNotYetValid: true,
	CodeRoleUnknown: true, CodeRoomMismatch: true, CodeRoomFull: true, CodeNodeFull: true, CodeTooManyRooms: true,
	CodeDraining: true, CodeSlowConsumer: true, CodeShuttingDown: true, CodeTooLarge: true,
	CodeRedirect: true, CodeUnavailable: true, CodeRoomEnded: true, CodeRevoked: true,
	CodeSuperseded: true,
}

// isFatal reports whether err ends the session.
func isFatal(err error) bool {
	var pe *ProtocolError
	if errors.As(err, &pe) && pe.Fatal {
		return true
	}
	code, _ := wireError(err)
	return fatalCodes[code]
}

// wireError maps any error to its code and the message shown to the
// client. This is the one place errors become wire codes.
func wireError(err error) (code, message string) {
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		return pe.Code, pe.Message
	case errors.Is(err, ErrTokenMissing):
		return CodeTokenMissing, "join needs a token"
	case errors.Is(err, ErrTokenExpired):
		return CodeTokenExpired, "token has expired"
	case errors.Is(err, ErrTokenNotYetValid):
		return CodeTokenNotYetValid, "token is not valid yet"
	case errors.Is(err, ErrTokenInvalid):
		return CodeTokenInvalid, "token is not a valid HS256 token for this server"
	case errors.Is(err, room.ErrUnknownRole):
		return CodeRoleUnknown, "token role is not student, proctor or admin"
	case errors.Is(err, ErrRoomMismatch):
		return CodeRoomMismatch, "token is for another room"
	case errors.Is(err, room.ErrRoomFull):
		return CodeRoomFull, "the room is full"
	case errors.Is(err, room.ErrNodeFull):
		return CodeNodeFull, "this server is full"
	case errors.Is(err, room.ErrDraining):
		return CodeDraining, "this server is draining and opens no new rooms; ask for the room's placement again"
	case errors.Is(err, room.ErrTooManyRooms):
		return CodeTooManyRooms, "this server holds its maximum number of rooms"
	case errors.Is(err, room.ErrRoomEnded):
		return CodeRoomEnded, "this exam has ended; a token issued after the end may join the room again"
	case errors.Is(err, room.ErrRevoked):
		return CodeRevoked, "this identity has been locked out of the exam"
	case errors.Is(err, room.ErrSuperseded):
		return CodeSuperseded, "this identity joined again on a newer connection, which stays; this one is closed"
	case errors.Is(err, room.ErrClosed):
		return CodeShuttingDown, "the server is shutting down"
	case errors.Is(err, sfu.ErrGlare):
		return CodeGlare, "your offer crossed the server's; roll back and answer it"
	case errors.Is(err, sfu.ErrTooManyCandidates):
		return CodeTooManyCandidates, "too many candidates before the first description"
	}
	return CodeInternal, "internal server error"
}

// closeStatus is the WebSocket status a fatal code closes with.
func closeStatus(code string) websocket.StatusCode {
	switch code {
	case CodeShuttingDown:
		return websocket.StatusGoingAway
	case CodeTooLarge:
		return websocket.StatusMessageTooBig
	case CodeInternal:
		return websocket.StatusInternalError
	}
	return websocket.StatusPolicyViolation
}
