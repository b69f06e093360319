// Package roomapi is the rooms API the exam platform's API tier runs an
// exam with (docs/http.md, docs/openapi.yaml): it lists the live rooms
// (cluster-wide), shows one room's participants with their state and
// connection quality, ends a room, ends a participant, messages
// students, and revokes identities. It keeps what must outlive a node's
// memory, the second each room was ended and the revocations in force,
// in a Store (FileStore under the data dir, RedisStore in the cluster's
// Redis), and enforces them through Lockouts: signaling asks it before
// each join (its Gate), the embedded TURN server before each
// authenticated request (Denied).
//
// In cluster mode a call about a room is forwarded, as a reverse proxy,
// to the node that holds the room (forward.go); the cluster is reached
// through the small Directory interface cmd adapts package cluster to.
//
// roomapi imports room (the rooms it acts on), internal/httpapi (routes,
// token checks, the error shape), sfu for the PeerStats value type it
// reads connection figures from (through its own statsReader
// interface), and go-redis. It must not import signaling, cluster,
// audit or cmd.
package roomapi
