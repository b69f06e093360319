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
	"strings"
	"sync"
	"time"

	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/metrics"
	"github.com/invigil/invigil/room"
)

// drainState is a drain's deadline: when it passes, the participants
// still here are told to reconnect elsewhere (evacuate).
type drainState struct {
	mu    sync.Mutex
	timer *time.Timer // nil: no deadline pending
	at    time.Time
}

// maxDrainDeadline bounds a drain's deadline: longer than any exam.
const maxDrainDeadline = 24 * time.Hour

// setDrain turns draining on or off (via says who asked). With a
// deadline (> 0), the participants still here when it passes are sent
// away (evacuate); a later call replaces the deadline, and undraining
// cancels it.
func (n *node) setDrain(on bool, deadline time.Duration, via string) {
	n.drain.mu.Lock()
	if n.drain.timer != nil {
		n.drain.timer.Stop()
		n.drain.timer, n.drain.at = nil, time.Time{}
	}
	if on && deadline > 0 {
		var t *time.Timer
		t = time.AfterFunc(deadline, func() {
			n.drain.mu.Lock()
			current := n.drain.timer == t
			if current {
				n.drain.timer, n.drain.at = nil, time.Time{}
			}
			n.drain.mu.Unlock()
			if current {
				n.evacuate("drain deadline")
			}
		})
		n.drain.timer, n.drain.at = t, time.Now().Add(deadline)
	}
	n.health.SetDraining(on)
	n.rooms.SetDraining(on)
	if !on {
		n.drainedSince.Store(0)
	} else {
		n.drainedSince.CompareAndSwap(0, time.Now().UnixNano())
	}
	n.drain.mu.Unlock()
	n.log.Info("drain set", "draining", on, "deadline", deadline, "via", via)
}

// evacuate ends every session here with a leave "server_shutdown", the
// reason the SDK rejoins on (web/assets/sdk/signal.js, rejoinAfter), and
// closes the rooms on this node. Their placement is given up first, so
// the rejoin, through /v1/placement or any node, lands on a ready node,
// not back here. The rooms' trails follow them (the spool's hand-over).
func (n *node) evacuate(why string) {
	ended := n.rooms.Evacuate(room.ReasonShutdown, func(rooms []string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, r := range rooms {
			if err := n.cluster.Release(ctx, r, n.cfg.nodeID); err != nil {
				n.metrics.RedisError()
				n.log.Warn("drain: could not give up a room's placement; it moves when its lease lapses", "room", r, "err", err)
			}
		}
	})
	if ended > 0 {
		n.log.Info("participants sent to reconnect elsewhere", "sessions", ended, "why", why)
	}
}

// drainHandler serves POST (on) and DELETE (off) /v1/node/drain to
// admins, answering the node's capacity. POST takes an optional
// deadline, a duration ("90s", "10m"): in the query (?deadline=90s) or
// a JSON body ({"deadline": "90s"}).
func (n *node) drainHandler(on bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var deadline time.Duration
		if on {
			d, err := drainDeadline(r)
			if err != nil {
				httpapi.Fail(w, httpapi.CodeMalformed, err.Error())
				return
			}
			deadline = d
		}
		n.setDrain(on, deadline, "http")
		metrics.CapacityHandler(n.capacity).ServeHTTP(w, r)
	})
}

// drainDeadline reads POST /v1/node/drain's deadline: ?deadline= or a
// JSON body's "deadline"; 0 when neither is given.
func drainDeadline(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("deadline")
	if v == "" && r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Deadline string `json:"deadline"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return 0, errors.New("the body must be JSON: {\"deadline\": \"90s\"}")
		}
		v = body.Deadline
	}
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > maxDrainDeadline {
		return 0, errors.New("deadline must be a positive duration such as 90s or 10m, at most 24h")
	}
	return d, nil
}

// full says whether the node would refuse a new room now (/readyz 503):
// every seat taken, --max-rooms reached, or the trail's spool refusing
// events.
func (n *node) full() bool {
	s := n.rooms.Stats()
	return s.Students+s.Proctors >= n.cfg.maxPerNode || (n.cfg.maxRooms > 0 && s.Rooms >= n.cfg.maxRooms) || n.spoolFull()
}

// adminDrainHandler serves /drain on the admin listener: POST starts
// draining (no new rooms here, /readyz 503, the cluster places rooms
// elsewhere; running rooms go on), with ?deadline= as POST
// /v1/node/drain takes it, and both POST and GET answer the node's
// capacity, whose students and proctors say who is still there.
// The admin listener is loopback (or pod-local) and unauthenticated, as
// pprof on it is: whoever reaches it runs the node.
func adminDrainHandler(start func(deadline time.Duration), capacity metrics.CapacityFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			d, err := drainDeadline(r)
			if err != nil {
				httpapi.Fail(w, httpapi.CodeMalformed, err.Error())
				return
			}
			start(d)
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

// drainGrace is how long past its --drain-timeout `invigil drain` waits
// for the sessions the node sent away to close.
const drainGrace = 5 * time.Second

// drain is `invigil drain`: it tells the node on this host (through its
// admin listener) to drain with --drain-timeout as the deadline, then
// waits until every participant has left: at the deadline the node tells
// those still there to reconnect elsewhere (a leave "server_shutdown",
// on which clients rejoin through placement), so the command returns
// soon after it. It exits 0 either way: it is a Kubernetes preStop hook,
// and SIGTERM follows it (serve then closes what is left; its own drain
// counts from when this one began). With the node's
// environment (INVIGIL_ADMIN_ADDR, INVIGIL_DRAIN_TIMEOUT) it needs no
// flags.
func drain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin-addr", "127.0.0.1:6060", "the node's --admin-addr")
	wait := fs.Duration("drain-timeout", 0, "how long the rooms may go on before their participants are sent to reconnect elsewhere, waited for (0: neither); serve's own --drain-timeout counts from the same start")
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
	start := url
	if *wait > 0 {
		start += "?deadline=" + wait.String()
	}
	c, err := drainRequest(ctx, client, http.MethodPost, start)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "draining %s: %d students, %d proctors\n", c.NodeID, c.Students, c.Proctors)
	// The node sends those left away at the deadline; a few polls more
	// see them gone.
	deadline := time.Now().Add(*wait)
	if *wait > 0 {
		deadline = deadline.Add(drainGrace)
	}
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
