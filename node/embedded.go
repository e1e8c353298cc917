package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/contract"
)

// Accounts of the embedded server.
const (
	// ServiceAccount holds the journal, the JetStream API and every
	// subject the node uses internally. Only the node's in-process
	// connections enter it.
	ServiceAccount = "TALLY"
	// ClientAccount is where clients connect when no configuration file
	// gives accounts or users: anyone who reaches the port, without
	// credentials.
	ClientAccount = "APP"
)

// Limits the embedded server applies to every connection unless the
// configuration file sets its own.
const (
	// MaxPayload is the largest message the server takes. The contract's
	// largest request (a set of 20 keys of 128 bytes) is about 3 KB of
	// JSON, 9 KB with every character escaped; the node's own journal
	// events stay below it too (see actors.Config.MaxEventBytes).
	MaxPayload = 16 << 10
	// MaxPending is how much the server buffers for a connection that
	// does not read, an update subscriber for instance, before it cuts it
	// as a slow consumer; it is NATS's default. The node's gateway is a
	// connection too, which every user's requests flow into: past three
	// quarters of it the server slows the senders down, and the rest must
	// absorb what they send meanwhile (8 MB did not: a flood of 15 KB
	// requests from one user's 8 connections got the gateway cut).
	MaxPending = 64 << 20
)

// services are the subjects the service account serves to clients, and
// updates the subjects clients read from it.
func services(prefix string) (singleton []string, streamed []string, updates string) {
	return []string{prefix + ".user.>", prefix + ".u.>", prefix + ".admin.>"}, []string{"$SRV.>"}, prefix + ".updates.>"
}

// mapUsers adds, in a cluster, the mapping of users' calls to their
// partitions' subjects to acc, an account clients publish from (see
// contract.UserMapping): the servers then deliver a user's call to the
// node that holds the user's partition, rather than to any node, which
// would forward it there. Publish permissions apply to the mapped subject.
func mapUsers(cfg Config, acc *server.Account, prefix string) error {
	if cfg.Cluster == "" {
		return nil
	}
	from, to := contract.UserMapping(prefix)
	if err := acc.AddMapping(from, to); err != nil {
		return fmt.Errorf("account %s: map %s to %s: %w", acc.Name, from, to, err)
	}
	return nil
}

// embeddedOptions returns the embedded server's options: the configuration
// file's, or the flags', with the service account and the node's user
// added, and every client account importing the service. Without accounts
// or users, the node's gateway instead serves from the one client account
// itself, as frontKey: a request then crosses no account boundary (a
// service import gives each request a response import of its own, which
// cost 0.78-0.83x the calls/s). The gateway user has no permissions: they
// cost another 5-10% of the calls/s, and what keeps replies from becoming
// requests is the gateway's refusal of reply subjects under tally. and $.
//
// With callout, end users sign in by the node's auth callout into
// UsersAccount (see endUserOptions); the server's largest payload is then
// raised for the callout's answers, and the accounts the node builds keep
// the limit the server had (see planPayload).
func embeddedOptions(cfg Config, prefix, nodeKey, frontKey string, callout *calloutKeys) (opts *server.Options, front bool, err error) {
	opts = &server.Options{}
	if cfg.NATSConfig != "" {
		if opts, err = server.ProcessConfigFile(cfg.NATSConfig); err != nil {
			return nil, false, fmt.Errorf("NATS configuration %s: %w", cfg.NATSConfig, err)
		}
		if opts.Username != "" || opts.Authorization != "" {
			return nil, false, fmt.Errorf("NATS configuration %s: authorization by a single user or token cannot host tally's own account; list users in authorization.users or in accounts", cfg.NATSConfig)
		}
	}
	if err := applySettings(cfg, opts); err != nil {
		return nil, false, err
	}
	clusterOptions(cfg, opts)
	opts.JetStream = true
	opts.NoSigs = true
	// tally publishes on one subject per group (journal), per user
	// (requests) and per request (replies): the account's 1,024-entry
	// subject cache nearly always misses, and each miss takes the subject
	// index's write lock to insert what will soon be dropped.
	opts.NoSublistCache = true
	if opts.MaxPayload == 0 {
		opts.MaxPayload = MaxPayload
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = MaxPending
	}
	if cfg.WebSocket != "" && callout == nil && len(opts.Users)+len(opts.Nkeys) == 0 {
		return nil, false, fmt.Errorf("--websocket: NATS configuration %s has no users, and without --user-sig-key nobody could sign in", cfg.NATSConfig)
	}
	plan, err := planPayload(opts, callout, prefix)
	if err != nil {
		return nil, false, err
	}

	svc := findAccount(opts, ServiceAccount)
	from := svc
	switch {
	case svc == nil && len(clientAccounts(opts)) == 0:
		if svc, err = serviceAccount(prefix, false, plan.account); err != nil {
			return nil, false, err
		}
		opts.Accounts = append(opts.Accounts, svc)
		if from, err = addFrontAccount(opts, frontKey, plan.account); err != nil {
			return nil, false, err
		}
		if err := mapUsers(cfg, from, prefix); err != nil {
			return nil, false, err
		}
		front = true
	case svc == nil:
		if svc, err = serviceAccount(prefix, true, plan.account); err != nil {
			return nil, false, err
		}
		if err := addClientAccounts(cfg, opts, svc, prefix); err != nil {
			return nil, false, err
		}
		opts.Accounts = append(opts.Accounts, svc)
		from = svc
	}
	// A configuration that defines the service account itself decides who
	// imports what from it (one account per end user, say, importing only
	// that user's subjects): tally adds only its own user.
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{
		Nkey:                   nodeKey,
		Account:                svc,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	})
	// After every other user: the callout's bypass lists them all.
	if err := endUserOptions(cfg, opts, from, front, prefix, callout); err != nil {
		return nil, false, err
	}
	return opts, front, nil
}

