// Package record writes what students publish as exam evidence, without
// re-encoding: per student, camera video with the microphone muxed in,
// and screen share in files of its own, cut into keyframe-aligned
// segments of a configured length, each listed with its SHA-256 in a
// manifest the node signs with its Ed25519 key. VP8 goes into WebM,
// H.264 into fragmented MP4 (mp4.go), Opus into either.
//
// Recording is off the hot path. A track is tapped (sfu.Track.Tap) at
// its highest layer; the tap copies each packet into a pooled buffer and
// hands it to the student's writer goroutine through a bounded queue,
// never blocking: when the queue is full the packet is dropped, counted,
// and the gap is recorded. The writer reorders packets in a jitter buffer
// that waits briefly for retransmissions (the node NACKs publishers
// upstream), assembles frames, and starts video only on a keyframe,
// again after a loss. A write error (disk full, say) stops that
// student's recording with an audit event; media keeps flowing.
//
// Finished files may leave the node for a Store (a directory, or an
// S3-compatible bucket through minio-go): each file as it closes, the
// manifest after them, the local copy removed once the stored copy is
// verified. Keys (keys.go) and verification (manifest.go) need nothing
// but the files and a keyring the verifier trusts.
//
// The package knows nothing of rooms or signaling: it is given a room
// name, an identity and a Source for each track, and reports audit
// events through an EventSink. RegisterAPI serves the manifests
// (GET /v1/rooms/{room}/recordings) through internal/httpapi. record
// imports sfu (its Kind, Codec and RTPWriter), internal/httpapi,
// pion/rtp and pion/webrtc's media helpers (samplebuilder), ebml-go and
// minio-go; it must not import room, signaling or cmd.
package record
