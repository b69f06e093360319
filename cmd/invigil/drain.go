package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/metrics"
)

// adminDrainHandler serves /drain on the admin listener: POST starts
// draining (no new rooms here, /readyz 503, the cluster places rooms
// elsewhere; running rooms go on), and both POST and GET answer the
// node's capacity, whose students and proctors say who is still there.
// The admin listener is loopback (or pod-local) and unauthenticated, as
// pprof on it is: whoever reaches it runs the node.
func adminDrainHandler(start func(), capacity metrics.CapacityFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			start()
		case http.MethodGet, http.MethodHead:
		default:
			w.Header().Set("Allow", "GET, POST")
			httpapi.Fail(w, httpapi.CodeMethodNotAllowed, "/drain takes GET or POST")
			return
		}
		metrics.CapacityHandler(capacity).ServeHTTP(w, r)
	})
}

// drainPoll is how often `invigil drain` asks whether the rooms are done.
const drainPoll = time.Second

// drain is `invigil drain`: it tells the node on this host (through its
// admin listener) to drain, then waits until every participant has left
// or --drain-timeout passes, and exits 0 either way: it is a Kubernetes
// preStop hook, and SIGTERM follows it (serve then closes what is left;
// its own drain counts from when this one began). With the node's
// environment (INVIGIL_ADMIN_ADDR, INVIGIL_DRAIN_TIMEOUT) it needs no
// flags.
func drain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin-addr", "127.0.0.1:6060", "the node's --admin-addr")
	wait := fs.Duration("drain-timeout", 0, "how long to wait for the rooms to end (0: do not wait); serve's own --drain-timeout counts from the same start")
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	if err := resolve(fs, ""); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*admin)
	if err != nil {
		return fmt.Errorf("--admin-addr: %w", err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/drain"
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	c, err := drainRequest(ctx, client, http.MethodPost, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "draining %s: %d students, %d proctors\n", c.NodeID, c.Students, c.Proctors)
	deadline := time.Now().Add(*wait)
	for c.Students+c.Proctors > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(drainPoll):
		}
		if c, err = drainRequest(ctx, client, http.MethodGet, url); err != nil {
			return err
		}
	}
	if n := c.Students + c.Proctors; n > 0 {
		fmt.Fprintf(stdout, "still %d participants after %s; stopping the node closes their sessions\n", n, *wait)
		return nil
	}
	fmt.Fprintln(stdout, "drained: every room has ended")
	return nil
}

func drainRequest(ctx context.Context, client *http.Client, method, url string) (metrics.Capacity, error) {
	var c metrics.Capacity
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return c, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return c, fmt.Errorf("drain: the node's admin listener: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("drain: %s %s: HTTP %d", method, url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return c, errors.Join(errors.New("drain: the node's answer"), err)
	}
	return c, nil
}
