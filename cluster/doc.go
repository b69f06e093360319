// Package cluster holds what outlives one session and, in cluster mode,
// what nodes share. Today: the audit-event store, an append-only JSON-lines
// file per room under the data directory (FileEvents), used when no Redis
// is configured.
//
// cluster reads room's types (Event, EventStore) and imports no other
// Invigil package.
package cluster
