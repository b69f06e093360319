package audit

import (
	"context"
	"encoding/json"

	"github.com/invigil/invigil/room"
)

// RetryResult is what RetryDeadLetters did.
type RetryResult struct {
	// Retried dead letters; Delivered of them the endpoint accepted now
	// (and are no longer kept); Remaining are kept, those that failed
	// again and any added meanwhile.
	Retried   int `json:"retried"`
	Delivered int `json:"delivered"`
	Remaining int `json:"remaining"`
}

// RetryDeadLetters posts each dead letter once more, oldest first, signed
// and with its idempotency key as any delivery: those the endpoint
// accepts (2xx) stop being dead letters and count as delivered; the
// others stay as they were. It stops at ctx's end (what was accepted is
// resolved). A dead letter is an event past its room's cursor, so it
// comes after later events of its room: receivers order by seq and
// deduplicate by the idempotency key.
func (w *Webhook) RetryDeadLetters(ctx context.Context) (RetryResult, error) {
	var res RetryResult
	dead, err := w.cfg.Cursors.DeadLetters(ctx)
	if err != nil {
		return res, err
	}
	var done []DeadLetter
	for _, d := range dead {
		if ctx.Err() != nil {
			break
		}
		res.Retried++
		body, _ := json.Marshal(struct {
			Room  string     `json:"room"`
			Event room.Event `json:"event"`
		}{d.Room, d.Event})
		status, err := w.postCtx(ctx, d.Room, d.Event.Seq, body)
		if err != nil || status/100 != 2 {
			w.log.Warn("webhook dead letter retried, refused again", "room", d.Room, "seq", d.Event.Seq, "status", status, "err", err)
			continue
		}
		done = append(done, d)
		w.delivered.Add(1)
	}
	if len(done) > 0 {
		// Not ctx: what the endpoint took must stop being a dead letter.
		if err := w.cfg.Cursors.Resolve(context.WithoutCancel(ctx), done); err != nil {
			return res, err
		}
		w.log.Info("webhook dead letters delivered on retry", "delivered", len(done), "retried", res.Retried)
	}
	res.Delivered = len(done)
	left, err := w.cfg.Cursors.DeadLetters(context.WithoutCancel(ctx))
	if err != nil {
		return res, err
	}
	res.Remaining = len(left)
	return res, nil
}
