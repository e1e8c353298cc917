package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/metrics"
	"github.com/tallyhq/tally/signin"
)

// attemptTimeout bounds each attempt to reach JetStream at start-up; the
// node tries again until it succeeds or its start is cancelled. Short: when
// several nodes create the same stream at once, nats-server answers one of
// them and leaves the others without a reply, so those try again (which
// then finds the stream).
const attemptTimeout = time.Second

// Node is a running tally node.
type Node struct {
	cfg  Config
	tool bool // opened by OpenJournal: no client listener
	// metrics are served on --http at /metrics
	metrics *metrics.Metrics
	log     *slog.Logger
	lock    *dirLock
	ns      *server.Server // nil on an external NATS server
	user    nodeUser       // the node in ServiceAccount
	front   *nodeUser      // the gateway in ClientAccount, when it serves from there
	url     string

	stopOnce   sync.Once
	stopErr    error
	natsWarned sync.Map // connection and subject -> when natsError last warned
	health     health
	http       *http.Server

	mu          sync.Mutex
	conns       []*nats.Conn // closed by Stop
	updates     *nats.Conn
	publisher   *gateway.Publisher // on updates
	syncer      *journal.Syncer
	journal     *journal.Journal
	watcher     *nats.Subscription // other writers' events, on a node alone
	cluster     *cluster.Cluster   // in a cluster
	actors      *actors.Node
	gateway     *gateway.Gateway
	signin      *signin.Service                  // with --user-sig-key
	endUsers    *nats.Conn                       // the gateway's connection in UsersAccount, with --user-sig-key
	members     atomic.Pointer[membership.Index] // the user -> groups index, once open
	membersOpen chan struct{}                    // closed once members is set
}

// Start starts a node and returns once it answers requests. ctx bounds the
// start only; Stop stops the node.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{cfg: cfg, log: cfg.Logger, health: health{failed: make(chan struct{})}, metrics: metrics.New(), membersOpen: make(chan struct{})}
	if err := n.start(ctx); err != nil {
		n.close()
		return nil, err
	}
	n.log.Info("tally node serving", slog.String("url", Redact(n.url)), slog.String("journal", n.journal.String()))
	return n, nil
}

// start starts the node's parts in order; close stops those started.
func (n *Node) start(ctx context.Context) error {
	jcfg := journal.DefaultConfig()
	jcfg.KeepPerGroup = n.cfg.JournalKeep
	if n.cfg.Clustered() {
		// An append sent while the journal's leader stepped down or died is
		// never acknowledged, and its group waits for it: send it again
		// soon, and give up sooner than on one server, where no leader
		// changes.
		jcfg.AckTimeout = 2 * time.Second
		jcfg.Resend = 500 * time.Millisecond
	}
	gcfg := gateway.DefaultConfig()
	gcfg.Logger = n.log
	gcfg.Ready = func() bool { ok, _ := n.Ready(); return ok }
	if n.cfg.NATSURL == "" {
		if err := n.embed(ctx, jcfg.Stream, gcfg.Prefix); err != nil {
			return err
		}
		if n.cfg.Sync == SyncAlways && n.cfg.Cluster == "" && journal.HasSyncer {
			var err error
			if n.syncer, err = journal.NewSyncer(n.ns.StoreDir()); err != nil {
				return err
			}
			jcfg.Syncer = n.syncer
		}
	} else {
		n.url = n.cfg.NATSURL
		n.log.Info("using NATS server", slog.String("url", Redact(n.url)))
		if err := n.serveExternalSignIn(gcfg.Prefix); err != nil {
			return err
		}
	}
	js, err := n.jetStream()
	if err != nil {
		return err
	}
	if jcfg.Replicas, err = n.replicas(js); err != nil {
		return err
	}
	if jcfg.Shards, err = n.shards(js); err != nil {
		return err
	}
	if err := n.openJournal(ctx, js, jcfg); err != nil {
		return err
	}
	if n.cfg.Clustered() {
		if err := n.joinCluster(ctx, js, jcfg.Replicas); err != nil {
			return err
		}
		ic, err := n.Connect("internal")
		if err != nil {
			return err
		}
		gcfg.Router, gcfg.Internal, gcfg.Leave = n.cluster, ic, n.cluster.Stop
	}
	gcfg.History, gcfg.Metrics = n.history, n.metrics
	// Membership: the user -> groups index, replicated as the journal.
	if err := n.await(ctx, "the membership index "+membership.Bucket, func(ctx context.Context) error {
		var err error
		idx, err := membership.Open(ctx, js, membership.Config{Replicas: jcfg.Replicas, Storage: jetstream.FileStorage})
		if err == nil {
			n.members.Store(idx)
			close(n.membersOpen)
		}
		return err
	}); err != nil {
		return err
	}
	if err := n.startActors(ctx, gcfg.Prefix); err != nil {
		return err
	}
	n.watch()
	if n.cfg.HTTP != "" {
		if err := n.serveHTTP(n.cfg.HTTP); err != nil {
			return err
		}
	}
	gc, err := n.connectFront("gateway")
	if err != nil {
		return err
	}
	if gcfg.Admin, err = n.connectFront("gateway-admin"); err != nil {
		return err
	}
	gcfg.EndUsers = n.endUsers
	if n.ns != nil && n.cfg.Clustered() {
		if gcfg.Interest, err = n.replyInterest(); err != nil {
			return err
		}
	}
	n.gateway, err = gateway.Start(gc, n.actors, gcfg)
	return err
}

