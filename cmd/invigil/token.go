package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

// token mints a join token and prints it alone on the last line.
func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	roomName := fs.String("room", "", "room the token admits to (* for an admin token)")
	identity := fs.String("identity", "", "the participant's identity (sub claim)")
	role := fs.String("role", "student", "student, proctor or admin")
	record := fs.Bool("record", false, "ask the node to record this student (the token's record claim)")
	name := fs.String("name", "", "display name (defaults to the identity)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	require := fs.String("require", "", "comma-separated sources a student must publish to be admitted: camera, microphone, screen (default camera)")
	secret := fs.String("api-secret", "", "HS256 key shared with serve (or INVIGIL_API_SECRET)")
	device := fs.String("device", "", "a student's additional device, e.g. phone: it joins beside the main session")
	dev := fs.Bool("dev", false, "sign with serve --dev's fixed development secret")
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	if err := resolve(fs, ""); err != nil {
		return err
	}
	key := *secret
	if *dev && key == "" {
		key = devSecret
	}
	if key == "" {
		return fmt.Errorf("--api-secret (or INVIGIL_API_SECRET) is required, or --dev")
	}
	if *roomName == "" || *identity == "" {
		return fmt.Errorf("--room and --identity are required")
	}
	r, err := room.ParseRole(*role)
	if err != nil {
		return err
	}
	spec := signaling.TokenSpec{Room: *roomName, Identity: *identity, Role: r, Name: *name, TTL: *ttl, Record: *record, Device: *device}
	if *require != "" {
		spec.Require = strings.Split(*require, ",")
	}
	tok, err := signaling.MintToken([]byte(key), spec)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func usageErr(err error) error {
	if err == flag.ErrHelp {
		return err
	}
	return errUsage
}
