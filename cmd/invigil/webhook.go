package main

import (
	"errors"
	"flag"
	"path/filepath"
	"time"

	"github.com/invigil/invigil/audit"
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
