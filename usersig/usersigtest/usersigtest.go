// Package usersigtest makes user signature keys and signatures for tests:
// a public key file for a node's --user-sig-key, and signatures minted with
// its private key.
package usersigtest

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyhq/tally/usersig"
)

// KeyFile writes a new public key into a temporary directory and returns
// its path and the private key that mints for it.
func KeyFile(t testing.TB) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := usersig.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user-sig.pub")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, priv
}

// Mint signs a signature for user, valid for ttl from now.
func Mint(t testing.TB, key ed25519.PrivateKey, user string, ttl time.Duration) string {
	t.Helper()
	sig, err := usersig.Mint(key, user, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