// replyInterest reports whether the embedded server knows a subscriber of
// a reply subject in the account of the gateway's connections (the end
// users' account for theirs): with a subscriber on another server, once
// that server told this one of it.
func (n *Node) replyInterest() (func(endUser bool, subject string) bool, error) {
	front, err := n.frontAccount()
	if err != nil {
		return nil, err
	}
	users, _ := n.ns.LookupAccount(UsersAccount) // none without end users
	return func(endUser bool, subject string) bool {
		acc := front
		if endUser {
			acc = users
		}
		return acc == nil || acc.SubscriptionInterest(subject)
	}, nil
}

// frontAccount is the embedded server's account of the clients' calls and
// of the updates: a configuration's clients' account, else the service's.
func (n *Node) frontAccount() (*server.Account, error) {
	name := ServiceAccount
	if n.front != nil {
		name = ClientAccount
	}
	acc, err := n.ns.LookupAccount(name)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	return acc, nil
}

// serveExternalSignIn serves the auth callout of an external server with
// --user-sig-key: the node's user is the callout account's, and the
// issuer the operator's (--callout-issuer). The gateway serves end users'
// calls with the node's user in their account (--users-*).
func (n *Node) serveExternalSignIn(prefix string) error {
	keys, err := newCalloutKeys(n.cfg)
	if err != nil || keys == nil {
		return err
	}
	cc, err := n.Connect("signin-callout")
	if err != nil {
		return err
	}
	// The node's user in the end users' account, as on the embedded
	// server: the operator's account imports no user subjects, whose
	// callers the node would know only by the import's reply subject.
	users := n.cfg.UsersCredentials.withTLSOf(n.cfg.Credentials)
	if n.endUsers, err = n.connectWith("gateway-users", nodeUser{}, users, nil); err != nil {
		return fmt.Errorf("the end users' account's user (--users-*): %w", err)
	}
	if err := checkUsersAccount(n.endUsers); err != nil {
		return err
	}
	if err := n.checkNoUserImport(cc, n.endUsers, prefix); err != nil {
		return err
	}
	var kick signin.Kick
	var subs signin.Subscribers
	if !n.cfg.SystemCredentials.empty() {
		sc, err := n.connectWith("system", nodeUser{}, n.cfg.SystemCredentials.withTLSOf(n.cfg.Credentials), nil)
		if err != nil {
			return fmt.Errorf("the system account's user (--sys-*): %w", err)
		}
		kick = kickOn(sc)
		if err := checkKick(sc, kick); err != nil {
			return err
		}
		subs = subscribersOn(sc, n.endUsers)
		if err := checkSubscribers(sc, prefix); err != nil {
			return err
		}
	}
	return n.serveSignIn(cc, keys, prefix, "", nil, kick, subs)
}

// noSuchClient is what a server's kick answers for a client ID it does not
// have (server.DisconnectClientByID).
const noSuchClient = "no such client"

// checkTimeout bounds each of the checks of an external server at start.
const checkTimeout = 2 * time.Second