// clusterOptions sets the timings of the embedded server's routes when
// the node joins a cluster (its address, name and routes are settings, see
// fileSettings).
func clusterOptions(cfg Config, opts *server.Options) {
	if cfg.Cluster == "" {
		return
	}
	// A route or a client that stops answering is dropped within a few
	// seconds rather than nats-server's default two minutes, so that a
	// paused server does not hold the others' traffic for long.
	opts.Cluster.PingInterval, opts.Cluster.MaxPingsOut = time.Second, 3
	if opts.PingInterval == 0 {
		opts.PingInterval, opts.MaxPingsOut = 2*time.Second, 3
	}
	// A stopping node's server goes into lame duck mode (see Node.close):
	// it hands the leadership of the journal, the buckets and JetStream's
	// meta group to another server and waits a second for the transfer,
	// then closes its clients' connections one by one over the next
	// second, each client reconnecting to another server. A plain shutdown does not
	// wait for the transfer, and the others then wait for a raft election
	// (4-9 s) before the journal takes writes again.
	if opts.LameDuckDuration == 0 {
		opts.LameDuckDuration, opts.LameDuckGracePeriod = time.Second, 100*time.Millisecond
	}
}

// addClientAccounts makes every client account of opts import the service
// from svc, its users' calls mapped in a cluster.
func addClientAccounts(cfg Config, opts *server.Options, svc *server.Account, prefix string) error {
	for _, acc := range clientAccounts(opts) {
		if err := importServices(acc, svc, prefix); err != nil {
			return err
		}
		if err := mapUsers(cfg, acc, prefix); err != nil {
			return err
		}
	}
	return nil
}

// addFrontAccount makes ClientAccount, which clients enter without
// credentials, and the node's gateway user in it, allowed in-process
// connections only.
func addFrontAccount(opts *server.Options, frontKey string, payload int32) (*server.Account, error) {
	// The account's user is an nkey whose seed nobody keeps.
	_, anyone, err := newNodeUser()
	if err != nil {
		return nil, err
	}
	app, err := limitedAccount(ClientAccount, payload, 0, "")
	if err != nil {
		return nil, err
	}
	opts.Accounts = append(opts.Accounts, app)
	opts.Nkeys = append(opts.Nkeys,
		&server.NkeyUser{Nkey: anyone, Account: app},
		&server.NkeyUser{
			Nkey:                   frontKey,
			Account:                app,
			AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
		})
	opts.NoAuthUser = anyone
	return app, nil
}

func findAccount(opts *server.Options, name string) *server.Account {
	for _, acc := range opts.Accounts {
		if acc.Name == name {
			return acc
		}
	}
	return nil
}

