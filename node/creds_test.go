package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/node"
)

// TestCredsFile runs a node on an operator-mode NATS server (decentralized
// JWT auth) with a credentials file, as --nats-creds gives it.
func TestCredsFile(t *testing.T) {
	dir := t.TempDir()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	account := func(js bool) (nkeys.KeyPair, string, string) {
		kp, _ := nkeys.CreateAccount()
		pub, _ := kp.PublicKey()
		claims := jwt.NewAccountClaims(pub)
		if js {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := claims.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		return kp, pub, token
	}
	_, sysPub, sysJWT := account(false)
	akp, apub, ajwt := account(true)
	creds := func(name string) string {
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		seed, _ := ukp.Seed()
		ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".creds")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	conf := filepath.Join(dir, "operator.conf")
	text := fmt.Sprintf("listen: 127.0.0.1:-1\noperator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: { %s: %s, %s: %s }\njetstream { store_dir: %q }\n",
		ojwt, sysPub, sysPub, sysJWT, apub, ajwt, filepath.Join(dir, "js"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s := journaltest.Start(t, opts)

	n := startNode(t, "", func(c *node.Config) {
		c.NATSURL, c.Credentials = s.ClientURL(), node.Credentials{CredsFile: creds("node")}
	})
	nc, err := nats.Connect(n.ClientURL(), nats.UserCredentials(creds("backend")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a, _ := client.NewAdmin(nc)
	if v, err := a.IncreaseGroupCounter(context.Background(), "g", "k", 1); err != nil || v != 1 {
		t.Errorf("increase through the node = %d, %v", v, err)
	}
}
