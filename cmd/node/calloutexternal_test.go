package main

import (
	"context"
	"crypto/ed25519"
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
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/signin"
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
    # The nodes serve end users' calls here, as this user.
    users: [{user: tally-users, password: tally-users-pw}]
    limits: { max_payload: 8192, max_subscriptions: 2064 }
    # Users' calls go straight to their user's node (docs/clustering.md).
    mappings: {"tally.v1.user.*.*": "tally.v1.u.{{partition(64,1)}}.{{wildcard(1)}}.{{wildcard(2)}}"}
    imports: [
      {stream: {account: TALLY, subject: "tally.v1.updates.*"}}
      {stream: {account: TALLY, subject: "tally.v1.updates.*.members"}, to: "tally.v1.member-updates.$1"}
    ]
  }
}
authorization {
  auth_callout {
    issuer: %s
    account: TALLY
    auth_users: [tally, tally-users, backend]
    allowed_accounts: [USERS]
  }
}
`

// startCalloutServer runs nats-server with config (externalCalloutConfig
// or one like it: its client address, store and callout issuer left to
// fill in) and returns its URL, the file of the callout issuer's seed and
// a back end's connection.
func startCalloutServer(t *testing.T, config string) (url, seedFile string, backend *nats.Conn) {
	t.Helper()
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
	seedFile = filepath.Join(dir, "callout-issuer.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, config, addr, filepath.Join(dir, "js"), issuerPub), 0o600); err != nil {
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
	url = "nats://" + addr
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
	return url, seedFile, backend
}

// TestSignInOnExternalServer runs a nats-server process whose auth
// callout points at tally's (--nats-url with --user-sig-key,
// --callout-issuer and the node's user in USERS): an end user signs in,
// calls and receives updates, a reply goes only to its caller's inbox, a
// back end keeps its own user, a forged signature is refused with its
// reason in the node's log, and a node whose user for USERS is in another
// account is refused.
func TestSignInOnExternalServer(t *testing.T) {
	url, seedFile, backend := startCalloutServer(t, externalCalloutConfig)

	keyFile, key := usersigtest.KeyFile(t)
	p := launchEnv(t, []string{"TALLY_NATS_PASSWORD=tally-pw", "TALLY_USERS_PASSWORD=tally-users-pw"}, "--name", "n1", "--nats-url", url, "--nats-user", "tally",
		"--user-sig-key", keyFile, "--callout-issuer", seedFile, "--users-user", "tally-users")
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

	replyGoesOnlyToCaller(t, url, key)

	parts := strings.Split(usersigtest.Mint(t, key, "alice", time.Hour), ".")
	if _, err := signInAt(t, url, "alice", parts[0]+"."+parts[1]+"x."+parts[2]); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("forged signature = %v, want %v", err, nats.ErrAuthorization)
	}
	awaitNodeLog(t, p, "sign-in refused", "does not verify")

	// A user of another account given for USERS: the node would serve
	// the user subjects of that account as end users' calls.
	refusedAt(t, []string{"TALLY_NATS_PASSWORD=tally-pw", "TALLY_USERS_PASSWORD=backend-pw"}, "is in account BACKEND: it must be in USERS",
		"--name", "n2", "--nats-url", url, "--nats-user", "tally", "--user-sig-key", keyFile, "--callout-issuer", seedFile, "--users-user", "backend")
}

// withSystemAccount adds to config a system account SYS whose user sys
// has permissions, which auth_callout lets through.
func withSystemAccount(t *testing.T, config, permissions string) string {
	t.Helper()
	out := strings.Replace(config, "accounts {", `system_account: SYS