// checkKick makes sure that the system account's user may kick: it asks
// the server it is connected to to kick a client ID no connection has, and
// expects the server's answer that there is none. A user of another
// account hears no answer (nobody serves the request there), one that may
// not publish the request or hear its reply none either; every kick would
// then fail, and a removed member keep her connections.
func checkKick(sc *nats.Conn, kick signin.Kick) error {
	serverID := sc.ConnectedServerId()
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	err := kick(ctx, serverID, math.MaxUint64)
	if errors.Is(err, signin.ErrNoConnection) {
		return nil
	}
	if err == nil {
		err = errors.New("the server kicked a client that should not exist")
	}
	return fmt.Errorf("the system account's user (--sys-*) cannot kick connections (%w): it must be a user of the server's system account that may publish to $SYS.REQ.SERVER.*.KICK and subscribe to its replies (_INBOX.>)", err)
}

// kickOn closes a connection of an external server with sc, a connection
// of its system account: $SYS.REQ.SERVER.<server>.KICK.
func kickOn(sc *nats.Conn) signin.Kick {
	return func(ctx context.Context, serverID string, id uint64) error {
		req, err := json.Marshal(server.KickClientReq{CID: id})
		if err != nil {
			return fmt.Errorf("kick connection %d of server %s: %w", id, serverID, err)
		}
		m, err := sc.RequestWithContext(ctx, "$SYS.REQ.SERVER."+serverID+".KICK", req)
		if err != nil {
			return fmt.Errorf("kick connection %d of server %s: %w", id, serverID, err)
		}
		var resp server.ServerAPIResponse
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			return fmt.Errorf("kick connection %d of server %s: %w", id, serverID, err)
		}
		if resp.Error != nil {
			if strings.Contains(resp.Error.Description, noSuchClient) {
				return fmt.Errorf("kick connection %d of server %s: %w: %s", id, serverID, signin.ErrNoConnection, resp.Error.Description)
			}
			return fmt.Errorf("kick connection %d of server %s: %s", id, serverID, resp.Error.Description)
		}
		return nil
	}
}

// checkNoUserImport makes sure that the end users' account imports no
// user subjects from the node's (a service import of tally.v1.u.> or
// tally.v1.user.> from TALLY into USERS): through one each end user's
// call would also reach the node's own account, and be served twice, once
// answered on the import's reply subject, which stands for whatever the
// caller chose. A request of the end users' connection on a user subject
// of no user is answered by the node's own connection when an import
// carries it, mapped or not; without one, the server says at once that
// nobody listens. (In a NATS cluster whose servers have not heard of the
// probe's subscription yet, an import can go unseen: the check finds
// imports, never refuses a configuration without one.)
func (n *Node) checkNoUserImport(own, users *nats.Conn, prefix string) error {
	id := nuid.Next()
	subject := prefix + ".user.probe." + id
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			// The connection stays: the subscriptions would answer
			// nothing anybody sends.
			if err := s.Unsubscribe(); err != nil {
				n.log.Warn("unsubscribe the check's probe", slog.String("subject", s.Subject), slog.Any("error", err))
			}
		}
	}()
	for _, s := range []string{subject, contract.PartitionedUserSubject(prefix, "*", "probe", id)} {
		sub, err := own.Subscribe(s, func(m *nats.Msg) { m.Respond(nil) })
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
		subs = append(subs, sub)
	}
	if err := own.Flush(); err != nil {
		return fmt.Errorf("subscribe %s: %w", subject, err)
	}
	_, err := users.Request(subject, nil, checkTimeout)
	switch {
	case err == nil:
		return fmt.Errorf("account %s imports the user subjects (%s.u.> or %s.user.>) from the node's account: remove the import, the node serves end users' calls in their account (docs/operations.md, \"Sign-in on an existing NATS server\")", UsersAccount, prefix, prefix)
	case !errors.Is(err, nats.ErrNoResponders):
		n.log.Warn("could not check that account "+UsersAccount+" imports no user subjects", slog.Any("error", err))
	}
	return nil
}

