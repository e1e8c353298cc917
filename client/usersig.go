package client

import (
	"crypto/ed25519"
	"time"

	"github.com/tallyhq/tally/usersig"
)

// MintUserSig signs a user signature for userID, valid for ttl from now
// (at most 30 days), with the app's private key: what a back end gives an
// end user to sign in with (the NATS token of its connection; see
// usersig for the format).
func MintUserSig(key ed25519.PrivateKey, userID string, ttl time.Duration) (string, error) {
	return usersig.Mint(key, userID, ttl, time.Now())
}
