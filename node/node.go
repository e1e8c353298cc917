package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
)

// openTimeout bounds how long a node waits for the journal's stream.
const openTimeout = 30 * time.Second

// Node is a running tally node.
type Node struct {
	cfg   Config
	log   *slog.Logger
	lock  *dirLock
	ns    *server.Server // nil on an external NATS server
	user  nodeUser       // the node in ServiceAccount
	front *nodeUser      // the gateway in ClientAccount, when it serves from there
	url   string

	stopOnce sync.Once
	stopErr  error
	health   health
	http     *http.Server
	httpAddr string

	mu      sync.Mutex
	conns   []*nats.Conn // closed by Stop
	updates *nats.Conn
	syncer  *journal.Syncer
	journal *journal.Journal
	actors  *actors.Node
	gateway *gateway.Gateway
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
	n := &Node{cfg: cfg, log: cfg.Logger, health: health{failed: make(chan struct{})}}
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
	gcfg := gateway.DefaultConfig()
	gcfg.Logger = n.log
	gcfg.Ready = func() bool { ok, _ := n.Ready(); return ok }
	if n.cfg.NATSURL == "" {
		if err := n.embed(ctx, jcfg.Stream, gcfg.Prefix); err != nil {
			return err
		}
		if n.cfg.Sync == SyncAlways {
			var err error
			if n.syncer, err = journal.NewSyncer(n.ns.StoreDir()); err != nil {
				return err
			}
			jcfg.Syncer = n.syncer
		}
	} else {
		n.url = n.cfg.NATSURL
		n.log.Info("using NATS server", slog.String("url", Redact(n.url)))
	}
	if err := n.openJournal(ctx, jcfg); err != nil {
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
	n.gateway, err = gateway.Start(gc, n.actors, gcfg)
	return err
}

// openJournal opens the journal's stream, waiting at most openTimeout.
func (n *Node) openJournal(ctx context.Context, cfg journal.Config) error {
	jc, err := n.Connect("journal")
	if err != nil {
		return err
	}
	js, err := jetstream.New(jc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	n.journal, err = journal.Open(ctx, js, cfg)
	return err
}

// startActors starts the actors, publishing updates under prefix, and
// recovers the request IDs of the dedupe window before any request comes.
func (n *Node) startActors(ctx context.Context, prefix string) error {
	var err error
	if n.updates, err = n.connectFront("updates"); err != nil {
		return err
	}
	cfg := actors.DefaultConfig()
	cfg.Journal, cfg.Logger = n.journal, n.log
	pub := gateway.NewPublisher(n.updates, prefix, n.log)
	if n.ns != nil {
		name := ServiceAccount
		if n.front != nil {
			name = ClientAccount
		}
		acc, err := n.ns.LookupAccount(name)
		if err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
		pub.Interest = acc.SubscriptionInterest
	}
	cfg.Publisher = pub
	if n.cfg.Clock != nil {
		cfg.Clock = n.cfg.Clock
	}
	cfg.DedupeWindow, cfg.PassivateAfter, cfg.ActorIdle = n.cfg.DedupeWindow, n.cfg.PassivateAfter, n.cfg.ActorIdle
	if n.cfg.JournalKeep > 0 {
		cfg.MinAppendGap = n.cfg.DedupeWindow / time.Duration(n.cfg.JournalKeep)
	}
	if n.actors, err = actors.Start(cfg); err != nil {
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
	opts, serveFront, err := embeddedOptions(n.cfg, prefix, key, frontKey)
	if err != nil {
		return err
	}
	if serveFront {
		n.front = &front
	}
	if opts.StoreDir, err = filepath.Abs(opts.StoreDir); err != nil {
		return fmt.Errorf("data directory %q: %w", opts.StoreDir, err)
	}
	if n.lock, err = lockDir(opts.StoreDir); err != nil {
		return err
	}
	if n.ns, err = startEmbedded(ctx, opts, stream, n.log); err != nil {
		return err
	}
	if acc, err := n.ns.LookupAccount(ServiceAccount); err != nil || !acc.JetStreamEnabled() {
		return fmt.Errorf("NATS configuration %s: account %s must have jetstream enabled: it holds the journal", n.cfg.NATSConfig, ServiceAccount)
	}
	n.url = n.ns.ClientURL()
	n.log.Info("embedded NATS server started", slog.String("url", n.url), slog.String("data", opts.StoreDir), slog.String("sync", n.cfg.Sync))
	return nil
}

// ClientURL is where clients connect: the embedded server's client URL, or
// the NATS URL the node was given, with any password redacted.
func (n *Node) ClientURL() string { return Redact(n.url) }

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
	base := []nats.Option{nats.Name("tally-" + name), nats.MaxReconnects(-1)}
	if n.ns != nil {
		base = append(base, nats.InProcessServer(n.ns), user.option())
	} else {
		creds, err := n.cfg.Credentials.options()
		if err != nil {
			return nil, fmt.Errorf("NATS credentials: %w", err)
		}
		base = append(base, creds...)
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
	// Updates of the last changes are still in the publisher's buffer.
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
	if n.actors != nil {
		n.actors.Stop()
	}
	n.mu.Lock()
	for _, nc := range n.conns {
		nc.Close()
	}
	n.mu.Unlock()
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
	if n.syncer != nil {
		n.syncer.Close()
	}
	n.lock.release()
}
