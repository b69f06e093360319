package signaling

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/room"
)

// tokenLeeway absorbs clock skew between the API tier that mints tokens
// and this node.
const tokenLeeway = 5 * time.Second

// AllRooms is the room claim of a token for every room: an admin's
// always, a reviewer's when it judges every room.
const AllRooms = "*"

// Claims are a join token's claims (docs/http.md, "Join tokens").
type Claims struct {
	Room string `json:"room"`
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
	// Record asks the node to record this student (docs/recording.md).
	Record bool `json:"record,omitempty"`
	// Require lists the sources a student must publish before it is
	// admitted (camera, microphone, screen); absent: camera.
	Require []string `json:"require,omitempty"`
	// Device names a student's additional device (e.g. "phone"): it
	// joins beside the student's main session instead of replacing it.
	Device string `json:"device,omitempty"`
	jwt.RegisteredClaims
}

// Grant is a verified token: who may join which room in which role.
type Grant struct {
	Identity string
	Name     string
	Room     string
	Role     room.Role
	Expires  time.Time
	Record   bool     // the token's record claim
	Require  []string // sources a student must publish to be admitted
	Device   string   // a student's additional device; "" for the main one
	// Issued is the token's iat (zero when it has none): an ended room
	// refuses tokens issued at or before the second it ended.
	Issued time.Time
}

// checkRequire accepts a require claim: sources a student publishes.
func checkRequire(require []string) error {
	for _, src := range require {
		if src == room.SourceTalkback || !validSources[src] {
			return fmt.Errorf("require lists %q; sources are camera, microphone and screen", truncate(src, 32))
		}
	}
	return nil
}

// maxDeviceName bounds a device claim: a short label such as "phone".
const maxDeviceName = 32

// checkDevice accepts a device claim: only students have additional
// devices, named with 1–32 of a-z, 0-9, _ and -.
func checkDevice(device string, role room.Role) error {
	if device == "" {
		return nil
	}
	if role != room.RoleStudent {
		return errors.New("only a student token names a device")
	}
	if len(device) > maxDeviceName {
		return fmt.Errorf("device name longer than %d bytes", maxDeviceName)
	}
	for _, c := range device {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("device %q: use a-z, 0-9, _ and -", truncate(device, maxDeviceName))
		}
	}
	return nil
}

// defaultRequire is what a student must publish when its token says
// nothing: the camera, the one thing proctoring cannot do without.
var defaultRequire = []string{"camera"}

// VerifyToken checks a join token: HS256 only (never "none" or another
// algorithm), signed with secret, with exp required and nbf honoured, a
// subject, a room and a known role.
func VerifyToken(secret []byte, token string) (Grant, error) {
	if token == "" {
		return Grant{}, ErrTokenMissing
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Grant{}, ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return Grant{}, ErrTokenNotYetValid
	case err != nil:
		return Grant{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	role, err := room.ParseRole(c.Role)
	if err != nil {
		return Grant{}, err
	}
	if c.Subject == "" || c.Room == "" {
		return Grant{}, fmt.Errorf("%w: sub and room are required", ErrTokenInvalid)
	}
	if err := checkRoomScope(role, c.Room); err != nil {
		return Grant{}, err
	}
	name := c.Name
	if name == "" {
		name = c.Subject
	}
	require := defaultRequire
	if c.Require != nil {
		require = c.Require
		if err := checkRequire(require); err != nil {
			return Grant{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
		}
	}
	if role != room.RoleStudent {
		require = nil
	}
	if err := checkDevice(c.Device, role); err != nil {
		return Grant{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	var issued time.Time
	if c.IssuedAt != nil {
		issued = c.IssuedAt.Time
	}
	return Grant{Identity: c.Subject, Name: name, Room: c.Room, Role: role, Expires: c.ExpiresAt.Time, Require: require,
		Record: c.Record, Device: c.Device, Issued: issued}, nil
}

// checkRoomScope: an admin token's room is always "*" (every room); a
// reviewer's may be (docs/http.md, "Join tokens"); nobody else's is.
func checkRoomScope(role room.Role, roomName string) error {
	switch {
	case role == room.RoleAdmin && roomName != AllRooms:
		return fmt.Errorf("%w: an admin token's room is %q", ErrTokenInvalid, AllRooms)
	case roomName == AllRooms && role != room.RoleAdmin && role != room.RoleReviewer:
		return fmt.Errorf("%w: only admin and reviewer tokens have room %q", ErrTokenInvalid, AllRooms)
	}
	return nil
}

// TokenSpec is what MintToken puts in a token.
type TokenSpec struct {
	Room     string
	Identity string
	Role     room.Role
	Name     string
	TTL      time.Duration
	Record   bool     // a student to be recorded
	Require  []string // what a student must publish (nil: the default, camera)
	Device   string   // a student's additional device (see Claims.Device)
	// Expires, when set, is the expiry instead of now + TTL.
	Expires time.Time
}

// MintToken signs a join token with HS256, as the exam platform's API
// tier would. It serves `invigil token`, --dev links and tests.
func MintToken(secret []byte, s TokenSpec) (string, error) {
	if _, err := room.ParseRole(string(s.Role)); err != nil {
		return "", err
	}
	if s.Identity == "" || s.Room == "" {
		return "", errors.New("signaling: a token needs an identity and a room")
	}
	if s.TTL <= 0 && s.Expires.IsZero() {
		return "", errors.New("signaling: a token needs a positive lifetime")
	}
	if err := checkRequire(s.Require); err != nil {
		return "", fmt.Errorf("signaling: %w", err)
	}
	if err := checkDevice(s.Device, s.Role); err != nil {
		return "", fmt.Errorf("signaling: %w", err)
	}
	if err := checkRoomScope(s.Role, s.Room); err != nil {
		return "", err
	}
	now := time.Now()
	expires := now.Add(s.TTL)
	if !s.Expires.IsZero() {
		expires = s.Expires
	}
	c := Claims{
		Room:    s.Room,
		Role:    string(s.Role),
		Name:    s.Name,
		Record:  s.Record,
		Require: s.Require,
		Device:  s.Device,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   s.Identity,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// randomID returns 12 random base32 characters (60 bits).
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:12]
}

// BearerVerifier checks the bearer tokens of the node's HTTP APIs by the
// rules of join tokens (VerifyToken); a refusal is a 401 with the
// token's code.
func BearerVerifier(secret []byte) httpapi.Verifier {
	return func(token string) (httpapi.Grant, error) {
		g, err := VerifyToken(secret, token)
		if err != nil {
			code, msg := wireError(err)
			return httpapi.Grant{}, &httpapi.Error{Status: http.StatusUnauthorized, Code: code, Message: msg}
		}
		return httpapi.Grant{Identity: g.Identity, Name: g.Name, Room: g.Room, Role: g.Role}, nil
	}
}
