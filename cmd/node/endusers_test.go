package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/node/nodetest"
	"github.com/tallyhq/tally/usersig"
	"github.com/tallyhq/tally/usersig/usersigtest"
)

// endUserNode is a node process that takes end users over WebSocket.
type endUserNode struct {
	p   *proc
	ws  string // ws://host:port
	key ed25519.PrivateKey
}

// startEndUserNode starts a node with a WebSocket listener without TLS on
// 127.0.0.1 and a user signature key.
func startEndUserNode(t *testing.T, extra ...string) *endUserNode {
	t.Helper()
	keyFile, key := usersigtest.KeyFile(t)
	ws := freeAddr(t)
	args := append([]string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--websocket", ws, "--websocket-no-tls", "--user-sig-key", keyFile}, extra...)
	return &endUserNode{p: startProc(t, args...), ws: "ws://" + ws, key: key}
}

// userConn is an end user's connection and the permission violations the
// server reported on it.
type userConn struct {
	nc         *nats.Conn
	violations chan error
	closed     chan struct{}
}

// signInAt connects to url (ws:// or nats://) with token as the user
// signature and user's inbox prefix, without reconnecting, and only there:
// refused, the client would otherwise go on to the other servers of a
// cluster (those the first one's INFO named), and their nodes' logs would
// show its refusals too.
func signInAt(t *testing.T, url, user, token string) (*userConn, error) {
	t.Helper()
	u := &userConn{violations: make(chan error, 100), closed: make(chan struct{})}
	opts := []nats.Option{nats.CustomInboxPrefix("_INBOX_" + user), nats.NoReconnect(), nats.IgnoreDiscoveredServers(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { u.violations <- err }),
		nats.ClosedHandler(func(*nats.Conn) { close(u.closed) })}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	var err error
	if u.nc, err = nats.Connect(url, opts...); err != nil {
		return nil, err
	}
	t.Cleanup(u.nc.Close)
	return u, nil
}

// refusedSignIn checks that a sign-in failed. Over WebSocket the server
// may close the connection before the client reads its authorization
// violation (the client then reports a broken pipe): the node's log says
// why, which the callers check.
func refusedSignIn(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: signed in", what)
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Logf("%s: %v (not the authorization violation: the connection closed first)", what, err)
	}
}

// refused waits for the server's permissions violation naming subject.
func (u *userConn) refused(t *testing.T, what, subject string) {
	t.Helper()
	if err := u.nc.Flush(); err != nil {
		t.Fatalf("%s %s: flush: %v", what, subject, err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-u.violations:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), fmt.Sprintf("%q", subject)) {
				return
			}
		case <-deadline:
			t.Errorf("%s %s: no permissions violation", what, subject)
			return
		}
	}
}

