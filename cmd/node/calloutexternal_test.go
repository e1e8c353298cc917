package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/usersig/usersigtest"
)

var (
	natsServerOnce sync.Once
	natsServerBin  string
	natsServerErr  error
)

// natsServerBinary builds nats-server, the version tally depends on, once.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	natsServerOnce.Do(func() {
		natsServerBin = filepath.Join(filepath.Dir(binary), "nats-server")
		out, err := exec.Command("go", "build", "-o", natsServerBin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsServerErr = fmt.Errorf("build nats-server: %w\n%s", err, out)
		}
	})
	if natsServerErr != nil {
		t.Fatal(natsServerErr)
	}
	return natsServerBin
}

// externalCalloutConfig is the operator's configuration of docs/operations.md
// ("Sign-in on an existing NATS server"): the node's user in TALLY, which
// is the callout account, a back end's account, and USERS for end users.
const externalCalloutConfig = `
listen: %q
jetstream { store_dir: %q }
accounts {
  TALLY {
    jetstream: enabled
    users: [{user: tally, password: tally-pw}]
    exports: [
      {service: "tally.v1.user.>", response: singleton}
      {service: "tally.v1.u.>", response: singleton}
      {service: "tally.v1.admin.>", response: singleton}
      {service: "$SRV.>", response: stream}
      {stream: "tally.v1.updates.>"}
    ]
  }
  BACKEND {
    users: [{user: backend, password: backend-pw}]
    mappings: {"tally.v1.user.*.*": "tally.v1.u.{{partition(64,1)}}.{{wildcard(1)}}.{{wildcard(2)}}"}
    imports: [
      {service: {account: TALLY, subject: "tally.v1.u.>"}}
      {service: {account: TALLY, subject: "tally.v1.admin.>"}}
      {stream: {account: TALLY, subject: "tally.v1.updates.>"}}
    ]
  }
  USERS {
    limits: { max_payload: 8192, max_subscriptions: 2064 }
    # Users' calls go straight to their user's node (docs/clustering.md).
    mappings: {"tally.v1.user.*.*": "tally.v1.u.{{partition(64,1)}}.{{wildcard(1)}}.{{wildcard(2)}}"}
    imports: [
      {service: {account: TALLY, subject: "tally.v1.u.>"}}
      {stream: {account: TALLY, subject: "tally.v1.updates.*"}}
      {stream: {account: TALLY, subject: "tally.v1.updates.*.members"}, to: "tally.v1.member-updates.$1"}
    ]
  }
}
authorization {
  auth_callout {
    issuer: %s
    account: TALLY
    auth_users: [tally, backend]
    allowed_accounts: [USERS]
  }
}
`

// TestSignInOnExternalServer runs a nats-server process whose auth
// callout points at tally's (--nats-url with --user-sig-key and
// --callout-issuer): an end user signs in, calls and receives updates, a
// back end keeps its own user, and a forged signature is refused with its
// reason in the node's log.
func TestSignInOnExternalServer(t *testing.T) {
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, err := issuer.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := issuer.Seed()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "callout-issuer.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, externalCalloutConfig, addr, filepath.Join(dir, "js"), issuerPub), 0o600); err != nil {
		t.Fatal(err)
	}
	server := exec.Command(natsServerBinary(t), "-c", conf)
	var serverLog syncBuffer
	server.Stdout, server.Stderr = &serverLog, &serverLog
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Process.Kill()
		server.Wait()
		if t.Failed() {
			t.Logf("nats-server log:\n%s", &serverLog)
		}
	})
	url := "nats://" + addr
	var backend *nats.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if backend, err = nats.Connect(url, nats.UserInfo("backend", "backend-pw")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(backend.Close)

	keyFile, key := usersigtest.KeyFile(t)
	p := launchEnv(t, []string{"TALLY_NATS_PASSWORD=tally-pw"}, "--name", "n1", "--nats-url", url, "--nats-user", "tally",
		"--user-sig-key", keyFile, "--callout-issuer", seedFile)
	p.serving(t)

	u, err := signInAt(t, url, "alice", usersigtest.Mint(t, key, "alice", time.Hour))
	if err != nil {
		t.Fatalf("alice signs in on the external server: %v", err)
	}
	alice, err := client.New(u.nc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan client.Update, 10)
	if _, err := alice.OnGroupCounterUpdated("room", func(up client.Update) { updates <- up }); err != nil {
		t.Fatal(err)
	}
	admin, err := client.NewAdmin(backend)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.IncreaseGroupCounter(ctx, "room", "likes", 5); err != nil {
		t.Fatalf("back end's increase: %v", err)
	}
	if v, err := alice.IncreaseGroupCounter(ctx, "room", "likes", 1); err != nil || v != 6 {
		t.Errorf("alice's increase = %d, %v; want 6", v, err)
	}
	for want := int64(5); want <= 6; want++ {
		select {
		case up := <-updates:
			if up.Value != want {
				t.Errorf("alice's update %+v, want likes %d", up, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("alice received no update with likes %d", want)
		}
	}
	if err := u.nc.PublishRequest("tally.v1.admin.set", "_INBOX_alice.x", []byte(`{"groupID":"room","counters":{"likes":0}}`)); err != nil {
		t.Fatal(err)
	}
	u.refused(t, "publish", "tally.v1.admin.set")
	if got, err := admin.GetGroupCounters(ctx, "room"); err != nil || got["likes"] != 6 {
		t.Errorf("room after alice's admin set = %v, %v; want likes 6", got, err)
	}

	parts := strings.Split(usersigtest.Mint(t, key, "alice", time.Hour), ".")
	if _, err := signInAt(t, url, "alice", parts[0]+"."+parts[1]+"x."+parts[2]); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("forged signature = %v, want %v", err, nats.ErrAuthorization)
	}
	awaitNodeLog(t, p, "sign-in refused", "does not verify")
}
