package signin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/signin"
	"github.com/tallyhq/tally/usersig"
	"github.com/tallyhq/tally/usersig/usersigtest"
)

// logBuffer is a log the test reads while services write it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a NATS server whose callout a signin.Service serves.
type testServer struct {
	s     *server.Server
	tally *nats.Conn // the node's connection, in TALLY
	svc   *signin.Service
	log   *logBuffer
}

func nkey(t testing.TB, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return kp, pub
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServers starts n servers in one cluster, laid out as a node lays
// out its embedded server (accounts TALLY, USERS and TALLY_SIGNIN), each
// with its own issuer and service; modify adjusts each service's
// configuration.
func startServers(t *testing.T, n int, key ed25519.PublicKey, modify func(*signin.Config)) []*testServer {
	t.Helper()
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		ports[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	var out []*testServer
	for i := range n {
		issuer, issuerPub := nkey(t, nkeys.CreateAccount)
		calloutKP, calloutPub := nkey(t, nkeys.CreateUser)
		nodeKP, nodePub := nkey(t, nkeys.CreateUser)
		conf := fmt.Sprintf(`
listen: "127.0.0.1:-1"
server_name: s%d
accounts {
  TALLY { users: [{nkey: %s}], exports: [{service: "tally.v1.user.>"}, {stream: "tally.v1.updates.>"}] }
  USERS { imports: [
    {service: {account: TALLY, subject: "tally.v1.user.>"}}
    {stream: {account: TALLY, subject: "tally.v1.updates.*"}}
    {stream: {account: TALLY, subject: "tally.v1.updates.*.members"}, to: "tally.v1.member-updates.$1"}
  ] }
  TALLY_SIGNIN { users: [{nkey: %s}] }
}
authorization { auth_callout { issuer: %s, account: TALLY_SIGNIN, auth_users: [%s, %s], allowed_accounts: [USERS] } }
`, i+1, nodePub, calloutPub, issuerPub, nodePub, calloutPub)
		if n > 1 {
			conf += fmt.Sprintf("cluster { name: c, listen: \"127.0.0.1:%d\", routes: [%s] }\n", ports[i], strings.Join(routes, ", "))
		}
		opts := &server.Options{}
		if err := opts.ProcessConfigString(conf); err != nil {
			t.Fatal(err)
		}
		opts.NoSigs = true
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(5 * time.Second) {
			t.Fatal("server not ready")
		}
		ts := &testServer{s: s, log: &logBuffer{}}
		connect := func(kp nkeys.KeyPair) *nats.Conn {
			pub, _ := kp.PublicKey()
			nc, err := nats.Connect(s.ClientURL(), nats.Nkey(pub, kp.Sign))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			return nc
		}
		cfg := signin.DefaultConfig()
		cfg.Key, cfg.Issuer, cfg.Server, cfg.Conns = key, issuer, s.ID(), signin.ServerConns(s)
		cfg.Logger = slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if modify != nil {
			modify(&cfg)
		}
		ts.tally = connect(nodeKP)
		if ts.svc, err = signin.Start(connect(calloutKP), ts.tally, cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ts.svc.Stop)
		out = append(out, ts)
	}
	for _, ts := range out {
		deadline := time.Now().Add(10 * time.Second)
		for ts.s.NumRoutes() < n-1 {
			if time.Now().After(deadline) {
				t.Fatalf("server %s has %d routes, want %d", ts.s.Name(), ts.s.NumRoutes(), n-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

// connectAs connects to s with sig as the token.
func connectAs(t testing.TB, s *server.Server, sig string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), append([]nats.Option{nats.Token(sig), nats.NoReconnect()}, opts...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// awaitLog waits until the log has a line with every one of want.
func awaitLog(t testing.TB, log *logBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(log.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", want, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSignIn lets a user with a valid signature in with its own subjects
// only, and refuses every bad sign-in with its reason in the log.
func TestSignIn(t *testing.T) {
	pub, priv, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	groups := func(_ context.Context, user string) ([]string, error) {
		switch user {
		case "alice":
			return []string{"club"}, nil
		case "broken":
			return nil, errors.New("index unavailable")
		case "crowd":
			var many []string
			for i := range signin.MaxGroups + 1 {
				many = append(many, fmt.Sprintf("g%d", i))
			}
			return many, nil
		}
		return nil, nil
	}
	ts := startServers(t, 1, pub, func(c *signin.Config) { c.Groups = groups })[0]

	violations := make(chan error, 10)
	nc, err := connectAs(t, ts.s, usersigtest.Mint(t, priv, "alice", time.Hour), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("alice signs in: %v", err)
	}
	for _, subject := range []string{"_INBOX_alice.x", "tally.v1.updates.open", "tally.v1.member-updates.club"} {
		if _, err := nc.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("tally.v1.user.alice.get", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		t.Fatalf("alice's own subjects: %v", err)
	default:
	}
	for _, subject := range []string{"_INBOX_bob.x", "tally.v1.updates.other.members", "tally.v1.member-updates.other", "tally.v1.member-updates.>", "tally.v1.admin.>", "$SYS.>"} {
		if _, err := nc.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
				t.Errorf("subscribe %s: %v", subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("subscribe %s: no permissions violation", subject)
		}
	}

	checkNoLeak(t, ts, nc)

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"no token", "", "no user signature"},
		{"expired", expired(t, priv), "expired"},
		{"other key", usersigtest.Mint(t, other, "bob", time.Hour), "does not verify"},
		{"tampered", tamper(usersigtest.Mint(t, priv, "bob", time.Hour)), "does not verify"},
		{"alg none", "eyJhbGciOiJub25lIn0." + strings.Split(usersigtest.Mint(t, priv, "bob", time.Hour), ".")[1] + ".", "not EdDSA"},
		{"not a token", "hunter2", "malformed"},
		{"groups unavailable", usersigtest.Mint(t, priv, "broken", time.Hour), "could not be read"},
		{"member of too many groups", usersigtest.Mint(t, priv, "crowd", time.Hour), "member of more groups than a sign-in can grant: 1001, at most 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []nats.Option
			if tt.token == "" {
				opts = append(opts, nats.Token(""))
			}
			nc, err := connectAs(t, ts.s, tt.token, opts...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect = %v, want %v", err, nats.ErrAuthorization)
			}
			awaitLog(t, ts.log, "sign-in refused", tt.reason, "type=nats", "address=127.0.0.1")
		})
	}
}

// expired is a signature that expired a second ago.
func expired(t testing.TB, key ed25519.PrivateKey) string {
	t.Helper()
	sig, err := usersig.Mint(key, "bob", time.Minute, time.Now().Add(-61*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// tamper changes the user of a signature without signing it again.
func tamper(sig string) string {
	p := strings.Split(sig, ".")
	return p[0] + "." + strings.Replace(p[1], p[1][:4], p[1][:4], 1) + "x." + p[2]
}

// checkNoLeak subscribes nc to every update the server lets it ask for
// with a wildcard (tally.v1.updates.* allows a subscription to
// tally.v1.updates.> too) and checks that of the updates the service
// publishes, nc receives the open group's and its own members-only
// group's, never another members-only group's.
func checkNoLeak(t *testing.T, ts *testServer, nc *nats.Conn) {
	t.Helper()
	var subs []*nats.Subscription
	for _, subject := range []string{"tally.v1.updates.>", "tally.v1.updates.*", "tally.v1.member-updates.club"} {
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Each subscription gets a last message marked "end".
	for _, m := range [][2]string{{"tally.v1.updates.secret.members", ""}, {"tally.v1.updates.club.members", ""},
		{"tally.v1.updates.open", ""}, {"tally.v1.updates.open", "end"}, {"tally.v1.updates.club.members", "end"}} {
		if err := ts.tally.Publish(m[0], []byte(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, sub := range subs {
		for {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("%s received %v, then %v", sub.Subject, got, err)
			}
			got = append(got, sub.Subject+" <- "+m.Subject)
			if string(m.Data) == "end" {
				break
			}
		}
	}
	want := []string{
		"tally.v1.updates.> <- tally.v1.updates.open", "tally.v1.updates.> <- tally.v1.updates.open",
		"tally.v1.updates.* <- tally.v1.updates.open", "tally.v1.updates.* <- tally.v1.updates.open",
		"tally.v1.member-updates.club <- tally.v1.member-updates.club", "tally.v1.member-updates.club <- tally.v1.member-updates.club",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("updates received = %q, want %q (never another group's members-only updates)", got, want)
	}
}

// closed returns a channel closed when nc's connection closes.
func closedChan() (chan struct{}, nats.Option) {
	ch := make(chan struct{})
	return ch, nats.ClosedHandler(func(*nats.Conn) { close(ch) })
}

// TestClusterSignInAndDisconnect signs users in on both servers of a
// cluster, each server's requests answered by its own service (another's
// answer, under another issuer, would be refused), and disconnects a
// user's connections on both servers from one service, leaving another
// user's.
func TestClusterSignInAndDisconnect(t *testing.T) {
	pub, priv, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	servers := startServers(t, 2, pub, nil)
	var aliceClosed []chan struct{}
	for range 5 {
		for _, ts := range servers {
			ch, opt := closedChan()
			if _, err := connectAs(t, ts.s, usersigtest.Mint(t, priv, "alice", time.Hour), opt); err != nil {
				t.Fatalf("alice signs in on %s: %v", ts.s.Name(), err)
			}
			aliceClosed = append(aliceClosed, ch)
		}
	}
	for _, ts := range servers {
		if n := strings.Count(ts.log.String(), `msg="signed in" user=alice`); n != 5 {
			t.Errorf("the service of %s signed alice in %d times, want 5 (its own server's sign-ins only)", ts.s.Name(), n)
		}
	}
	bobClosed, opt := closedChan()
	bob, err := connectAs(t, servers[1].s, usersigtest.Mint(t, priv, "bob", time.Hour), opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := servers[0].svc.Disconnect(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for i, ch := range aliceClosed {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("alice's connection %d (server s%d) still open 5 s after Disconnect", i, i%2+1)
		}
	}
	if err := bob.Flush(); err != nil {
		t.Errorf("bob's connection after alice's disconnect: %v", err)
	}
	select {
	case <-bobClosed:
		t.Error("Disconnect(alice) closed bob's connection")
	default:
	}
	if err := servers[0].svc.Disconnect(ctx, "a.b"); err == nil {
		t.Error("Disconnect of an invalid user ID succeeded")
	}
}

// TestConnectionCap refuses a user's connection past the cap, with the
// reason in the log, lets other users in meanwhile, and lets the user in
// again once one of its connections is gone; 100 refusals at the cap
// within 5 s ban her.
func TestConnectionCap(t *testing.T) {
	pub, priv, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// The service's clock stands still, so that the refusals below fall
	// in one window of 5 s however slowly the machine signs them in.
	now := time.Now()
	ts := startServers(t, 1, pub, func(c *signin.Config) {
		c.MaxConnsPerUser = 3
		c.Now = func() time.Time { return now }
	})[0]
	sig := usersigtest.Mint(t, priv, "alice", time.Hour)
	var conns []*nats.Conn
	for range 3 {
		nc, err := connectAs(t, ts.s, sig)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	if _, err := connectAs(t, ts.s, sig); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("alice's 4th connection = %v, want %v", err, nats.ErrAuthorization)
	}
	awaitLog(t, ts.log, "sign-in refused", "too many connections", "user=alice")
	if _, err := connectAs(t, ts.s, usersigtest.Mint(t, priv, "bob", time.Hour)); err != nil {
		t.Errorf("bob while alice is at the cap: %v", err)
	}
	conns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := connectAs(t, ts.s, sig)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice after closing one of 3 connections: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A user who goes on signing in at her cap is banned at her 100th
	// refusal within 5 s (the 4th connection above was the first): her
	// connections close and her sign-ins are refused.
	closed := make(chan struct{})
	conns[1].SetClosedHandler(func(*nats.Conn) { close(closed) })
	for i := range 99 {
		if _, err := connectAs(t, ts.s, sig); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("alice's sign-in %d at her cap = %v, want %v", i+1, err, nats.ErrAuthorization)
		}
	}
	awaitLog(t, ts.log, "sign-ins go on at her connection cap", "user=alice")
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("alice's connection still open 5 s after her ban")
	}
	// Her connections all closed: only the ban refuses this one. (Its line
	// in the log may be one of those the refusals' limit holds back.)
	if _, err := connectAs(t, ts.s, sig); err == nil {
		t.Fatal("alice signed in while banned")
	}
}

// TestDisconnectKicksOffHandler closes connections with a Kick (as on an
// external server): a kick that gets no answer holds back neither the
// next user's disconnection nor Stop, which cancels the kicks under way
// and waits for them.
func TestDisconnectKicksOffHandler(t *testing.T) {
	pub, priv, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		behave  = map[uint64]func(ctx context.Context) error{}
		release = make(chan struct{})
	)
	kicked := make(chan uint64, 10)
	kick := func(ctx context.Context, _ string, id uint64) error {
		kicked <- id
		mu.Lock()
		b := behave[id]
		mu.Unlock()
		if b == nil {
			return nil
		}
		return b(ctx)
	}
	ts := startServers(t, 1, pub, func(c *signin.Config) { c.Conns, c.Kick = nil, kick })[0]
	signIn := func(user string, b func(context.Context) error) uint64 {
		nc, err := connectAs(t, ts.s, usersigtest.Mint(t, priv, user, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		id, err := nc.GetClientID()
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		behave[id] = b
		mu.Unlock()
		return id
	}
	await := func(what string, want uint64) {
		t.Helper()
		select {
		case id := <-kicked:
			if id != want {
				t.Fatalf("%s: kicked client %d, want %d", what, id, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no kick after 10 s", what)
		}
	}
	// alice's server does not answer, until released.
	alice := signIn("alice", func(ctx context.Context) error {
		<-release
		return errors.New("no answer")
	})
	bob := signIn("bob", nil)
	var carolReturned atomic.Bool
	carol := signIn("carol", func(ctx context.Context) error {
		<-ctx.Done()
		carolReturned.Store(true)
		return ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.svc.Disconnect(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	await("alice", alice)
	if err := ts.svc.Disconnect(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	await("bob, while alice's kick waits", bob)
	if err := ts.svc.Disconnect(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	await("carol", carol)
	close(release)
	ts.svc.Stop()
	if !carolReturned.Load() {
		t.Error("carol's kick still under way after Stop")
	}
}