// TestEndUserOverWebSocket signs alice in over WebSocket and TCP: her
// calls are answered and she receives an open group's updates; a
// WebSocket client without credentials is refused (never the node's
// no-credentials user); a signature that expires while connected ends the
// connection.
func TestEndUserOverWebSocket(t *testing.T) {
	n := startEndUserNode(t)
	ctx := context.Background()
	for _, url := range []string{n.ws, n.p.url} {
		u, err := signInAt(t, url, "alice", usersigtest.Mint(t, n.key, "alice", time.Hour))
		if err != nil {
			t.Fatalf("alice signs in on %s: %v", url, err)
		}
		alice, err := client.New(u.nc, "alice")
		if err != nil {
			t.Fatal(err)
		}
		updates := make(chan client.Update, 10)
		unsubscribe, err := alice.OnGroupCounterUpdated("room", func(up client.Update) { updates <- up })
		if err != nil {
			t.Fatal(err)
		}
		v, err := alice.IncreaseGroupCounter(ctx, "room", "likes", 1)
		if err != nil {
			t.Fatalf("alice's increase on %s: %v", url, err)
		}
		select {
		case up := <-updates:
			if up.Key != "likes" || up.Value != v {
				t.Errorf("update %+v, want likes = %d", up, v)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no update of room on %s", url)
		}
		unsubscribe()
	}

	_, err := signInAt(t, n.ws, "anyone", "")
	refusedSignIn(t, "WebSocket without credentials", err)
	awaitNodeLog(t, n.p, "sign-in refused", "no user signature", "type=websocket")

	u, err := signInAt(t, n.ws, "brief", usersigtest.Mint(t, n.key, "brief", 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	u.awaitExpired(t, "a 2 s signature")
}

// awaitExpired waits, at most 10 s, for the server to close u's connection
// saying that its authentication expired.
func (u *userConn) awaitExpired(t *testing.T, what string) {
	t.Helper()
	select {
	case <-u.closed:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: connection still open after 10 s", what)
		return
	}
	// The client reports the server's error before it reports the close.
	for {
		select {
		case err := <-u.violations:
			if errors.Is(err, nats.ErrAuthExpired) {
				return
			}
		default:
			t.Errorf("%s: connection closed (%v) without the server's authentication expired", what, u.nc.LastError())
			return
		}
	}
}

// TestHostileEndUser acts as mallory, who has a valid signature, over
// WebSocket and TCP: every subject that is not hers is refused and
// nothing changes; subscribing to every update reaches no members-only
// group's. Bad signatures are refused, each with its reason in the node's
// log.
func TestHostileEndUser(t *testing.T) {
	n := startEndUserNode(t)
	ctx := context.Background()
	backend := journaltest.ConnectURL(t, n.p.url) // the no-credentials account: a back end
	admin, err := client.NewAdmin(backend)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetGroupCounters(ctx, "g", map[string]int64{"k": 1}); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{n.ws, n.p.url} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			u, err := signInAt(t, url, "mallory", usersigtest.Mint(t, n.key, "mallory", time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			checkHostileSubjects(t, u, func(s string) string { return s })
		})
	}
	checkWildcardsClosed(t, n.ws, n.key, n.p, backend)
	t.Run("flood of refused replies", func(t *testing.T) { checkViolationFlood(t, n) })
	if got, err := admin.GetGroupCounters(ctx, "g"); err != nil || got["k"] != 1 {
		t.Errorf("g after mallory = %v, %v; want k 1, unchanged", got, err)
	}

	defer t.Run("flood of bad sign-ins", func(t *testing.T) { checkLogFlood(t, n) })
	for _, tt := range badSignatures(t, n.key) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signInAt(t, n.ws, "mallory", tt.token)
			refusedSignIn(t, "sign in over WebSocket", err)
			if tt.token == "" {
				// Over TCP, no credentials is the node's no-credentials
				// user, as without --user-sig-key; over WebSocket, never.
				awaitNodeLog(t, n.p, "sign-in refused", tt.reason, "type=websocket")
				return
			}
			awaitNodeLog(t, n.p, "sign-in refused", tt.reason, "type=websocket")
			_, err = signInAt(t, n.p.url, "mallory", tt.token)
			refusedSignIn(t, "sign in over TCP", err)
			awaitNodeLog(t, n.p, "sign-in refused", tt.reason, "type=nats")
		})
	}
}

// hostilePublishes are subjects a signed-in user, mallory, may not
// publish on: another user's calls (as they are, and on a partition's
// subject), admin, the node's internal and journal subjects, JetStream's
// API, the system account's, the micro service's, another's inbox.
var hostilePublishes = []string{"tally.v1.user.alice.increase", "tally.v1.u.0.alice.increase", "tally.v1.admin.set", "tally.v1.admin.delete",
	"tally.internal.x", "tally.journal.g", "$JS.API.INFO", "$JS.API.STREAM.PURGE.TALLY_JOURNAL", "$SYS.REQ.SERVER.PING", "$SRV.PING", "_INBOX_alice.x"}

// hostileSubscribes are subjects mallory may not subscribe to: another's
// inbox, every inbox, a members-only group's updates (g: she is no
// member), admin, every user's calls, internal, journal, JetStream's API,
// the system account's, the micro service's, everything.
var hostileSubscribes = []string{"_INBOX_alice.>", "_INBOX.>", "tally.v1.updates.g.members", "tally.v1.member-updates.g",
	"tally.v1.member-updates.>", "tally.v1.admin.>", "tally.v1.user.>", "tally.v1.u.>", "tally.internal.>", "tally.journal.>",
	"$JS.API.>", "$SYS.>", "$SRV.>", ">"}