// serviceAccount builds the service account from configuration text, the
// only way to give an account JetStream (or limits) before the server
// starts; with exports, it exports the service to client accounts.
func serviceAccount(prefix string, exports bool, payload int32) (*server.Account, error) {
	singleton, streamed, updates := services(prefix)
	conf := "jetstream: enabled"
	if exports {
		conf += ", exports: ["
		for _, s := range singleton {
			conf += fmt.Sprintf("{service: %q, response: singleton}, ", s)
		}
		for _, s := range streamed {
			conf += fmt.Sprintf("{service: %q, response: stream}, ", s)
		}
		conf += fmt.Sprintf("{stream: %q}]", updates)
	}
	return limitedAccount(ServiceAccount, payload, 0, conf)
}

// clientAccounts lists the accounts of opts that clients use: every
// account but the system account, and the global account when users live
// there. It adds the global account to opts when it must import.
func clientAccounts(opts *server.Options) []*server.Account {
	sys := opts.SystemAccount
	if sys == "" {
		sys = server.DEFAULT_SYSTEM_ACCOUNT
	}
	var out []*server.Account
	var global *server.Account
	for _, acc := range opts.Accounts {
		switch acc.Name {
		case sys:
		case server.DEFAULT_GLOBAL_ACCOUNT:
			global = acc
			out = append(out, acc)
		default:
			out = append(out, acc)
		}
	}
	globalUsers := false
	for _, u := range opts.Users {
		globalUsers = globalUsers || u.Account == nil
	}
	for _, u := range opts.Nkeys {
		globalUsers = globalUsers || u.Account == nil
	}
	if global == nil && globalUsers {
		global = server.NewAccount(server.DEFAULT_GLOBAL_ACCOUNT)
		opts.Accounts = append(opts.Accounts, global)
		out = append(out, global)
	}
	return out
}

func importServices(acc, svc *server.Account, prefix string) error {
	singleton, streamed, updates := services(prefix)
	for _, s := range append(singleton, streamed...) {
		if err := acc.AddServiceImport(svc, s, s); err != nil {
			return fmt.Errorf("account %s: import %s: %w", acc.Name, s, err)
		}
	}
	if err := acc.AddStreamImport(svc, updates, ""); err != nil {
		return fmt.Errorf("account %s: import %s: %w", acc.Name, updates, err)
	}
	return nil
}

// startEmbedded starts the server and waits until it takes connections,
// the server reports a fatal error (a taken port, an unusable store), or
// ctx ends.
func startEmbedded(ctx context.Context, opts *server.Options, stream string, log *slog.Logger) (*server.Server, error) {
	if err := migrateStore(opts.StoreDir, stream, log); err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	fatal := make(chan string, 1)
	s.SetLoggerV2(natsLogger{log: log.With(slog.String("component", "nats-server")), fatal: fatal, clients: &lineLimiter{}}, false, false, false)
	go s.Start()
	for !s.ReadyForConnections(20 * time.Millisecond) {
		select {
		case msg := <-fatal:
			s.Shutdown()
			return nil, fmt.Errorf("embedded NATS server: %s", msg)
		case <-ctx.Done():
			s.Shutdown()
			return nil, fmt.Errorf("embedded NATS server: %w", ctx.Err())
		default:
		}
	}
	return s, nil
}

// migrateStore moves a journal stored by earlier versions, which kept it
// in the global account, into the service account's directory.
func migrateStore(storeDir, stream string, log *slog.Logger) error {
	js := filepath.Join(storeDir, server.JetStreamStoreDir)
	old := filepath.Join(js, server.DEFAULT_GLOBAL_ACCOUNT, "streams", stream)
	dst := filepath.Join(js, ServiceAccount, "streams", stream)
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("move the journal into account %s: %w", ServiceAccount, err)
	}
	if err := os.Rename(old, dst); err != nil {
		return fmt.Errorf("move the journal into account %s: %w", ServiceAccount, err)
	}
	log.Info("moved the journal into the service account", slog.String("from", old), slog.String("to", dst))
	return nil
}

// nodeUser is the node's identity on its embedded server: an nkey made at
// start, allowed in-process connections only.
type nodeUser struct{ kp nkeys.KeyPair }