// checkUsersAccount asks the server which account the end users'
// connection is in ($SYS.REQ.USER.INFO, which every user may ask of
// itself): on another one than UsersAccount the gateway would answer the
// user subjects of that account's clients as end users' calls, and serve
// none of the end users'. When the server does not answer (the user may
// not publish the request or hear its reply), the node does not start
// either: it cannot tell.
func checkUsersAccount(nc *nats.Conn) error {
	const cannot = "could not check that the end users' account's user (--users-*) is in account " + UsersAccount
	m, err := nc.Request("$SYS.REQ.USER.INFO", nil, checkTimeout)
	if err != nil {
		return fmt.Errorf("%s (%w): the user must be allowed to publish to $SYS.REQ.USER.INFO and subscribe to its replies (_INBOX.>)", cannot, err)
	}
	var info struct {
		Data struct {
			Account string `json:"account"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return fmt.Errorf("%s: the server's answer %q: %w", cannot, m.Data, err)
	}
	if info.Data.Account == "" {
		return fmt.Errorf("%s: the server's answer %q names no account", cannot, m.Data)
	}
	if info.Data.Account != UsersAccount {
		return fmt.Errorf("the end users' account's user (--users-*) is in account %s: it must be in %s, where the auth_callout places end users", info.Data.Account, UsersAccount)
	}
	return nil
}

// jetStream connects the journal's connection.
func (n *Node) jetStream() (jetstream.JetStream, error) {
	// NoEcho: the journal's own appends never reach its watcher (see
	// watchJournal).
	jc, err := n.Connect("journal", nats.PingInterval(2*time.Second), nats.MaxPingsOutstanding(3), nats.NoEcho())
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(jc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}

// replicas is the journal's replication: the configured one, else 3 on a
// cluster of three servers or more and 1 otherwise.
func (n *Node) replicas(js jetstream.JetStream) (int, error) {
	if n.cfg.Replicas > 0 {
		return n.cfg.Replicas, nil
	}
	servers, err := n.servers(js)
	if servers >= 3 {
		return 3, err
	}
	return 1, err
}

// shards is how many streams a new journal gets: the configured number,
// else one per server, so that each server can lead one.
func (n *Node) shards(js jetstream.JetStream) (int, error) {
	if n.cfg.JournalShards > 0 {
		return n.cfg.JournalShards, nil
	}
	servers, err := n.servers(js)
	return min(servers, journal.MaxShards), err
}

// servers is how many servers the journal's NATS cluster has, as far as
// the node knows at start: its routes, or those the server told of.
func (n *Node) servers(js jetstream.JetStream) (int, error) {
	switch {
	case n.cfg.Cluster != "":
		routes, err := routeURLs(n.cfg.Routes)
		if err != nil {
			return 0, err
		}
		seen := map[string]bool{n.cfg.Cluster: true}
		for _, u := range routes {
			seen[u.Host] = true
		}
		return len(seen), nil
	case n.cfg.NATSURL != "":
		return len(js.Conn().Servers()), nil
	}
	return 1, nil
}

// openJournal opens the journal's stream. JetStream may not be there yet
// (a cluster elects its meta leader a few seconds after its servers
// start, and places a replicated stream only once enough of them run), so
// the node waits for it, saying what it waits for, until ctx ends.
func (n *Node) openJournal(ctx context.Context, js jetstream.JetStream, cfg journal.Config) error {
	err := n.await(ctx, "JetStream (on a cluster: its meta leader)", func(ctx context.Context) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
	if err != nil {
		return err
	}
	return n.await(ctx, fmt.Sprintf("the journal's streams (%s, %d shards for a new journal) with %d replicas", cfg.Stream, cfg.Shards, cfg.Replicas), func(ctx context.Context) error {
		var err error
		n.journal, err = journal.Open(ctx, js, cfg)
		return err
	})
}

// joinCluster registers the node in the cluster's buckets.
func (n *Node) joinCluster(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if n.ns != nil && replicas > 1 {
		l := n.journal.Layout()
		for s := range l.Shards {
			n.awaitCurrent(ctx, js, l.StreamOf(s))
		}
	}
	// The cluster's leases and heartbeats have a connection of their own:
	// appends in flight on the journal's do not hold them up.
	nc, err := n.Connect("cluster", nats.PingInterval(2*time.Second), nats.MaxPingsOutstanding(3))
	if err != nil {
		return err
	}
	cjs, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cfg := cluster.DefaultConfig()
	cfg.Name, cfg.Replicas, cfg.Logger, cfg.Metrics = n.cfg.Name, replicas, n.log, n.metrics
	cfg.Journal = n.journal.Layout()
	// One identity for every attempt below.
	cfg.Inbox, cfg.Started = cluster.NewInbox(cfg.Prefix), time.Now()
	// An attempt may wait for a crashed process's member record of the
	// same name to expire.
	timeout := attemptTimeout + cfg.MemberTTL + cfg.Heartbeat
	return n.awaitEach(ctx, "the cluster's members and leases buckets", timeout, func(ctx context.Context) error {
		var err error
		n.cluster, err = cluster.Start(ctx, cjs, cfg)
		return err
	})
}

// currentFor bounds how long a restarted node waits for its replica of
// the journal to catch up before it joins anyway.
const currentFor = 30 * time.Second

// awaitCurrent waits until the embedded server's replica of stream has
// caught up with its leader. A node that joins takes partitions, and
// reads the recent events of each group it loads back from the journal:
// while its own server still catches up, those reads are slow.
func (n *Node) awaitCurrent(ctx context.Context, js jetstream.JetStream, stream string) {
	ctx, cancel := context.WithTimeout(ctx, currentFor)
	defer cancel()
	me := n.ns.Name()
	for {
		actx, acancel := context.WithTimeout(ctx, attemptTimeout)
		info, err := js.Stream(actx, stream)
		var si *jetstream.StreamInfo
		if err == nil {
			si, err = info.Info(actx)
		}
		acancel()
		if err == nil && si.Cluster != nil {
			if si.Cluster.Leader == me {
				return
			}
			peer := false
			for _, r := range si.Cluster.Replicas {
				if r.Name == me && r.Current {
					return
				}
				peer = peer || r.Name == me
			}
			if !peer && si.Cluster.Leader != "" {
				return // a stream this server holds no replica of (R3 on five servers)
			}
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				n.log.Warn("joining the cluster before this server's replica of the journal caught up", slog.Duration("waited", currentFor))
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// await calls try until it succeeds, a permanent error, or ctx ends, each
// attempt bounded by attemptTimeout, and logs what it waits for every few
// seconds.
func (n *Node) await(ctx context.Context, what string, try func(ctx context.Context) error) error {
	return n.awaitEach(ctx, what, attemptTimeout, try)
}

// awaitEach is await with attempts bounded by timeout.
func (n *Node) awaitEach(ctx context.Context, what string, timeout time.Duration, try func(ctx context.Context) error) error {
	start, logged := time.Now(), time.Time{}
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := try(actx)
		cancel()
		if err == nil {
			if !logged.IsZero() {
				n.log.Info("done waiting", slog.String("for", what), slog.Duration("waited", time.Since(start)))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w (last error: %w)", what, ctx.Err(), err)
		}
		if permanent(err) {
			return err
		}
		if time.Since(logged) >= 5*time.Second {
			logged = time.Now()
			n.log.Warn("waiting", slog.String("for", what), slog.Duration("waited", time.Since(start).Round(time.Millisecond)), slog.Any("reason", err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// permanent reports a failure that waiting does not mend: a configuration
// the server will not take, a name another node has.
func permanent(err error) bool {
	if errors.Is(err, cluster.ErrNameTaken) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jetstream.JSErrCodeStreamNameInUse, 10065 /* subjects overlap */, 10052 /* invalid config */ :
		return true
	}
	return false
}

// startActors starts the actors, publishing updates under prefix. A node
// alone recovers the request IDs of the dedupe window before any request
// comes; a node of a cluster, group by group as it loads the groups of the
// partitions it takes.
func (n *Node) startActors(ctx context.Context, prefix string) error {
	var err error
	if n.updates, err = n.connectFront("updates"); err != nil {
		return err
	}
	cfg := actors.DefaultConfig()
	cfg.Journal, cfg.Logger, cfg.Metrics = n.journal, n.log, n.metrics
	cfg.Flood = n.flooded
	pub := gateway.NewPublisher(n.updates, prefix, n.log)
	n.publisher = pub
	pub.Metrics = n.metrics
	if n.ns != nil {
		acc, err := n.frontAccount()
		if err != nil {
			return err
		}
		pub.Interest = acc.SubscriptionInterest
	}
	cfg.Publisher = pub
	// Membership: the index the groups write, and who is told of changes.
	cfg.Index, cfg.MembersChanged = n.members.Load(), n.cfg.MembersChanged
	if cfg.MembersChanged == nil {
		cfg.MembersChanged = n.membersChanged
	}
	if n.cfg.Clock != nil {
		cfg.Clock = n.cfg.Clock
	}
	if n.cluster != nil {
		cfg.Leases = n.cluster
	}
	cfg.DedupeWindow, cfg.PassivateAfter, cfg.ActorIdle = n.cfg.DedupeWindow, n.cfg.PassivateAfter, n.cfg.ActorIdle
	if n.cfg.JournalKeep > 0 {
		cfg.MinAppendGap = n.cfg.DedupeWindow / time.Duration(n.cfg.JournalKeep)
	}
	if n.actors, err = actors.Start(cfg); err != nil {
		return err
	}
	n.registerMetrics()
	if n.cluster != nil {
		// A node that takes a partition reads back the request IDs of its
		// groups as it loads them (actors.Config.RecoverEvents).
		return nil
	}
	// A node alone is its journal's only writer: an event that another
	// writer stores (a tool, an operator, a forger) makes the group reload
	// from the journal, so that a group in memory never serves a state
	// the journal no longer has, nor one whose last event is damaged. In a
	// cluster, leases and each group's fenced appends keep one writer per
	// group, and every node sees the others' appends: a foreign event is
	// found at the group's next write or load.
	if n.watcher, err = n.journal.WatchOthers(n.actors.Stale); err != nil {
		return err
	}
	start := time.Now()
	ids, err := n.actors.Recover(ctx, n.journal)
	if err != nil {
		return err
	}
	n.log.Info("recovered the request IDs of the dedupe window", slog.Int("ids", ids), slog.Duration("took", time.Since(start)))
	return nil
}

// embed locks the data directory and starts the embedded server.
func (n *Node) embed(ctx context.Context, stream, prefix string) error {
	user, key, err := newNodeUser()
	if err != nil {
		return err
	}
	front, frontKey, err := newNodeUser()
	if err != nil {
		return err
	}
	n.user = user
	cfg := n.cfg
	var callout *calloutKeys
	if n.tool {
		cfg.WebSocket = "" // the journal tools' server serves no client
	} else if callout, err = newCalloutKeys(cfg); err != nil {
		return err
	}
	opts, serveFront, err := embeddedOptions(cfg, prefix, key, frontKey, callout)
	if err != nil {
		return err
	}
	if serveFront {
		n.front = &front
	}
	if n.tool {
		opts.DontListen = true // the journal tools' server serves no client
	}
	if opts.StoreDir, err = filepath.Abs(opts.StoreDir); err != nil {
		return fmt.Errorf("data directory %q: %w", opts.StoreDir, err)
	}
	if n.lock, err = lockDir(opts.StoreDir); err != nil {
		return err
	}
	if !lockEnforced {
		n.log.Warn("the data directory's lock is not enforced on this system: never start two nodes on one data directory", slog.String("data", opts.StoreDir))
	}
	if n.ns, err = startEmbedded(ctx, opts, stream, n.log); err != nil {
		return err
	}
	if acc, err := n.ns.LookupAccount(ServiceAccount); err != nil || !acc.JetStreamEnabled() {
		return fmt.Errorf("NATS configuration %s: account %s must have jetstream enabled: it holds the journal", n.cfg.NATSConfig, ServiceAccount)
	}
	n.url = n.ns.ClientURL()
	n.log.Info("embedded NATS server started", slog.String("url", n.url), slog.String("data", opts.StoreDir), slog.String("sync", n.cfg.Sync))
	if opts.Websocket.Port != 0 {
		n.log.Info("WebSocket listener", slog.String("address", fmt.Sprintf("%s:%d", opts.Websocket.Host, opts.Websocket.Port)), slog.Bool("tls", !opts.Websocket.NoTLS))
	}
	if callout == nil {
		return nil
	}
	cc, err := n.connect("signin-callout", callout.user, nil)
	if err != nil {
		return err
	}
	if n.endUsers, err = n.connect("gateway-users", callout.gateway, nil); err != nil {
		return err
	}
	return n.serveSignIn(cc, callout, prefix, n.ns.ID(), signin.ServerConns(n.ns), nil, signin.ServerSubscribers(n.ns))
}

// serveSignIn starts the sign-in callout's service on cc, a connection to
// the callout account; on the embedded server it answers serverID's
// requests only, counting and closing their connections through conns.
// On an external server, kick (when the node has a system account's user)
// closes the connections it let in. subs, when set, lists end users'
// subscriptions, so that those to every group's updates are closed.
func (n *Node) serveSignIn(cc *nats.Conn, keys *calloutKeys, prefix, serverID string, conns signin.Conns, kick signin.Kick, subs signin.Subscribers) error {
	ic, err := n.Connect("signin")
	if err != nil {
		return err
	}
	cfg := signin.DefaultConfig()
	cfg.Key, cfg.Issuer, cfg.Prefix, cfg.Groups = keys.key, keys.issuer, prefix, n.cfg.Groups
	if cfg.Groups == nil {
		cfg.Groups = n.memberGroups
	}
	cfg.Server, cfg.Conns, cfg.Kick, cfg.Logger = serverID, conns, kick, n.log.With(slog.String("component", "signin"))
	cfg.Subscribers, cfg.AbuseBan = subs, floodBan
	if n.signin, err = signin.Start(cc, ic, cfg); err != nil {
		return err
	}
	issuer, err := keys.issuer.PublicKey()
	if err != nil {
		return fmt.Errorf("callout issuer: %w", err)
	}
	n.log.Info("signing end users in", slog.String("account", UsersAccount), slog.String("issuer", issuer))
	return nil
}

// floodBan is how long a user who flooded the node, subscribed to every
// group's updates, or kept signing in past her connection cap, may not
// sign in again.
const floodBan = time.Minute

// flooded closes the end-user connections of a user whose calls go on
// after the rate limit refused them (actors.Config.Flood), and refuses its
// sign-ins for floodBan: refusing each call still costs the node, and the
// connections would go on sending.
func (n *Node) flooded(user string) {
	if n.signin == nil {
		n.log.Warn("a user's calls go on after the rate limit refused them", slog.String("user", user))
		return
	}
	n.log.Warn("a user's calls go on after the rate limit refused them: closing its end-user connections and refusing its sign-ins",
		slog.String("user", user), slog.Duration("for", floodBan))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.signin.Ban(ctx, user, floodBan); err != nil {
		n.log.Warn("ban a flooding user", slog.String("user", user), slog.Any("error", err))
	}
}

// DisconnectUsers closes the end-user connections of users on every node
// of the cluster, so that they sign in again with the grants of now (after
// a change of their groups, say). Without --user-sig-key it does nothing.
func (n *Node) DisconnectUsers(ctx context.Context, users []string) error {
	if n.signin == nil {
		return nil
	}
	var errs []error
	for _, u := range users {
		errs = append(errs, n.signin.Disconnect(ctx, u))
	}
	return errors.Join(errs...)
}

// ClientURL is where clients connect: the embedded server's client URL, or
// the NATS URL the node was given, with any password redacted.
func (n *Node) ClientURL() string { return Redact(n.url) }

// Members returns the node's user -> groups index, which sign-in reads.
func (n *Node) Members() *membership.Index { return n.members.Load() }

// memberGroups lists a user's members-only groups for sign-in, from the
// index: a sign-in while the node starts waits for it, within ctx.
func (n *Node) memberGroups(ctx context.Context, user string) ([]string, error) {
	select {
	case <-n.membersOpen:
	case <-ctx.Done():
		return nil, fmt.Errorf("the membership index is not open yet: %w", ctx.Err())
	}
	return n.members.Load().GroupsOf(ctx, user)
}

// membersChanged closes the end-user connections of users whose
// membership changed, on every node: NATS checks subscribe permissions
// only when a subscription is made, so they sign in again and get the
// grants of their groups now. When it cannot, the change is answered
// 10002, and its retry closes them.
func (n *Node) membersChanged(ctx context.Context, users []string) error {
	if err := n.DisconnectUsers(ctx, users); err != nil {
		return fmt.Errorf("disconnect users whose membership changed: %w", err)
	}
	return nil
}

// Server is the embedded NATS server, for monitoring; nil on an external
// one.
func (n *Node) Server() *server.Server { return n.ns }

// Connect opens a connection as the node itself: on the embedded server an
// in-process one into ServiceAccount, which reaches the journal and the
// JetStream API. The node closes it when it stops.
func (n *Node) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	return n.connect(name, n.user, opts)
}

// connectFront opens the gateway's and the publisher's connections: in
// ClientAccount when the gateway serves from there, else as Connect.
func (n *Node) connectFront(name string) (*nats.Conn, error) {
	if n.front != nil {
		return n.connect(name, *n.front, nil)
	}
	return n.Connect(name)
}

func (n *Node) connect(name string, user nodeUser, opts []nats.Option) (*nats.Conn, error) {
	return n.connectWith(name, user, n.cfg.Credentials, opts)
}

// connectWith connects as user on the embedded server, or with creds on
// an external one.
func (n *Node) connectWith(name string, user nodeUser, creds Credentials, opts []nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.Name("tally-" + name), nats.MaxReconnects(-1), nats.ErrorHandler(n.natsError)}
	if n.ns != nil {
		// An in-process connection is a pipe to the server in this
		// process: a write deadline guards against no network there, and
		// setting one on every flush cost a timer each time.
		base = append(base, nats.InProcessServer(n.ns), user.option(), nats.FlusherTimeout(0))
	} else {
		copts, err := creds.options()
		if err != nil {
			return nil, fmt.Errorf("NATS credentials: %w", err)
		}
		base = append(base, copts...)
	}
	nc, err := nats.Connect(n.url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", Redact(n.url), err)
	}
	n.mu.Lock()
	n.conns = append(n.conns, nc)
	n.mu.Unlock()
	return nc, nil
}

// natsError logs what the NATS client reports of a node's connection
// without a call to report it to: a subscription that fell behind and
// dropped messages (the gateway sheds requests it cannot take in time), a
// permission the server refused.
// A flood makes a subscription drop messages again and again: it is said
// once per connection and subject every 10 s, with how many it dropped.
func (n *Node) natsError(nc *nats.Conn, sub *nats.Subscription, err error) {
	key, attrs := nc.Opts.Name, []any{slog.String("connection", nc.Opts.Name), slog.Any("error", err)}
	if sub != nil {
		key += " " + sub.Subject
		attrs = append(attrs, slog.String("subject", sub.Subject))
		if dropped, derr := sub.Dropped(); derr == nil {
			attrs = append(attrs, slog.Int("dropped", dropped))
		}
	}
	now := time.Now()
	if last, ok := n.natsWarned.Load(key); ok && now.Sub(last.(time.Time)) < 10*time.Second {
		return
	}
	n.natsWarned.Store(key, now)
	n.log.Warn("NATS connection", attrs...)
}

// Stop stops taking requests, answers those taken, flushes the updates and
// stops everything, at most until ctx ends. Calls after the first return
// the first's result.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() { n.stopErr = n.stop(ctx) })
	return n.stopErr
}

func (n *Node) stop(ctx context.Context) error {
	n.log.Info("stopping: no new requests; finishing those taken")
	err := n.gateway.Stop(ctx)
	n.stopHealth(ctx)
	// Updates of the last changes are still in the publisher's queue and
	// the connection's buffer.
	if perr := n.publisher.Close(ctx); perr != nil {
		err = errors.Join(err, fmt.Errorf("publish updates: %w", perr))
	}
	if ferr := n.updates.FlushWithContext(ctx); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("flush updates: %w", ferr))
	}
	n.close()
	if err == nil {
		n.log.Info("stopped")
	}
	return err
}

// close stops whatever was started, in reverse order.
func (n *Node) close() {
	n.stopHealth(context.Background())
	if n.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n.cluster.Stop(ctx) // after a failed start; Stop left it already
		cancel()
	}
	if n.watcher != nil {
		n.watcher.Unsubscribe() // before the actors it tells stop
	}
	if n.actors != nil {
		n.actors.Stop()
	}
	if n.signin != nil {
		n.signin.Stop()
	}
	if n.publisher != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n.publisher.Close(ctx) // after a failed start; Stop closed it already
		cancel()
	}
	n.mu.Lock()
	for _, nc := range n.conns {
		nc.Close()
	}
	n.mu.Unlock()
	if n.ns != nil {
		if n.cfg.Cluster != "" {
			n.ns.LameDuckShutdown() // returns once the server is shut down
		}
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
	if n.syncer != nil {
		n.syncer.Close()
	}
	n.lock.release()
}
