package room

import "errors"

var (
	// ErrRoomFull is returned by Join when the room has its maximum
	// number of participants.
	ErrRoomFull = errors.New("room: room is full")
	// ErrNodeFull is returned by Join when this node has its maximum
	// number of participants.
	ErrNodeFull = errors.New("room: node is full")
	// ErrTooManyRooms is returned by Join when the participant would
	// open a room and this node holds its maximum number of rooms.
	ErrTooManyRooms = errors.New("room: node holds its maximum number of rooms")
	// ErrDraining is returned by Join when the participant would open a
	// room on a node that is draining: it finishes the rooms it has and
	// takes no new ones.
	ErrDraining = errors.New("room: node is draining")
	// ErrClosed is returned by Join once the registry is shutting down.
	ErrClosed = errors.New("room: shutting down")
	// ErrUnknownRole is returned by ParseRole.
	ErrUnknownRole = errors.New("room: unknown role")
	// ErrNotInRoom is returned for a participant that has left.
	ErrNotInRoom = errors.New("room: participant is not in the room")
	// ErrNoStudent is returned for a request about a student who is not
	// in the room.
	ErrNoStudent = errors.New("room: no such student in the room")
	// ErrRoomEnded is returned by Join for a token issued (iat) at or
	// before the second an admin ended the room.
	ErrRoomEnded = errors.New("room: the room was ended")
	// ErrRevoked is returned for an identity an admin revoked.
	ErrRevoked = errors.New("room: the identity is revoked")
	// ErrSuperseded is returned by Join for a join that came on an older
	// connection than the session the identity already has in the room
	// (Participant.Conn): the newer connection stays.
	ErrSuperseded = errors.New("room: a newer connection of this identity is in the room")
	// ErrNoRoom is returned for a room that is not open on this node.
	ErrNoRoom = errors.New("room: no such room on this node")
)
