package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/invigil/invigil/record"
)

const (
	// keysFetchTimeout bounds fetching a keyring from a URL.
	keysFetchTimeout = 10 * time.Second
	// maxKeyringBytes bounds a keyring file or response: a key is ~200
	// bytes, so this is thousands of nodes' keys.
	maxKeyringBytes = 1 << 20
)

// keySources is the repeatable --keys flag.
type keySources []string

func (k *keySources) String() string     { return strings.Join(*k, ",") }
func (k *keySources) Set(v string) error { *k = append(*k, v); return nil }

// errNotIntact is a verification that found differences; they are
// printed, one a line.
var errNotIntact = errors.New("recordings differ from their signed manifests")

// verify is `invigil verify [--keys FILE|URL]... PATH...`: it checks
// each manifest's signature against keys it trusts (never one the
// manifest names or carries itself) and every listed file's size and
// SHA-256, offline but for fetching keys from a URL. Exit 0 when every
// recording is intact, 1 otherwise, 2 for a usage error.
func verify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: invigil verify [--keys FILE|URL]... [--recording-key KEY | --api-secret SECRET] PATH...

Checks recordings against their signed manifests. PATH is a manifest
(<session>.manifest.json) or a directory, searched for manifests (a
student's directory, a room's, the whole recordings directory). Each
manifest's signature must verify with a key from --keys, and each file it
lists must be there with its size and SHA-256. One line per problem; exit
0 when all are intact, 1 otherwise.

`)
		fs.PrintDefaults()
	}
	var keys keySources
	fs.Var(&keys, "keys", "trusted public keys: a keyring JSON file, or an http(s) URL such as https://NODE/v1/recordings/keys (repeatable)")
	hmacKey := fs.String("recording-key", "", "HMAC key of version-1 manifests (recorded before Ed25519 signing)")
	apiSecret := fs.String("api-secret", "", "the API secret, to derive the default HMAC key of version-1 manifests")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if err := resolve(fs, ""); err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	trust := record.Trust{}
	switch {
	case *hmacKey != "":
		trust.HMACKey = []byte(*hmacKey)
	case *apiSecret != "":
		trust.HMACKey = derivedManifestKey(*apiSecret)
	}
	if len(keys) == 0 && trust.HMACKey == nil {
		fmt.Fprintln(stderr, "invigil verify: give the keys to trust: --keys FILE|URL (and --recording-key or --api-secret for version-1 manifests)")
		return errUsage
	}
	var rings []*record.Keyring
	for _, src := range keys {
		ring, err := loadKeyring(src)
		if err != nil {
			return err
		}
		rings = append(rings, ring)
	}
	trust.Keys = record.MergeKeyrings(rings...)

	checked, bad := 0, 0
	for _, arg := range fs.Args() {
		paths, err := manifestPaths(arg)
		if err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", arg, err)
			bad++
			continue
		}
		if len(paths) == 0 {
			fmt.Fprintf(stdout, "%s: no manifest (*%s) found\n", arg, record.ManifestSuffix)
			bad++
			continue
		}
		for _, p := range paths {
			checked++
			m, problems := record.VerifyFile(p, trust)
			if len(problems) == 0 {
				by := "key " + m.KeyID
				if m.Version == 1 {
					by = "HMAC"
				}
				fmt.Fprintf(stdout, "ok %s: %d files, signed by %s\n", p, len(m.Files), by)
				continue
			}
			bad++
			for _, pr := range problems {
				fmt.Fprintf(stdout, "%s: %s\n", p, pr)
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d", errNotIntact, bad, max(checked, bad))
	}
	return nil
}

// loadKeyring reads trusted keys from a file or an http(s) URL.
func loadKeyring(src string) (*record.Keyring, error) {
	var b []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		b, err = fetchKeyring(src)
	} else {
		var f *os.File
		if f, err = os.Open(src); err == nil {
			b, err = io.ReadAll(io.LimitReader(f, maxKeyringBytes))
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keys %s: %w", src, err)
	}
	ring, err := record.ParseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("keys %s: %w", src, err)
	}
	return ring, nil
}

func fetchKeyring(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), keysFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxKeyringBytes))
}

// manifestPaths is arg when it is a file, else the manifests under it.
func manifestPaths(arg string) ([]string, error) {
	st, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{arg}, nil
	}
	var out []string
	err = filepath.WalkDir(arg, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(p, record.ManifestSuffix) {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
