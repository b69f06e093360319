// Package audit owns the audit trail's storage and delivery: the stores
// (FileStore, an fsynced JSON-lines file per room; RedisStore, a Redis
// Stream per room), the webhook that delivers each stored event, and the
// events API (GET /v1/rooms/{room}/events). A Store is the event sink
// room records through (room.EventSink); room keeps the Event type and
// tells proctors each event live.
//
// audit imports room (the event type) and internal/httpapi (the API's
// token check and error shape); it must not import signaling, cluster,
// sfu or cmd.
package audit
