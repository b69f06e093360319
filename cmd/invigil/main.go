// Command invigil is the Invigil media server and its tools.
//
//	invigil serve     run a node
//	invigil token     mint a join token
//	invigil drain     drain the node on this host (a preStop hook)
//	invigil verify    check recordings against their signed manifests
//	invigil version   print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: invigil <command> [flags]

commands:
  serve     run an Invigil node (invigil serve --dev for a local demo)
  token     mint a join token for a student, proctor or admin
  load      run synthetic students and proctors against a node on this host
  drain     tell the node on this host to take no new rooms; wait for its rooms to end
  verify    check recordings against their signed manifests (exit 1 if any differ)
  version   print the version

Run 'invigil <command> -h' for a command's flags. Every flag can also be set
as INVIGIL_<NAME> (upper case, dashes as underscores) or in the YAML file
given to serve by --config.
`

// run is main without os.Exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		tuneGC()
		err = serve(ctx, args[1:], stdout, stderr)
	case "token":
		err = token(args[1:], stdout, stderr)
	case "load":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = load(ctx, args[1:], stdout, stderr)
	case "drain":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = drain(ctx, args[1:], stdout, stderr)
	case "verify":
		err = verify(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "invigil: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "invigil %s: %v\n", args[0], err)
	return 1
}

// errUsage means the flags were wrong; the FlagSet already said how.
var errUsage = errors.New("usage")
