package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

// Signaling timeouts and limits.
const (
	// dialTimeout bounds the WebSocket handshake; a node in a join storm
	// answers within a second or refuses (429).
	dialTimeout = 10 * time.Second
	// writeTimeout bounds one frame write, as the server's own.
	writeTimeout = 5 * time.Second
	// readLimit is above the server's 256 KiB frame limit, so any frame
	// it may send is read.
	readLimit = 512 << 10
	// leaveTimeout bounds the polite leave at teardown.
	leaveTimeout = time.Second
)

// signalConn is one participant's signaling WebSocket. Any goroutine may
// send; one goroutine (the participant's session) receives.
type signalConn struct {
	ws *websocket.Conn
}

// refusedError is a WebSocket handshake the node answered with an HTTP
// status instead of an upgrade (429: the node's per-address limits).
type refusedError struct {
	status int
	err    error
}

func (e *refusedError) Error() string { return fmt.Sprintf("dial: HTTP %d: %v", e.status, e.err) }
func (e *refusedError) Unwrap() error { return e.err }

// dialSignal opens the signaling WebSocket at url.
func dialSignal(ctx context.Context, url string) (*signalConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return nil, &refusedError{status: resp.StatusCode, err: err}
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(readLimit)
	return &signalConn{ws: ws}, nil
}

// send writes one frame.
func (c *signalConn) send(ctx context.Context, m outMsg) error {
	m.V = protocolVersion
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Type, err)
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write %s: %w", m.Type, err)
	}
	return nil
}

// recv reads the next frame. Cancelling ctx closes the connection
// (coder/websocket's rule), so the session passes one that teardown
// never cancels and closes the socket instead.
func (c *signalConn) recv(ctx context.Context) (inMsg, error) {
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return inMsg{}, err
	}
	var m inMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return inMsg{}, fmt.Errorf("server sent invalid JSON: %w", err)
	}
	return m, nil
}

// leave says goodbye and closes the socket with a normal closure; the
// server answers by closing too, which ends the session's recv.
func (c *signalConn) leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, leaveTimeout)
	defer cancel()
	_ = c.send(ctx, outMsg{Type: typeLeave})
	_ = c.ws.Close(websocket.StatusNormalClosure, "load run over")
}
