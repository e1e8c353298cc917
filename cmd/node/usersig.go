package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tallyhq/tally/usersig"
)

const usersigUsage = `usage: tally-node usersig --key FILE --user ID [--ttl 24h]
       tally-node usersig keygen --out DIR

The first form prints a user signature for ID, signed with the private key
in FILE (PEM "PRIVATE KEY", Ed25519): the token an end user signs in with.
keygen writes a new key pair into DIR: user-sig.key (the private key, for
the back end that mints, mode 0600) and user-sig.pub (the public key, for
the nodes' --user-sig-key).
`

// Key files that keygen writes.
const (
	privateKeyFile = "user-sig.key"
	publicKeyFile  = "user-sig.pub"
)

// runUsersig runs tally-node usersig.
func runUsersig(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "keygen" {
		return runKeygen(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("tally-node usersig", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usersigUsage) }
	key := fs.String("key", "", "file holding the private key (PEM PRIVATE KEY, Ed25519)")
	user := fs.String("user", "", "the user ID to sign in")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the signature is valid (at most 720h)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usage("usersig: unexpected arguments %q", fs.Args())
	}
	if *key == "" || *user == "" {
		return usage("usersig: --key and --user are required")
	}
	data, err := os.ReadFile(*key)
	if err != nil {
		return fmt.Errorf("usersig: %w", err)
	}
	priv, err := usersig.ParsePrivateKey(data)
	if err != nil {
		return fmt.Errorf("usersig: %s: %w", *key, err)
	}
	sig, err := usersig.Mint(priv, *user, *ttl, time.Now())
	if err != nil {
		return usageError{fmt.Errorf("usersig: %w", err)}
	}
	_, err = fmt.Fprintln(stdout, sig)
	return err
}

// runKeygen writes a new key pair; it never overwrites a key.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tally-node usersig keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usersigUsage) }
	out := fs.String("out", "", "directory to write "+privateKeyFile+" and "+publicKeyFile+" into")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usage("usersig keygen: unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return usage("usersig keygen: --out is required")
	}
	pub, priv, err := usersig.GenerateKey()
	if err != nil {
		return err
	}
	pubPEM, err := usersig.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	privPEM, err := usersig.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("usersig keygen: %w", err)
	}
	keyPath, pubPath := filepath.Join(*out, privateKeyFile), filepath.Join(*out, publicKeyFile)
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("usersig keygen: %s exists; move it away first", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("usersig keygen: %w", err)
		}
	}
	if err := writeNew(keyPath, privPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %s (keep it secret: it signs sign-ins) and %s (for --user-sig-key)\n", keyPath, pubPath)
	return err
}

// writeNew writes data into a file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("usersig keygen: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("usersig keygen: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("usersig keygen: write %s: %w", path, err)
	}
	return nil
}
