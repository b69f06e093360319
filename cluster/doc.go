// Package cluster is what nodes share in cluster mode: node heartbeats
// (occupancy and load), room placement and leases, through a Cluster
// (Memory for a node alone; Redis for several). A Member runs this
// node's heartbeat and lease loops and answers who holds a room;
// RegisterAPI adds the placement API (GET /v1/placement).
//
// cluster imports internal/httpapi (the placement API's token check and
// error shape) and go-redis; it must not import signaling, room, audit,
// sfu or cmd. The audit trail's Redis Stream lives in package audit.
package cluster