func newNodeUser() (nodeUser, string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nodeUser{}, "", fmt.Errorf("node key: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nodeUser{}, "", fmt.Errorf("node key: %w", err)
	}
	return nodeUser{kp}, pub, nil
}

func (u nodeUser) option() nats.Option {
	pub, _ := u.kp.PublicKey()
	return nats.Nkey(pub, u.kp.Sign)
}

// natsLogger sends nats-server's log to slog; its notices are routine, so
// they go at debug level, but for a slow consumer's: the server cut a
// connection that did not read what it was sent, which an operator must
// hear of. The first fatal error also goes to fatal.
//
// What one client does wrong (bad credentials, a refused subject, a
// dropped connection) is logged at most clientLines times a second, so that
// a flood of hostile clients cannot flood the log; the sign-in service
// logs a refused sign-in's reason itself, so the server's line for it goes
// at debug level.
type natsLogger struct {
	log     *slog.Logger
	fatal   chan<- string
	clients *lineLimiter
}

func (l natsLogger) logf(level slog.Level, format string, v []any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "Auth callout service returned an error") {
		level = slog.LevelDebug
	}
	if level > slog.LevelDebug && clientLine(msg) {
		ok, dropped, first := l.clients.allow(time.Now())
		if !ok {
			if first {
				// Said by the next line about a client, or else by this.
				time.AfterFunc(time.Second, l.leftOut)
			}
			return
		}
		if dropped > 0 {
			l.log.Log(context.Background(), level, msg, slog.Int("client_lines_not_logged", dropped))
			return
		}
	}
	l.log.Log(context.Background(), level, msg)
}

// clientLine reports a line of the server about one client: its misdeeds
// (a refused subject or reply, bad credentials, a payload too large), its
// slowness, its dropped connection. The server begins each with the
// client's address and ID (cid: a client over TCP, wid: over WebSocket,
// mid: over MQTT); the node's own in-process connections' lines (pipe -
// cid:) are never held back, so that a hostile client's lines cannot hide
// them.
func clientLine(msg string) bool {
	if strings.HasPrefix(msg, "pipe - ") {
		return false
	}
	for _, s := range []string{" - cid:", " - wid:", " - mid:", "authentication error", "Authorization Violation", "Violation - Subject", "read error", "Maximum Payload"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// leftOut logs how many lines about clients were left out, unless a line
// logged since said it.
func (l natsLogger) leftOut() {
	if n := l.clients.takeDropped(); n > 0 {
		l.log.Warn("lines about clients left out", slog.Int("client_lines_not_logged", n))
	}
}

// clientLines is how many lines about clients' misdeeds the server's log
// gets a second.
const clientLines = 20

// lineLimiter lets clientLines lines a second through and counts the rest.
type lineLimiter struct {
	mu      sync.Mutex
	start   time.Time
	logged  int
	dropped int
	due     bool // a count of the lines left out is to be logged
}

// allow reports whether a line may be logged at now and, if so, how many
// were dropped since the last one logged; if not, whether it is the first
// one dropped since the count was last taken.
func (l *lineLimiter) allow(now time.Time) (ok bool, dropped int, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= time.Second {
		l.start, l.logged = now, 0
	}
	if l.logged >= clientLines {
		l.dropped++
		first, l.due = !l.due, true
		return false, 0, first
	}
	l.logged++
	dropped, l.dropped = l.dropped, 0
	return true, dropped, false
}

// takeDropped returns how many lines were dropped since the last one
// logged, and starts counting afresh.
func (l *lineLimiter) takeDropped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.dropped
	l.dropped, l.due = 0, false
	return n
}

func (l natsLogger) Noticef(format string, v ...any) {
	level := slog.LevelDebug
	if strings.Contains(format, "Slow Consumer") {
		level = slog.LevelWarn
	}
	l.logf(level, format, v)
}

func (l natsLogger) Warnf(format string, v ...any)  { l.logf(slog.LevelWarn, format, v) }
func (l natsLogger) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v) }
func (l natsLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l natsLogger) Tracef(format string, v ...any) { l.logf(slog.LevelDebug-4, format, v) }

func (l natsLogger) Fatalf(format string, v ...any) {
	l.logf(slog.LevelError, format, v)
	select {
	case l.fatal <- fmt.Sprintf(format, v...):
	default:
	}
}
