package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/invigil/invigil/loadtest"
)

// load runs synthetic students and proctors against a node on this host
// and prints what they measured: a table, or one JSON object with --json.
// It fails when nobody connected.
func load(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c loadtest.Config
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:7880", "base URL of the node (loopback only; signaling goes to ws://…/v1/rtc)")
	fs.StringVar(&c.APISecret, "api-secret", "", "HS256 key the node's join tokens are signed with (or INVIGIL_API_SECRET)")
	dev := fs.Bool("dev", false, "sign with serve --dev's fixed development secret")
	fs.IntVar(&c.Rooms, "rooms", 1, "exam rooms")
	fs.IntVar(&c.StudentsPerRoom, "students-per-room", 25, "students in each room")
	fs.IntVar(&c.ProctorsPerRoom, "proctors-per-room", 1, "proctors in each room")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, fmt.Sprintf("the whole run, joins included (at most %s)", loadtest.MaxDuration))
	fs.DurationVar(&c.Ramp, "ramp", 5*time.Second, "students join spread over this time, after the proctors (the join storm)")
	fs.StringVar(&c.RoomPrefix, "room-prefix", "", "prefix of room names and identities (default: load-<random>-)")
	fs.BoolVar(&c.SingleLayer, "single-layer", false, "publish one video layer (640×360, 500 kb/s) instead of simulcast q+h")
	fs.DurationVar(&c.FocusEvery, "focus-every", loadtest.DefaultFocusEvery, "each proctor focuses the next student this often (0: never)")
	fs.StringVar(&c.Client, "client", loadtest.ClientLean, "lean: the load generator's own transport, one socket for everyone (Linux, root); pion: a pion PeerConnection per participant")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "the node's pid when it runs on this host: report its CPU time and RSS from /proc")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	cpuProfile := fs.String("cpu-profile", "", "write the load generator's own CPU profile to this file (go tool pprof)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error (to stderr)")
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := resolve(fs, ""); err != nil {
		return err
	}
	if *dev && c.APISecret == "" {
		c.APISecret = devSecret
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := c.Validate(); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := loadtest.Run(ctx, c)
	if res != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			if werr := enc.Encode(res); werr != nil {
				return werr
			}
		} else if werr := res.WriteText(stdout); werr != nil {
			return werr
		}
	}
	if errors.Is(err, loadtest.ErrNoneConnected) {
		return fmt.Errorf("nobody connected to %s", c.URL)
	}
	return err
}
