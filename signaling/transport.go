package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

// A session's transport: the reader, writer and pinger of its WebSocket,
// and the bounded outbound queue between the session and the writer.

func (s *session) readLoop(ctx context.Context) error {
	var lastLimited time.Time
	for {
		typ, b, err := s.conn.Read(ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// coder/websocket has closed with 1009 already.
				s.srv.obs.Refused(CodeTooLarge)
				s.log.Debug("frame over the read limit; connection closed", "limit", MaxFrameBytes)
			}
			return err
		}
		if limited := s.limited(); limited != "" {
			// Dropped unread. One error a second at most: answering each
			// dropped frame would let a flood double itself.
			s.srv.obs.Refused(CodeRateLimited)
			if now := time.Now(); now.Sub(lastLimited) >= time.Second {
				lastLimited = now
				s.reject(protoErr(CodeRateLimited, "%s; messages are being dropped", limited), "")
			}
			continue
		}
		if typ != websocket.MessageText {
			s.reject(protoErr(CodeMalformed, "frames must be text (JSON)"), "")
			continue
		}
		s.handle(b)
	}
}

// limited says why a frame that just arrived must be dropped: this
// connection's message rate, or its address's, all connections together.
// "" lets it through.
func (s *session) limited() string {
	if !s.msgs.Allow() {
		return fmt.Sprintf("more than %.0f messages a second on this connection", s.srv.cfg.Limits.MsgRate)
	}
	if s.addrMsgs != nil && !s.addrMsgs.Allow() {
		return fmt.Sprintf("more than %.0f messages a second from your address", s.srv.cfg.Limits.MsgRatePerIP)
	}
	return ""
}

func (s *session) writeLoop(ctx context.Context) error {
	for {
		select {
		case b := <-s.out:
			if err := s.write(ctx, b); err != nil {
				return err
			}
		case req := <-s.endCh:
			// What was queued before the end still goes out, in order.
			for flushed := false; !flushed; {
				select {
				case b := <-s.out:
					if err := s.write(ctx, b); err != nil {
						return err
					}
				default:
					flushed = true
				}
			}
			if req.frame != nil {
				if err := s.write(ctx, req.frame); err != nil {
					return err
				}
			}
			s.conn.Close(req.status, req.text)
			return errSessionEnded
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *session) write(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, s.srv.cfg.WriteTimeout)
	defer cancel()
	return s.conn.Write(wctx, websocket.MessageText, b)
}

func (s *session) pingLoop(ctx context.Context) error {
	t := time.NewTicker(s.srv.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, s.srv.cfg.PingTimeout)
			err := s.conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		}
	}
}

// send queues v for the client. A client whose queue is full is too slow
// to keep up with its room and is dropped.
func (s *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode message", "err", err)
		return
	}
	select {
	case s.out <- b:
	default:
		s.reject(protoErr(CodeSlowConsumer, "outbound queue of %d messages overflowed", outQueue), "")
	}
}
