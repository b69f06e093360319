package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"path/filepath"
	"time"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/internal/httpapi"
)

// webhookFlags are the webhook outbox's settings (docs/operations.md,
// "Webhooks"); --webhook-url and --webhook-secret are in serve.go.
func webhookFlags(fs *flag.FlagSet, c *serveConfig) {
	fs.IntVar(&c.webhookMaxAttempts, "webhook-max-attempts", audit.DefaultWebhookMaxAttempts,
		"attempts at one webhook event before it is dead-lettered (kept, logged, counted) and its room's delivery moves on")
	fs.DurationVar(&c.webhookMaxDelay, "webhook-max-delay", audit.DefaultWebhookMaxDelay,
		"the longest wait between two attempts at one webhook event (the backoff doubles from 100 ms up to it)")
}

// validateWebhook checks the outbox's settings.
func (c serveConfig) validateWebhook() error {
	switch {
	case c.webhookMaxAttempts < 1:
		return errors.New("--webhook-max-attempts must be at least 1")
	case c.webhookMaxDelay < 100*time.Millisecond:
		return errors.New("--webhook-max-delay must be at least 100ms")
	}
	return nil
}

// openWebhook puts the webhook outbox in front of the trail: its
// cursors in Redis in cluster mode (shared, so a room that moves is
// delivered on from where it was), else under <data-dir>/webhook.
func (n *node) openWebhook() error {
	endpoint := audit.EndpointID(n.cfg.webhookURL)
	var cursors audit.Cursors
	if n.redis != nil {
		cursors = audit.NewRedisCursors(n.redis.Client(), n.redis.Prefix(), endpoint)
	} else {
		fc, err := audit.NewFileCursors(filepath.Join(n.cfg.dataDir, "webhook", endpoint))
		if err != nil {
			return err
		}
		cursors = fc
	}
	hook, err := audit.NewWebhook(audit.WebhookConfig{
		Store:       n.trail,
		URL:         n.cfg.webhookURL,
		Secret:      []byte(n.cfg.webhookSecret),
		Cursors:     cursors,
		MaxAttempts: n.cfg.webhookMaxAttempts,
		MaxDelay:    n.cfg.webhookMaxDelay,
		Logger:      n.log.With("component", "webhook"),
	})
	if err != nil {
		return err
	}
	n.onClose(func() { hook.Close() })
	n.webhook, n.trail = hook, hook
	return nil
}

// deadLetterRetryTimeout bounds one POST /v1/webhooks/dead-letters/retry
// (each dead letter is one POST of at most 5 s): what is left waits for
// the next call.
const deadLetterRetryTimeout = 60 * time.Second

// retryDeadLetters serves POST /v1/webhooks/dead-letters/retry to
// admins: every dead letter is posted once more; those the endpoint
// accepts are no longer kept. 404 without --webhook-url.
func (n *node) retryDeadLetters(w http.ResponseWriter, r *http.Request) {
	if n.webhook == nil {
		httpapi.Fail(w, httpapi.CodeNotFound, "no webhook is configured (--webhook-url)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), deadLetterRetryTimeout)
	defer cancel()
	res, err := n.webhook.RetryDeadLetters(ctx)
	if err != nil {
		n.log.Warn("webhook dead-letter retry", "err", err)
		httpapi.Fail(w, httpapi.CodeUnavailable, "the dead letters could not be read or updated; retry shortly")
		return
	}
	httpapi.WriteJSON(w, res)
}
