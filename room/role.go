package room

import "fmt"

// Role is what a participant may do in a room (docs/http.md, "Join tokens",
// and its roles table).
type Role string

const (
	// RoleStudent publishes camera (and microphone, screen) and receives
	// nothing of other students.
	RoleStudent Role = "student"
	// RoleProctor receives every student of its room.
	RoleProctor Role = "proctor"
	// RoleAdmin is the exam platform's API tier: it reads events and
	// placement, and never joins media.
	RoleAdmin Role = "admin"
	// RoleReviewer judges a session after the exam: it reads one room's
	// events and recordings (or every room's), and never joins media.
	RoleReviewer Role = "reviewer"
)

// ParseRole checks a role claim.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleStudent, RoleProctor, RoleAdmin, RoleReviewer:
		return r, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownRole, s)
}

// CanPublish reports whether the role may send media into a room.
func (r Role) CanPublish() bool { return r == RoleStudent }

// Sees reports whether a participant in role r is told about, and
// receives the media of, a participant in role other.
func (r Role) Sees(other Role) bool {
	return r == RoleProctor && other == RoleStudent
}
