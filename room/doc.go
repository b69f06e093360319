// Package room owns exam rooms and their participants: who is in which
// room, in which role, what each student publishes, and who may receive
// it. It enforces the privacy rules of DESIGN.md on the server: a proctor
// receives every student of its room; a student receives nothing of any
// other student, not their media, not their presence.
//
// room imports sfu for its Track type only and talks to a participant's
// PeerConnection and client through the two small interfaces Media and
// Notifier. It must not import signaling, cluster, metrics or cmd.
package room
