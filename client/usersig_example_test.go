package client_test

import (
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/usersig"
)

// A back end mints a user signature for alice with the app's private key;
// alice's app connects with it as its NATS token and her own inbox prefix.
func ExampleMintUserSig() {
	pub, priv, err := usersig.GenerateKey() // once; the node gets pub (--user-sig-key)
	if err != nil {
		log.Fatal(err)
	}
	sig, err := client.MintUserSig(priv, "alice", 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	_ = []nats.Option{nats.Token(sig), nats.CustomInboxPrefix("_INBOX_alice")}

	claims, err := usersig.Verify(pub, sig, time.Now()) // what the node checks
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.User, claims.Expires.Sub(claims.IssuedAt))
	// Output: alice 24h0m0s
}
