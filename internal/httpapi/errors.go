package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// The codes an HTTP API answers with, each with its status. docs/http.md
// lists them; TestCodesDocumented keeps the two in step.
const (
	// CodeMalformed (400): a parameter is missing or out of range.
	CodeMalformed = "malformed"
	// CodeTokenMissing (401): no "Authorization: Bearer <token>".
	CodeTokenMissing = "token_missing"
	// CodeTokenInvalid (401): not an HS256 token signed for this node.
	CodeTokenInvalid = "token_invalid"
	// CodeTokenExpired (401): the token's exp has passed.
	CodeTokenExpired = "token_expired"
	// CodeTokenNotYetValid (401): the token's nbf is in the future.
	CodeTokenNotYetValid = "token_not_yet_valid"
	// CodeRoleUnknown (401): the token's role is not one of the roles.
	CodeRoleUnknown = "role_unknown"
	// CodeForbidden (403): the token's role may not call this route.
	CodeForbidden = "forbidden"
	// CodeNotFound (404): no such route.
	CodeNotFound = "not_found"
	// CodeMethodNotAllowed (405): the route exists with other methods.
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeRoomNotFound (404): the room is not open on any node.
	CodeRoomNotFound = "room_not_found"
	// CodeParticipantNotFound (404): no such student in the room.
	CodeParticipantNotFound = "participant_not_found"
	// CodeRevocationNotFound (404): no such revocation in force.
	CodeRevocationNotFound = "revocation_not_found"
	// CodeRecordingNotFound (404): no such recording or file.
	CodeRecordingNotFound = "recording_not_found"
	// CodeNodeUnreachable (502): the node that holds the room did not
	// answer a forwarded call.
	CodeNodeUnreachable = "node_unreachable"
	// CodeNoCapacity (503): no ready node has room for the seats asked.
	CodeNoCapacity = "no_capacity"
	// CodeUnavailable (503): a store the call needs (the cluster's
	// Redis) is unreachable, or the node is shutting down.
	CodeUnavailable = "unavailable"
	// CodeRateLimited (429): too many connections or connection
	// attempts from the caller's address (with Retry-After).
	CodeRateLimited = "rate_limited"
	// CodeInternal (500): a server fault, logged on the node.
	CodeInternal = "internal"
)

// Codes lists every code with the status it is sent with.
func Codes() map[string]int {
	return map[string]int{
		CodeMalformed: http.StatusBadRequest, CodeTokenMissing: http.StatusUnauthorized,
		CodeTokenInvalid: http.StatusUnauthorized, CodeTokenExpired: http.StatusUnauthorized,
		CodeTokenNotYetValid: http.StatusUnauthorized, CodeRoleUnknown: http.StatusUnauthorized,
		CodeForbidden: http.StatusForbidden, CodeNotFound: http.StatusNotFound,
		CodeMethodNotAllowed: http.StatusMethodNotAllowed, CodeRoomNotFound: http.StatusNotFound,
		CodeParticipantNotFound: http.StatusNotFound, CodeRevocationNotFound: http.StatusNotFound,
		CodeRecordingNotFound: http.StatusNotFound, CodeNodeUnreachable: http.StatusBadGateway,
		CodeNoCapacity: http.StatusServiceUnavailable, CodeUnavailable: http.StatusServiceUnavailable,
		CodeRateLimited: http.StatusTooManyRequests, CodeInternal: http.StatusInternalServerError,
	}
}

// Error is a failed API call: the status and the body's code and message.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with code's status and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	status, ok := Codes()[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// body is the one error shape of every HTTP API.
type body struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError answers with err's status and body: an *Error as it is,
// anything else as internal (its text stays on the server).
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal server error"}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body{Code: e.Code, Message: e.Message})
}

// Fail answers with code's status and msg.
func Fail(w http.ResponseWriter, code, msg string) {
	WriteError(w, Errorf(code, "%s", msg))
}

// maxBody bounds a request body: the API's bodies are a few fields.
const maxBody = 64 << 10

// ReadJSON decodes r's body into v: JSON, at most 64 KiB, no unknown
// fields, one value. Its error is an *Error (malformed) for WriteError.
func ReadJSON(r *http.Request, v any) error {
	_, err := ReadJSONKeep(r, v)
	return err
}

// ReadJSONKeep is ReadJSON that also returns the body it read, for a
// handler that may still forward the request.
func ReadJSONKeep(r *http.Request, v any) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, Errorf(CodeMalformed, "the body could not be read (at most %d bytes): %v", maxBody, err)
	}
	return b, decodeJSON(b, v)
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeMalformed, "the body is not the JSON object this route takes: %v", err)
	}
	if dec.More() {
		return Errorf(CodeMalformed, "the body holds more than one JSON value")
	}
	return nil
}

// WriteJSON answers 200 with v as JSON.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