accounts {
  SYS {
    users: [{user: sys, password: sys-pw, permissions: `+permissions+`}]
  }`, 1)
	out = strings.Replace(out, "auth_users: [tally, tally-users, backend]", "auth_users: [tally, tally-users, backend, sys]", 1)
	if !strings.Contains(out, "system_account") || !strings.Contains(out, "backend, sys]") {
		t.Fatal("no system account added to the configuration")
	}
	return out
}

// TestExternalStartChecksRefused runs a node on external servers where
// what it needs cannot be checked or does not work: its user for USERS
// may not ask the server which account it is in, its system account's
// user may not kick, or is no user of the system account, or may kick but
// not list subscriptions. It refuses to
// start each time, saying what to grant.
func TestExternalStartChecksRefused(t *testing.T) {
	keyFile, _ := usersigtest.KeyFile(t)
	args := func(url, seedFile string, extra ...string) []string {
		return append([]string{"--name", "n1", "--nats-url", url, "--nats-user", "tally", "--user-sig-key", keyFile, "--callout-issuer", seedFile,
			"--users-user", "tally-users"}, extra...)
	}
	env := []string{"TALLY_NATS_PASSWORD=tally-pw", "TALLY_USERS_PASSWORD=tally-users-pw"}

	users := `users: [{user: tally-users, password: tally-users-pw}]`
	config := strings.Replace(externalCalloutConfig, users,
		`users: [{user: tally-users, password: tally-users-pw, permissions: {publish: {deny: "$SYS.REQ.USER.INFO"}}}]`, 1)
	if config == externalCalloutConfig {
		t.Fatal("no permissions added to the configuration")
	}
	url, seedFile, _ := startCalloutServer(t, config)
	refusedAt(t, env, "could not check that the end users' account's user (--users-*) is in account USERS", args(url, seedFile)...)

	url, seedFile, _ = startCalloutServer(t, withSystemAccount(t, externalCalloutConfig, `{publish: "$SYS.REQ.SERVER.*.PING", subscribe: "_INBOX.>"}`))
	const cannotKick = "the system account's user (--sys-*) cannot kick connections"
	refusedAt(t, append(env, "TALLY_SYS_PASSWORD=sys-pw"), cannotKick, args(url, seedFile, "--sys-user", "sys")...)
	refusedAt(t, append(env, "TALLY_SYS_PASSWORD=backend-pw"), cannotKick, args(url, seedFile, "--sys-user", "backend")...)

	url, seedFile, _ = startCalloutServer(t, withSystemAccount(t, externalCalloutConfig, `{publish: "$SYS.REQ.SERVER.*.KICK", subscribe: "_INBOX.>"}`))
	refusedAt(t, append(env, "TALLY_SYS_PASSWORD=sys-pw"), "the system account's user (--sys-*) cannot list subscriptions", args(url, seedFile, "--sys-user", "sys")...)
}

// refusedAt runs a node with args and the variables env added, and
// checks that it exits at start with an error that says want.
func refusedAt(t *testing.T, env []string, want string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), want) {
		t.Errorf("node %v: %v, output %s; want it refused with %q", args, err, out, want)
	}
}

// TestExternalUsersImportRefused runs a configuration whose USERS
// imports the users' subjects from TALLY (a service import of
// tally.v1.u.>). The node refuses to start on it: it would
// serve each of their calls twice, once through the import, whose reply
// subject stands for any the caller chose.
func TestExternalUsersImportRefused(t *testing.T) {
	updates := `{stream: {account: TALLY, subject: "tally.v1.updates.*"}}`
	config := strings.Replace(externalCalloutConfig, updates, `{service: {account: TALLY, subject: "tally.v1.u.>"}}
      `+updates, 1)
	if config == externalCalloutConfig {
		t.Fatal("no import added to the configuration")
	}
	url, seedFile, _ := startCalloutServer(t, config)
	keyFile, _ := usersigtest.KeyFile(t)
	refusedAt(t, []string{"TALLY_NATS_PASSWORD=tally-pw", "TALLY_USERS_PASSWORD=tally-users-pw"}, "account USERS imports the user subjects",
		"--name", "n1", "--nats-url", url, "--nats-user", "tally", "--user-sig-key", keyFile, "--callout-issuer", seedFile, "--users-user", "tally-users")
}

// replyGoesOnlyToCaller has mallory, signed in at url with a signature
// of key, name other subjects as the reply of her calls: a group's
// updates, bob's inbox, an inbox whose name starts with bob's. Nothing
// reaches bob there and nothing is applied: her next call on her own inbox
// finds likes at 1, and the first messages bob gets are the update of his
// own increase and its reply. It serves the embedded server and an
// external one alike.
func replyGoesOnlyToCaller(t *testing.T, url string, key ed25519.PrivateKey) {
	t.Helper()
	mallory, err := signInAt(t, url, "mallory", usersigtest.Mint(t, key, "mallory", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := signInAt(t, url, "bob", usersigtest.Mint(t, key, "bob", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	updates, err := bob.nc.SubscribeSync("tally.v1.updates.hall")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := bob.nc.SubscribeSync("_INBOX_bob.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"groupID":"other","key":"likes","value":1}`)
	for _, reply := range []string{"tally.v1.updates.hall", "_INBOX_bob.x", "_INBOX_bobby.x"} {
		if err := mallory.nc.PublishRequest("tally.v1.user.mallory.increase", reply, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := mallory.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := mallory.nc.Request("tally.v1.user.mallory.increase", body, 5*time.Second)
	if err != nil || !strings.Contains(string(m.Data), `"value":1`) {
		t.Errorf("mallory's call on her inbox: %q, %v; want likes 1 (her calls with other replies unanswered, not applied)", msgData(m), err)
	}
	b, err := client.New(bob.nc, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.IncreaseGroupCounter(context.Background(), "hall", "likes", 1); err != nil {
		t.Fatal(err)
	}
	if m, err := updates.NextMsg(5 * time.Second); err != nil || !strings.Contains(string(m.Data), `"seq":1`) {
		t.Errorf("bob's first message on hall's updates: %q, %v; want the update of his increase", msgData(m), err)
	}
	if m, err := inbox.NextMsg(5 * time.Second); err != nil || !strings.Contains(string(m.Data), "hall") || strings.Contains(string(m.Data), "other") {
		t.Errorf("bob's first message on his inbox: %q, %v; want the reply of his increase", msgData(m), err)
	}
}

// msgData is a message's body, none for no message.
func msgData(m *nats.Msg) []byte {
	if m == nil {
		return nil
	}
	return m.Data
}

// TestExternalUsersFlagsRefused checks that a node on an external server
// that signs end users in is given its user in their account, and that
// the flags of that user and of a system account's are refused where they
// mean nothing.
func TestExternalUsersFlagsRefused(t *testing.T) {
	keyFile, _ := usersigtest.KeyFile(t)
	external := []string{"--nats-url", "nats://127.0.0.1:1", "--user-sig-key", keyFile, "--callout-issuer", keyFile}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no user in USERS", external, nil, "needs a user of the end users' account USERS"},
		{"a user without its password", append(external, "--users-user", "u"), nil, "a user needs a password"},
		{"two ways", append(external, "--users-user", "u", "--users-token", "x"), []string{"TALLY_USERS_PASSWORD=p"}, "give one of"},
		{"no external server", []string{"--user-sig-key", keyFile, "--users-user", "u"}, []string{"TALLY_USERS_PASSWORD=p"}, "are for --nats-url with --user-sig-key"},
		{"no sign-in", []string{"--nats-url", "nats://127.0.0.1:1", "--users-creds", keyFile}, nil, "are for --nats-url with --user-sig-key"},
		{"a system user without an external server", []string{"--user-sig-key", keyFile, "--sys-user", "s"}, []string{"TALLY_SYS_PASSWORD=p"}, "--sys-user, --sys-password and --sys-token are for --nats-url"},
		{"the node's own user for USERS", append(external, "--nats-user", "tally", "--users-user", "tally"), []string{"TALLY_NATS_PASSWORD=a", "TALLY_USERS_PASSWORD=b"}, "the end users' account's user (--users-*) is the node's own (--nats-*)"},
		{"a system user without its password", append(external, "--users-token", "x", "--sys-user", "s"), nil, "the system account's credentials (--sys-*): a user needs a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append([]string{"--data", t.TempDir()}, tt.args...)...)
			cmd.Env = append(os.Environ(), tt.env...)
			b, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("node %v still running after 20 s (err %v): %s", tt.args, err, b)
			}
			if code := cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(string(b), tt.want) {
				t.Errorf("node %v = exit %d, output %q; want a refusal mentioning %q", tt.args, code, b, tt.want)
			}
		})
	}
}

