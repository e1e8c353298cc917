package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

// deployPasswords sets the passwords deploy/'s configurations read from the
// environment, for the test and the node processes it starts.
func deployPasswords(t *testing.T) map[string]string {
	pw := map[string]string{"tally-node": "node-secret", "alice": "alice-secret", "bob": "bob-secret", "backend": "backend-secret"}
	t.Setenv("TALLY_NODE_PASSWORD", pw["tally-node"])
	t.Setenv("ALICE_PASSWORD", pw["alice"])
	t.Setenv("BOB_PASSWORD", pw["bob"])
	t.Setenv("BACKEND_PASSWORD", pw["backend"])
	return pw
}

// deployCopy copies deploy/'s configuration files into a temporary
// directory, listening on a free port, and returns the copy of name.
func deployCopy(t *testing.T, name string) string {
	dir := t.TempDir()
	for _, f := range []string{name, "accounts.conf"} {
		b, err := os.ReadFile(filepath.Join("../../deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		conf := strings.Replace(string(b), "listen: 127.0.0.1:4222", "listen: 127.0.0.1:-1", 1)
		conf = strings.Replace(conf, "port: 4222", "listen: 127.0.0.1:-1", 1)
		conf = strings.Replace(conf, "store_dir: /var/lib/nats", "store_dir: "+filepath.Join(dir, "js"), 1)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, name)
}

// TestDeployExternal runs a node on a NATS server configured by
// deploy/nats-server.conf, the node authenticating with the credential
// variables, and checks the isolation the configuration promises.
func TestDeployExternal(t *testing.T) {
	pw := deployPasswords(t)
	opts, err := server.ProcessConfigFile(deployCopy(t, "nats-server.conf"))
	if err != nil {
		t.Fatalf("deploy/nats-server.conf: %v", err)
	}
	if !opts.NoSublistCache || opts.MaxPayload != 16<<10 || opts.MaxPending != 64<<20 {
		t.Errorf("deploy/nats-server.conf: subject cache off %v, max_payload %d, max_pending %d; want tally-node's settings", opts.NoSublistCache, opts.MaxPayload, opts.MaxPending)
	}
	opts.NoLog, opts.NoSigs = true, true
	s := journaltest.Start(t, opts)
	t.Setenv("TALLY_NATS_USER", "tally-node")
	t.Setenv("TALLY_NATS_PASSWORD", pw["tally-node"])
	p := startProc(t, "--nats-url", s.ClientURL())
	if strings.Contains(p.stderr.String(), pw["tally-node"]) {
		t.Errorf("the node logged its password:\n%s", p.stderr)
	}
	checkDeployIsolation(t, s.ClientURL(), pw)

	// A password in the URL works too, and is printed nowhere.
	os.Unsetenv("TALLY_NATS_USER")
	os.Unsetenv("TALLY_NATS_PASSWORD")
	withURL := startProc(t, "--name", "second", "--nats-url", strings.Replace(s.ClientURL(), "nats://", "nats://tally-node:"+pw["tally-node"]+"@", 1))
	if strings.Contains(withURL.url+withURL.stderr.String(), pw["tally-node"]) {
		t.Errorf("the node printed its password: serving on %s\n%s", withURL.url, withURL.stderr)
	}
}

// TestDeployEmbedded runs a node whose embedded server is configured by
// deploy/tally-embedded.conf, and checks the same isolation.
func TestDeployEmbedded(t *testing.T) {
	pw := deployPasswords(t)
	p := startProc(t, "--nats-config", deployCopy(t, "tally-embedded.conf"), "--data", t.TempDir())
	checkDeployIsolation(t, p.url, pw)
}

// checkDeployIsolation checks deploy/'s accounts on the server at url:
// alice acts only as herself, reaches no admin subject, reads neither bob's
// nor the back end's replies, reaches neither the journal nor the JetStream
// API, and a reply subject she names reaches nobody but her.
func checkDeployIsolation(t *testing.T, url string, pw map[string]string) {
	t.Helper()
	var mu sync.Mutex
	var refusals []string // the server's refusals of alice's subscriptions
	connect := func(user string) *nats.Conn {
		nc, err := nats.Connect(url, nats.UserInfo(user, pw[user]), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if user == "alice" {
				mu.Lock()
				refusals = append(refusals, err.Error())
				mu.Unlock()
			}
		}))
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	subscribe := func(nc *nats.Conn, subjects ...string) []*nats.Subscription {
		var subs []*nats.Subscription
		for _, subj := range subjects {
			sub, err := nc.SubscribeSync(subj)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		return subs
	}
	ctx := context.Background()
	quick := []client.Option{client.WithRetries(0), client.WithTimeout(500 * time.Millisecond)}
	aliceConn, bobConn, backendConn := connect("alice"), connect("bob"), connect("backend")
	alice, _ := client.New(aliceConn, "alice", quick...)
	bob, _ := client.New(bobConn, "bob", quick...)
	backend, _ := client.NewAdmin(backendConn, quick...)
	if v, err := alice.IncreaseGroupCounter(ctx, "g", "k", 3); err != nil || v != 3 {
		t.Fatalf("alice's increase = %d, %v", v, err)
	}

	// Reading bob's and the back end's replies, and the journal.
	snoop := []string{"_INBOX.>", "_INBOX_bob.>", "_INBOX_backend.>", "tally.journal.>", ">"}
	snoops := subscribe(aliceConn, snoop...)
	if _, err := bob.IncreaseGroupCounter(ctx, "g", "k", 1); err != nil {
		t.Fatalf("bob's increase: %v", err)
	}
	if _, err := backend.GetGroupCounters(ctx, "g"); err != nil {
		t.Fatalf("the back end's get: %v", err)
	}
	if err := aliceConn.Flush(); err != nil {
		t.Fatal(err)
	}
	// The refusals come as asynchronous errors.
	journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, subj := range snoop {
			if !slices.ContainsFunc(refusals, func(e string) bool {
				return strings.Contains(e, "Permissions Violation for Subscription to \""+subj+"\"")
			}) {
				return fmt.Errorf("alice may subscribe to %s", subj)
			}
		}
		return nil
	})
	for i, sub := range snoops {
		if m, err := sub.NextMsg(0); err == nil {
			t.Errorf("alice read %s on %s", m.Subject, snoop[i])
		}
	}

	// Acting as bob, as an admin, and on the journal and JetStream.
	impostor, _ := client.New(aliceConn, "bob", quick...)
	if _, err := impostor.IncreaseGroupCounter(ctx, "g", "k", 100); err == nil {
		t.Errorf("alice's connection acted as bob")
	}
	aliceAdmin, _ := client.NewAdmin(aliceConn, quick...)
	if err := aliceAdmin.DeleteGroupCounters(ctx, "g"); err == nil {
		t.Errorf("alice's connection reached the admin subjects")
	}
	for _, api := range []string{"$JS.API.INFO", "$JS.API.STREAM.PURGE.TALLY_JOURNAL", "$JS.API.STREAM.DELETE.TALLY_JOURNAL"} {
		if m, err := aliceConn.Request(api, nil, 500*time.Millisecond); err == nil && !strings.Contains(string(m.Data), `"error"`) {
			t.Errorf("alice's %s = %s", api, m.Data)
		}
	}
	if err := aliceConn.Publish("tally.journal.g", []byte("garbage")); err != nil {
		t.Fatal(err)
	}

	// Replies she directs at what bob and the back end read.
	targets := []string{"tally.v1.updates.g", "_INBOX_bob.x", "_INBOX_backend.x", "tally.v1.admin.delete"}
	reads := append(subscribe(bobConn, targets[:2]...), subscribe(backendConn, targets[0], targets[2])...)
	for _, reply := range targets {
		if err := aliceConn.PublishRequest("tally.v1.user.alice.get", reply, []byte(`{"groupID":"g"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// alice's next call is answered after those: by then their replies
	// reached whoever they reached.
	if got, err := alice.GetGroupCounters(ctx, "g"); err != nil || got["k"] != 4 {
		t.Errorf("alice's get = %v, %v; want k=4", got, err)
	}
	if got, err := backend.GetGroupCounters(ctx, "g"); err != nil || got["k"] != 4 {
		t.Errorf("the back end's get = %v, %v; want k=4 (nothing of alice's attempts applied)", got, err)
	}
	for _, nc := range []*nats.Conn{bobConn, backendConn} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range reads {
		if m, err := sub.NextMsg(0); err == nil {
			t.Errorf("a reply alice directed reached %s: %.80q", m.Subject, m.Data)
		}
	}
	if _, err := nats.Connect(url, nats.UserInfo("alice", "wrong")); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("connect with a wrong password = %v, want an authorization error", err)
	}
}
