package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST API and coturn specify.
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	pionturn "github.com/pion/turn/v5"
)

// Credentials returns TURN REST API credentials for identity, valid until
// expires (draft-uberti-behave-turn-rest-00 §2.2, coturn's use-auth-secret):
//
//	username = "<expires as Unix seconds>:<identity>"
//	password = base64(HMAC-SHA1(secret, username))
//
// The server needs no state to check them: it recomputes the password from
// the username and the shared secret and refuses an expiry in the past. A
// coturn started with use-auth-secret and static-auth-secret=secret accepts
// the same credentials.
func Credentials(secret []byte, identity string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + identity
	return username, restPassword(secret, username)
}

// URLs returns the ICE server URLs (RFC 7064, RFC 7065) a client needs to
// reach this server at host: STUN, TURN over UDP and over TCP on port, and
// TURN over TLS on tlsPort unless it is 0. host must be the name the TLS
// certificate is issued for when TURNS is used.
func URLs(host string, port, tlsPort int) []string {
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	urls := []string{
		"stun:" + hp,
		"turn:" + hp + "?transport=udp",
		"turn:" + hp + "?transport=tcp",
	}
	if tlsPort != 0 {
		urls = append(urls, "turns:"+net.JoinHostPort(host, strconv.Itoa(tlsPort))+"?transport=tcp")
	}
	return urls
}

// restPassword is the REST API password of username: the long-term
// credential password of RFC 8489 §9.2, derived instead of stored.
func restPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username)) // hash.Hash.Write never fails.
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseUsername splits a REST API username into its expiry and identity.
// The identity may itself contain ':'; the expiry is everything before the
// first one and must be decimal Unix seconds.
func parseUsername(username string) (expires time.Time, identity string, err error) {
	ts, identity, ok := strings.Cut(username, ":")
	if !ok || ts == "" || identity == "" {
		return time.Time{}, "", ErrBadUsername
	}
	for _, r := range ts {
		if r < '0' || r > '9' {
			return time.Time{}, "", ErrBadUsername
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: %v", ErrBadUsername, err)
	}
	return time.Unix(sec, 0), identity, nil
}

// checkUsername returns the identity of username and the long-term key
// (RFC 8489 §9.2.2: MD5(username ":" realm ":" password)) that its
// MESSAGE-INTEGRITY must verify with, or why it is refused. The key uses
// the server's realm, not the client's: a client that answers with another
// realm fails the integrity check.
func checkUsername(secret []byte, realm, username string, now time.Time) (identity string, key []byte, err error) {
	expires, identity, err := parseUsername(username)
	if err != nil {
		return "", nil, err
	}
	if expires.Before(now) {
		return "", nil, ErrExpired
	}
	return identity, pionturn.GenerateAuthKey(username, realm, restPassword(secret, username)), nil
}