// TestExternalRemovedMemberDisconnected gives the node a user of the
// external server's system account (--sys-user): a user who signs in more
// often than her cap (signin.DefaultMaxConnsPerUser) has her oldest
// connections closed, with a line in the node's log, so that the node
// knows at most that many of hers; a member removed from a members-only
// group has every one of them closed, through the server's kick, and
// signs in again without the group's updates; a user who subscribes to
// every group's updates is closed and refused sign-in.
func TestExternalRemovedMemberDisconnected(t *testing.T) {
	// The node's user there may only kick connections.
	config := withSystemAccount(t, externalCalloutConfig, `{publish: ["$SYS.REQ.SERVER.*.KICK", "$SYS.REQ.SERVER.PING.SUBSZ"], subscribe: "_INBOX.>"}`)
	url, seedFile, backend := startCalloutServer(t, config)
	keyFile, key := usersigtest.KeyFile(t)
	p := launchEnv(t, []string{"TALLY_NATS_PASSWORD=tally-pw", "TALLY_USERS_PASSWORD=tally-users-pw", "TALLY_SYS_PASSWORD=sys-pw"},
		"--name", "n1", "--nats-url", url, "--nats-user", "tally", "--user-sig-key", keyFile, "--callout-issuer", seedFile,
		"--users-user", "tally-users", "--sys-user", "sys")
	p.serving(t)
	// First, while the node's log has room for its refusals (10 lines a
	// second), before the closings below.
	t.Run("every group's updates", func(t *testing.T) {
		checkWildcardsClosed(t, url, key, p, backend)
	})
	admin, err := client.NewAdmin(backend)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.AddGroupMembers(ctx, "club", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	members := contract.MemberUpdatesSubject("tally.v1", "club")
	const extra = 9
	var conns []*userConn
	for range signin.DefaultMaxConnsPerUser + extra {
		u, err := signInAt(t, url, "alice", usersigtest.Mint(t, key, "alice", time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, u)
	}
	for i, u := range conns[:extra] {
		select {
		case <-u.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("alice's connection %d of %d still open: the node should close her oldest beyond %d", i, len(conns), signin.DefaultMaxConnsPerUser)
		}
	}
	awaitNodeLog(t, p, "closed a user's oldest connection", "user=alice")
	conns = conns[extra:]
	for i, u := range conns {
		if _, err := u.nc.SubscribeSync(members); err != nil {
			t.Fatal(err)
		}
		if err := u.nc.Flush(); err != nil {
			t.Fatalf("alice's connection %d of her latest %d: %v", i, len(conns), err)
		}
	}
	if _, err := admin.RemoveGroupMembers(ctx, "club", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	for i, u := range conns {
		select {
		case <-u.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("alice's connection %d of %d still open 10 s after she was removed from club", i, len(conns))
		}
	}
	again, err := signInAt(t, url, "alice", usersigtest.Mint(t, key, "alice", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.nc.SubscribeSync(members); err != nil {
		t.Fatal(err)
	}
	again.refused(t, "subscribe", members)
}
