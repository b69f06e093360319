// Package room owns exam rooms and their participants: who is in which
// room, in which role, what each student publishes, and who may receive
// it. It enforces the privacy rules on the server: a proctor
// receives every student of its room; a student receives nothing of any
// other student, not their media, not their presence.
//
// room declares what it needs of the media engine (Track, Media) and of
// a participant's client (Notifier), and records its audit trail through
// an EventSink (package audit's stores); signaling and cmd plug those
// in. It imports sfu for its value types only (Kind, the qualities,
// ErrNotSubscribed) and no pion package; it must not import signaling,
// audit, cluster, metrics or cmd.
package room