// checkHostileSubjects publishes, as u (mallory), a call that would raise
// g's k on every subject of hostilePublishes and subscribes to every one
// of hostileSubscribes, and waits for each one's permissions violation.
// checked is the subject the server checks a publish on: a cluster maps a
// user's call to its partition's subject (partitioned).
func checkHostileSubjects(t *testing.T, u *userConn, checked func(string) string) {
	t.Helper()
	body := []byte(`{"groupID":"g","key":"k","value":100,"counters":{"k":100}}`)
	for _, subject := range hostilePublishes {
		if err := u.nc.PublishRequest(subject, "_INBOX_mallory.r", body); err != nil {
			t.Fatal(err)
		}
		u.refused(t, "publish", checked(subject))
	}
	for _, subject := range hostileSubscribes {
		sub, err := u.nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		u.refused(t, "subscribe", subject)
		sub.Unsubscribe()
	}
}

// badSignature is a signature the nodes refuse, and the reason they log.
type badSignature struct{ name, token, reason string }

// badSignatures are mallory's signatures that key's nodes refuse: expired,
// forged (alice's claims under mallory's signature), by another key,
// unsigned (alg none), none at all.
func badSignatures(t *testing.T, key ed25519.PrivateKey) []badSignature {
	t.Helper()
	_, other, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := strings.Split(usersigtest.Mint(t, key, "mallory", time.Hour), ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"alice","aud":"tally","exp":%d}`, time.Now().Add(time.Hour).Unix())))
	expired, err := usersig.Mint(key, "mallory", time.Minute, time.Now().Add(-2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return []badSignature{
		{"expired", expired, "expired"},
		{"forged", good[0] + "." + forged + "." + good[2], "does not verify"},
		{"other key", usersigtest.Mint(t, other, "mallory", time.Hour), "does not verify"},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + forged + ".", "not EdDSA"},
		{"no token", "", "no user signature"},
	}
}

// checkLogFlood signs in with a bad signature 200 times and checks that
// the node's log grew by at most the lines its limits allow for the
// flood's duration: 10 refusals and 20 lines of the server a second.
func checkLogFlood(t *testing.T, n *endUserNode) {
	t.Helper()
	count := func(s string) int { return strings.Count(n.p.stderr.String(), s) }
	refused, server := count("sign-in refused"), count("authentication error")
	start := time.Now()
	for range 200 {
		if _, err := signInAt(t, n.p.url, "mallory", "not-a-signature"); err == nil {
			t.Fatal("signed in with a bad signature")
		}
	}
	seconds := int(time.Since(start)/time.Second) + 2
	if got := count("sign-in refused") - refused; got > 10*seconds {
		t.Errorf("%d refusals logged during a flood of %d s, want at most %d", got, seconds-1, 10*seconds)
	}
	if got := count("authentication error") - server; got > 20*seconds {
		t.Errorf("%d server lines during a flood of %d s, want at most %d", got, seconds-1, 20*seconds)
	}
}

// checkWildcardsClosed signs in two users on the node of p at url, who
// subscribe to every open group's updates (the second in a queue group), as their grant of
// tally.v1.updates.* lets them (NATS cannot tell such a subscription from
// one group's): the node closes their connections and refuses their
// sign-ins, on every node of ps, and neither receives a members-only
// group's update, which backend, on their server, publishes meanwhile.
func checkWildcardsClosed(t *testing.T, url string, key ed25519.PrivateKey, p *proc, backend *nats.Conn, ps ...*proc) {
	t.Helper()
	for i, subject := range []string{"tally.v1.updates.>", "tally.v1.updates.*"} {
		user := fmt.Sprintf("peeker%d", i)
		all := append([]*proc{p}, ps...)
		froms := make([]int, len(all))
		for j, q := range all {
			froms[j] = q.stderr.Len()
		}
		u, err := signInAt(t, url, user, usersigtest.Mint(t, key, user, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// The second in a queue group, which NATS lists apart.
		sub, err := u.nc.QueueSubscribeSync(subject, []string{"", "q"}[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := u.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := backend.Publish("tally.v1.updates.secret.members", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-u.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s subscribed to %s: connection still open after 5 s", user, subject)
		}
		for {
			m, err := sub.NextMsg(0)
			if err != nil {
				break
			}
			if strings.HasSuffix(m.Subject, ".members") {
				t.Errorf("%s received %s", user, m.Subject)
			}
		}
		awaitNodeLogFrom(t, p, froms[0], "subscribed to every group's updates", "user="+user)
		for j, q := range all {
			// Every node bans her once it hears of it.
			awaitNodeLogFrom(t, q, froms[j], "refusing a user's sign-ins for a while", "user="+user)
			from := q.stderr.Len()
			_, err := signInAt(t, q.url, user, usersigtest.Mint(t, key, user, time.Hour))
			refusedSignIn(t, user+" signs in again", err)
			awaitNodeLogFrom(t, q, from, "sign-in refused", "user="+user, "signing in refused for a while")
		}
	}
}

// checkViolationFlood has a signed-in user publish 2,000 of her own calls
// whose reply subjects the server refuses (_R_. is its own), each a line
// of the server's, and checks that the node's log grew by at most the 20
// lines a second of the server's about clients, and that a line then says
// how many it left out.
func checkViolationFlood(t *testing.T, n *endUserNode) {
	t.Helper()
	u, err := signInAt(t, n.p.url, "spammer", usersigtest.Mint(t, n.key, "spammer", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	count := func() int { return strings.Count(n.p.stderr.String(), "Violation - Reply") }
	before := count()
	start := time.Now()
	for i := range 2000 {
		if err := u.nc.PublishRequest("tally.v1.user.spammer.get", fmt.Sprintf("_R_.x%d", i), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The server logged (or left out) every refusal before it answered
	// the flush; the count of those left out comes within a second.
	awaitNodeLog(t, n.p, "lines about clients left out", "client_lines_not_logged=")
	seconds := int(time.Since(start)/time.Second) + 2
	if got := count() - before; got > 20*seconds {
		t.Errorf("%d lines of refused replies logged in %d s, want at most %d", got, seconds-1, 20*seconds)
	} else if got == 0 {
		t.Error("no refused reply logged")
	}
}

// awaitNodeLog waits until the node has logged a line with every one of
// want.
func awaitNodeLog(t *testing.T, p *proc, want ...string) {
	t.Helper()
	awaitNodeLogFrom(t, p, 0, want...)
}

// awaitNodeLogFrom waits until the node has logged a line with every one
// of want after the first from bytes of its log (p.stderr.Len()).
func awaitNodeLogFrom(t *testing.T, p *proc, from int, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(p.stderr.String()[from:], "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			name := "the node"
			for i, a := range p.args[:len(p.args)-1] {
				if a == "--name" {
					name = "node " + p.args[i+1]
				}
			}
			t.Fatalf("%s logged no line with %q", name, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEndUserFlagsRefused checks that the node refuses end-user settings
// that cannot work or would let the wrong people in, saying why.
func TestEndUserFlagsRefused(t *testing.T) {
	keyFile, _ := usersigtest.KeyFile(t)
	priv := filepath.Join(t.TempDir(), "not-a-key")
	if err := os.WriteFile(priv, []byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noUsers := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(noUsers, []byte("max_payload: 16384\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wsNoAuth := filepath.Join(t.TempDir(), "ws.conf")
	if err := os.WriteFile(wsNoAuth, []byte("accounts { A { users: [{user: a, password: a}] } }\nwebsocket { listen: \"127.0.0.1:-1\", no_tls: true, no_auth_user: a }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, err := issuer.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	callout := filepath.Join(t.TempDir(), "callout.conf")
	if err := os.WriteFile(callout, []byte("accounts { A { users: [{user: a, password: a}] } }\nauthorization { auth_callout { issuer: "+issuerPub+", account: A, auth_users: [a] } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	userKP, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userSeed, err := userKP.Seed()
	if err != nil {
		t.Fatal(err)
	}
	notAccount := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(notAccount, userSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an issuer that is not an account", []string{"--nats-url", "nats://127.0.0.1:1", "--user-sig-key", keyFile, "--callout-issuer", notAccount, "--users-token", "x"}, "want an account seed"},
		{"a configuration's own auth_callout", []string{"--nats-config", callout, "--user-sig-key", keyFile}, "has an auth_callout"},
		{"no TLS on a public address", []string{"--websocket", "0.0.0.0:0", "--websocket-no-tls", "--user-sig-key", keyFile}, "not a loopback address"},
		{"no TLS on every address", []string{"--websocket", ":0", "--websocket-no-tls", "--user-sig-key", keyFile}, "not a loopback address"},
		{"TLS without a certificate", []string{"--websocket", "127.0.0.1:0", "--user-sig-key", keyFile}, "--websocket-tls-cert"},
		{"no TLS and a certificate", []string{"--websocket", "127.0.0.1:0", "--websocket-no-tls", "--websocket-tls-cert", keyFile, "--websocket-tls-key", keyFile, "--user-sig-key", keyFile}, "excludes"},
		{"nobody could sign in", []string{"--websocket", "127.0.0.1:0", "--websocket-no-tls"}, "--websocket needs --user-sig-key"},
		{"a configuration without users", []string{"--websocket", "127.0.0.1:0", "--websocket-no-tls", "--nats-config", noUsers}, "has no users"},
		{"the websocket block's no_auth_user", []string{"--nats-config", wsNoAuth, "--user-sig-key", keyFile}, "no_auth_user"},
		{"websocket flags without --websocket", []string{"--websocket-no-tls"}, "need --websocket"},
		{"a bad origin", []string{"--websocket", "127.0.0.1:0", "--websocket-no-tls", "--user-sig-key", keyFile, "--websocket-origins", "app.example.com"}, "--websocket-origins"},
		{"not a public key", []string{"--user-sig-key", priv}, "--user-sig-key"},
		{"a missing key file", []string{"--user-sig-key", filepath.Join(t.TempDir(), "none")}, "--user-sig-key"},
		{"an external server without an issuer", []string{"--nats-url", "nats://127.0.0.1:1", "--user-sig-key", keyFile}, "--callout-issuer"},
		{"an issuer without an external server", []string{"--callout-issuer", keyFile, "--user-sig-key", keyFile}, "--callout-issuer is for --nats-url"},
		{"websocket on an external server", []string{"--nats-url", "nats://127.0.0.1:1", "--websocket", "127.0.0.1:0", "--websocket-no-tls", "--user-sig-key", keyFile}, "external NATS server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append([]string{"--data", t.TempDir(), "--listen", "127.0.0.1:0"}, tt.args...)...)
			b, err := cmd.CombinedOutput()
			code, out := cmd.ProcessState.ExitCode(), string(b)
			if ctx.Err() != nil {
				t.Fatalf("node %v still running after 20 s (err %v): %s", tt.args, err, out)
			}
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Errorf("node %v = exit %d, output %q; want a refusal mentioning %q", tt.args, code, out, tt.want)
			}
		})
	}
}

// TestEndUsersOnCluster runs three nodes that take end users over
// WebSocket, one signature key for all: on every node, a user signs in,
// calls and receives the updates of calls made through the others; a
// hostile user is refused every subject of TestHostileEndUser and reads
// no members-only group's updates, and each bad signature is refused with
// its reason in that node's log; a short-lived signature's connection is
// closed by its node when it expires; a user who floods through one node
// is cut and refused sign-in on every node.
func TestEndUsersOnCluster(t *testing.T) {
	keyFile, key := usersigtest.KeyFile(t)
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var ws []string
	c := &testCluster{t: t}
	for i := range routes {
		ws = append(ws, freeAddr(t))
		m := &member{name: fmt.Sprintf("n%d", i+1)}
		listen := freeAddr(t)
		m.url = "nats://" + listen
		m.args = []string{"--name", m.name, "--data", t.TempDir(), "--cluster", routes[i], "--routes", strings.Join(routes, ","),
			"--listen", listen, "--websocket", ws[i], "--websocket-no-tls", "--user-sig-key", keyFile}
		c.members = append(c.members, m)
	}
	c.launchAll()
	ctx := context.Background()
	// Short-lived signatures first, so that they expire while the rest
	// runs.
	var brief []*userConn
	for i := range c.members {
		user := fmt.Sprintf("brief%d", i+1)
		u, err := signInAt(t, "ws://"+ws[i], user, usersigtest.Mint(t, key, user, 3*time.Second))
		if err != nil {
			t.Fatalf("%s signs in on node %d: %v", user, i+1, err)
		}
		brief = append(brief, u)
	}
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, c.members[0].url), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetGroupCounters(ctx, "g", map[string]int64{"k": 1}); err != nil {
		t.Fatal(err)
	}
	var users []*client.Client
	var conns []*userConn
	updates := make(chan client.Update, 100)
	for i := range c.members {
		user := fmt.Sprintf("u%d", i+1)
		u, err := signInAt(t, "ws://"+ws[i], user, usersigtest.Mint(t, key, user, time.Hour))
		if err != nil {
			t.Fatalf("%s signs in on node %d: %v", user, i+1, err)
		}
		conns = append(conns, u)
		cl, err := client.New(u.nc, user, client.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.OnGroupCounterUpdated("room", func(up client.Update) { updates <- up }); err != nil {
			t.Fatal(err)
		}
		users = append(users, cl)

		t.Run(fmt.Sprintf("mallory on node %d", i+1), func(t *testing.T) {
			mallory, err := signInAt(t, "ws://"+ws[i], "mallory", usersigtest.Mint(t, key, "mallory", time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			checkHostileSubjects(t, mallory, partitioned)
			// Her own call under another partition reaches her node all
			// the same.
			wrong := fmt.Sprintf("tally.v1.u.%d.mallory.increase", (journal.PartitionOf("mallory", journal.Partitions)+1)%journal.Partitions)
			msg, err := mallory.nc.Request(wrong, []byte(fmt.Sprintf(`{"groupID":"mallory%d","key":"k","value":2}`, i)), 10*time.Second)
			if err != nil {
				t.Fatalf("mallory's increase on %s: %v", wrong, err)
			}
			if want := fmt.Sprintf(`{"groupID":"mallory%d","key":"k","value":2}`, i); string(msg.Data) != want {
				t.Errorf("mallory's increase on %s = %s, want %s", wrong, msg.Data, want)
			}
			for _, bad := range badSignatures(t, key) {
				from := c.members[i].p.stderr.Len()
				_, err := signInAt(t, "ws://"+ws[i], "mallory", bad.token)
				refusedSignIn(t, fmt.Sprintf("%s signature on node %d", bad.name, i+1), err)
				awaitNodeLogFrom(t, c.members[i].p, from, "sign-in refused", bad.reason, "type=websocket")
			}
		})
	}
	if got, err := admin.GetGroupCounters(ctx, "g"); err != nil || got["k"] != 1 {
		t.Errorf("g after mallory = %v, %v; want k 1, unchanged", got, err)
	}
	t.Run("every group's updates", func(t *testing.T) {
		checkWildcardsClosed(t, "ws://"+ws[1], key, c.members[1].p, journaltest.ConnectURL(t, c.members[1].url), c.members[0].p, c.members[2].p)
	})
	for i, u := range users {
		if _, err := u.IncreaseGroupCounter(ctx, "room", "likes", 1); err != nil {
			t.Fatalf("u%d's increase through node %d: %v", i+1, i+1, err)
		}
	}
	// Each user receives the three increases, whichever node they went
	// through.
	seen := map[int64]int{}
	for range 3 * len(users) {
		select {
		case up := <-updates:
			seen[up.Value]++
		case <-time.After(10 * time.Second):
			t.Fatalf("updates seen %v, want each of 1, 2, 3 three times", seen)
		}
	}
	if fmt.Sprint(seen) != "map[1:3 2:3 3:3]" {
		t.Errorf("updates seen %v, want each of 1, 2, 3 three times", seen)
	}
	checkMembersOnCluster(t, c, ws, key, conns)
	for i, u := range brief {
		u.awaitExpired(t, fmt.Sprintf("brief%d's 3 s signature on node %d", i+1, i+1))
	}
	checkBanOnCluster(t, c, ws, key)
}

// partitioned is the subject a cluster's servers check a publish on: a
// user's call mapped to its user's partition's subject
// (contract.UserMapping), any other subject as it is.
func partitioned(subject string) string {
	f := strings.Split(subject, ".")
	if len(f) != 5 || strings.Join(f[:3], ".") != "tally.v1.user" {
		return subject
	}
	return contract.PartitionedUserSubject("tally.v1", fmt.Sprint(journal.PartitionOf(f[3], journal.Partitions)), f[3], f[4])
}

// checkBanOnCluster has flooder signed in on every node flood through node
// 1 (as TestEndUserFlood's mallory): her connections on every node close,
// and every node refuses her sign-in, saying she flooded.
func checkBanOnCluster(t *testing.T, c *testCluster, ws []string, key ed25519.PrivateKey) {
	t.Helper()
	var conns []*userConn
	for i := range c.members {
		u, err := signInAt(t, "ws://"+ws[i], "flooder", usersigtest.Mint(t, key, "flooder", time.Hour))
		if err != nil {
			t.Fatalf("flooder signs in on node %d: %v", i+1, err)
		}
		conns = append(conns, u)
	}
	body := []byte(`{"groupID":"room","key":"likes","value":1}`)
	for range 400 {
		if err := conns[0].nc.PublishRequest("tally.v1.user.flooder.increase", "_INBOX_flooder.flood", body); err != nil {
			break // closed under her
		}
	}
	for i, u := range conns {
		select {
		case <-u.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("flooder's connection on node %d still open 10 s after her flood through node 1", i+1)
		}
	}
	// A banned user's sign-in is not answered: the server refuses it at
	// its auth timeout, so the three wait together.
	errs := make(chan error, len(c.members))
	var from []int
	for i := range c.members {
		from = append(from, c.members[i].p.stderr.Len())
		go func() {
			_, err := signInAt(t, "ws://"+ws[i], "flooder", usersigtest.Mint(t, key, "flooder", time.Hour))
			errs <- err
		}()
	}
	for range c.members {
		refusedSignIn(t, "flooder after her flood", <-errs)
	}
	for i, m := range c.members {
		awaitNodeLogFrom(t, m.p, from[i], "sign-in refused", "flooded", "user=flooder", "type=websocket")
	}
}

// checkMembersOnCluster makes u1 a member of group club through node 1:
// u1's connection on node 1 closes, and signed in again on node 3 she
// receives club's updates; u2, on node 2, is refused club's calls and its
// updates; removed, u1's connection closes again.
func checkMembersOnCluster(t *testing.T, c *testCluster, ws []string, key ed25519.PrivateKey, conns []*userConn) {
	ctx := context.Background()
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, c.members[0].url), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddGroupMembers(ctx, "club", []string{"u1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-conns[0].closed:
	case <-time.After(10 * time.Second):
		t.Fatal("u1's connection on node 1 still open 10 s after she was made a member")
	}
	u1, err := signInAt(t, "ws://"+ws[2], "u1", usersigtest.Mint(t, key, "u1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	u1c, err := client.New(u1.nc, "u1", client.AsEndUser())
	if err != nil {
		t.Fatal(err)
	}
	clubUpdates := make(chan client.Update, 10)
	if _, err := u1c.OnGroupCounterUpdated("club", func(up client.Update) { clubUpdates <- up }); err != nil {
		t.Fatal(err)
	}
	u2, err := client.New(conns[1].nc, "u2", client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u2.IncreaseGroupCounter(ctx, "club", "likes", 1); !errors.Is(err, client.ErrNotMember) {
		t.Errorf("u2's increase of club: %v, want 10007", err)
	}
	if _, err := conns[1].nc.SubscribeSync(contract.MemberUpdatesSubject("tally.v1", "club")); err != nil {
		t.Fatal(err)
	}
	conns[1].refused(t, "u2 subscribes", contract.MemberUpdatesSubject("tally.v1", "club"))
	if _, err := admin.IncreaseGroupCounter(ctx, "club", "likes", 5); err != nil {
		t.Fatal(err)
	}
	select {
	case up := <-clubUpdates:
		if up.Key != "likes" || up.Value != 5 {
			t.Errorf("u1's update of club: %+v, want likes = 5", up)
		}
	case <-time.After(10 * time.Second):
		t.Error("u1 got no update of club")
	}
	if _, err := admin.RemoveGroupMembers(ctx, "club", []string{"u1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-u1.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("u1's connection on node 3 still open 10 s after she was removed")
	}
}

// TestEndUserWithNATSConfig signs end users in next to a configuration
// file's accounts (nodetest.OpsConfig): end users import the service from
// TALLY, the file's no-credentials user keeps TCP but never takes a
// WebSocket client, and its back end still serves.
func TestEndUserWithNATSConfig(t *testing.T) {
	keyFile, key := usersigtest.KeyFile(t)
	listen, ws := freeAddr(t), freeAddr(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: "+listen+"\n"+nodetest.OpsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "--data", t.TempDir(), "--nats-config", conf, "--websocket", ws, "--websocket-no-tls", "--user-sig-key", keyFile)
	u, err := signInAt(t, "ws://"+ws, "alice", usersigtest.Mint(t, key, "alice", time.Hour))
	if err != nil {
		t.Fatalf("alice signs in: %v", err)
	}
	alice, err := client.New(u.nc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := alice.IncreaseGroupCounter(ctx, "room", "likes", 2); err != nil || v != 2 {
		t.Fatalf("alice's increase = %d, %v; want 2", v, err)
	}
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, p.url))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := admin.GetGroupCounters(ctx, "room"); err != nil || got["likes"] != 2 {
		t.Errorf("the back end reads room = %v, %v; want likes 2", got, err)
	}
	_, err = signInAt(t, "ws://"+ws, "anyone", "")
	refusedSignIn(t, "WebSocket without credentials", err)
	awaitNodeLog(t, p, "sign-in refused", "no user signature", "type=websocket")
}

// TestEndUserFlood has mallory go on calling after the rate limit refused
// her: her connection is closed and her sign-ins are refused, with the
// reason in the node's log, while bob's calls go on being answered.
func TestEndUserFlood(t *testing.T) {
	n := startEndUserNode(t)
	u, err := signInAt(t, n.ws, "mallory", usersigtest.Mint(t, n.key, "mallory", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"groupID":"room","key":"likes","value":1}`)
	for range 400 {
		if err := u.nc.PublishRequest("tally.v1.user.mallory.increase", "_INBOX_mallory.flood", body); err != nil {
			break // closed under her
		}
	}
	select {
	case <-u.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("mallory's connection still open 10 s after her flood")
	}
	awaitNodeLog(t, n.p, "rate limit refused them", "user=mallory")
	_, err = signInAt(t, n.ws, "mallory", usersigtest.Mint(t, n.key, "mallory", time.Hour))
	refusedSignIn(t, "mallory after her flood", err)
	awaitNodeLog(t, n.p, "sign-in refused", "flooded", "user=mallory")

	// Malformed requests never reach the rate limit, yet count the same.
	eve, err := signInAt(t, n.ws, "eve", usersigtest.Mint(t, n.key, "eve", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for range 400 {
		if err := eve.nc.PublishRequest("tally.v1.user.eve.increase", "_INBOX_eve.flood", []byte(`{"groupID":"room","key":"likes","value":"x"}`)); err != nil {
			break
		}
	}
	select {
	case <-eve.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("eve's connection still open 10 s after her flood of malformed requests")
	}

	b, err := signInAt(t, n.ws, "bob", usersigtest.Mint(t, n.key, "bob", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := client.New(b.nc, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.IncreaseGroupCounter(context.Background(), "room", "likes", 1); err != nil {
		t.Errorf("bob's increase after mallory's flood: %v", err)
	}
}

// TestEndUserReplySubject has mallory name other subjects as the reply of
// her calls: a group's updates, bob's inbox. Nothing reaches bob there:
// the first message he gets on each is the next update, and his own
// replies (replyGoesOnlyToCaller).
func TestEndUserReplySubject(t *testing.T) {
	n := startEndUserNode(t)
	replyGoesOnlyToCaller(t, n.ws, n.key)
}
