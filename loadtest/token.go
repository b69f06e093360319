package loadtest

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenSlack is how long a join token outlives the run's duration, so a
// participant joining late in the ramp of a long run still holds a valid
// token; it is only checked at join.
const tokenSlack = 5 * time.Minute

// mintToken signs a join token as the exam platform's API tier does
// (docs/http.md, "Join tokens"): HS256 with sub, room, role, name, exp, nbf
// and iat.
func mintToken(secret, roomName, identity, role string, ttl time.Duration) (string, error) {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":  identity,
		"room": roomName,
		"role": role,
		"name": identity,
		"iat":  now.Unix(),
		"nbf":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return tok, nil
}
