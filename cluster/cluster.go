// Package cluster places tally's groups and users on the nodes of a
// cluster, with NATS JetStream as the only coordinator.
//
// Groups and users fall into a fixed number of partitions by the FNV-1a
// hash of their IDs. Nodes register in a members bucket with heartbeats and
// a TTL, each naming its NATS server. With a journal of several shards, a
// partition's owner is its shard's owner (Assign: one among the members
// on the servers of the shard's stream), who also moves the stream's
// leader to its own server (leaders.go); with a journal of one stream,
// each partition's owner is chosen by rendezvous hashing over the live
// members. The owner holds a lease on the partition, a key of the leases
// bucket created by the owner and renewed with the revision it last saw
// (a compare and set): the revision at creation is the lease's epoch. A node serves a
// partition only while its lease is valid by its own monotonic clock, which
// it counts from before each renewal was sent, with a margin: the bucket
// removes the key no earlier than TTL after it stored the renewal, so no
// other node can hold the partition while this one serves it. A node that
// is paused or cut off from the buckets' servers stops serving by itself.
//
// Leases make reads safe, with what a new owner loads: it confirms the
// group's last event through a write (journal.Confirm), since a journal
// stream's leader cut off from its replicas answers reads from an old
// store for seconds after the others elected another. Writes do not rest
// on leases. Every append to the journal is fenced by the group's last
// sequence, so even a node that serves a partition it lost cannot
// interleave its events with the new owner's.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// Cluster is a node's membership of a cluster.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	members jetstream.KeyValue
	leases  jetstream.KeyValue
	js      jetstream.JetStream
	nc      *nats.Conn
	pong    *nats.Subscription // answers the others' probes
	elected *nats.Subscription // the journal streams' leader elections
	server  string             // the NATS server nc is on; guarded by mu
	inbox   string
	record  atomic.Pointer[[]byte] // this node's member record
	lease   []byte                 // this node's lease value
	base    time.Time
	ttl     int64 // nanos a lease is valid after its renewal was sent

	parts []part

	mu      sync.Mutex
	view    map[string]*messages.Member // live members by name
	ranked  []ranked                    // the view, for rendezvous hashing
	holders []*messages.Lease           // each partition's holder by the watch, or nil
	parked  [][]waiter
	shards  []shard // the journal's shards, with several
	stopped bool    // Stop began: acquire nothing more

	// wmu guards the watcher (see Watch) and the partitions it was told
	// are here.
	wmu     sync.Mutex
	watcher func(p int, here bool)
	watched []bool

	memberRev atomic.Uint64
	beaten    atomic.Int64 // mono nanos when the last heartbeat that got through was sent
	// mono nanos of the first heartbeat that got through after one that
	// did not, and whether the last one did not
	beatingSince atomic.Int64
	beatFailed   atomic.Bool
	probed       atomic.Pointer[probe] // the last probe of the other members
	probing      atomic.Bool
	failed       chan error // ErrNameTaken, when another node took the name
	membersSeen  atomic.Bool
	leasesSeen   atomic.Bool
	poke         chan struct{}
	reread       chan struct{} // a journal stream elected a leader
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	owned        atomic.Int32 // partitions owned, for logs
	lastLogOwned int32
}

// Start joins the cluster: it creates the buckets if need be, registers
// the node and starts acquiring its partitions. It returns once the node
// is registered; the node's leases follow in the background.
func Start(ctx context.Context, js jetstream.JetStream, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Inbox == "" {
		cfg.Inbox = NewInbox(cfg.Prefix)
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	c := &Cluster{
		cfg: cfg, log: cfg.Logger.With(slog.String("component", "cluster")),
		inbox: cfg.Inbox, base: time.Now(),
		parts: make([]part, cfg.Partitions), view: map[string]*messages.Member{},
		holders: make([]*messages.Lease, cfg.Partitions), parked: make([][]waiter, cfg.Partitions),
		poke: make(chan struct{}, 1), failed: make(chan error, 1), reread: make(chan struct{}, 1),
		js: js, nc: js.Conn(),
	}
	if cfg.Journal.Shards > 1 {
		c.shards = make([]shard, cfg.Journal.Shards)
	}
	c.server = c.nc.ConnectedServerName()
	record, err := proto.Marshal(&messages.Member{Name: cfg.Name, Inbox: c.inbox, StartedUnixNano: cfg.Started.UnixNano(), Server: c.server})
	if err != nil {
		return nil, fmt.Errorf("cluster: member record: %w", err)
	}
	c.record.Store(&record)
	if c.lease, err = proto.Marshal(&messages.Lease{Node: cfg.Name, Inbox: c.inbox}); err != nil {
		return nil, fmt.Errorf("cluster: lease: %w", err)
	}
	if c.members, err = c.bucket(ctx, js, cfg.MembersBucket, "tally cluster members: one key per node, kept alive by heartbeats", cfg.MemberTTL); err != nil {
		return nil, err
	}
	if c.leases, err = c.bucket(ctx, js, cfg.LeasesBucket, "tally partition leases: the key's revision is the lease's epoch", cfg.LeaseTTL); err != nil {
		return nil, err
	}
	status, err := c.leases.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", cfg.LeasesBucket, err)
	}
	// Another node may have set the bucket's TTL: count from the shorter.
	c.ttl = int64(min(status.TTL(), cfg.LeaseTTL) - cfg.LeaseMargin)
	if len(c.shards) > 0 {
		// Before the view: the first owners already know the peers.
		c.readShards(ctx)
		if c.elected, err = c.watchLeaders(); err != nil {
			return nil, err
		}
	}
	if c.pong, err = c.nc.Subscribe(c.inbox+probeSuffix, func(m *nats.Msg) { m.Respond(nil) }); err != nil {
		c.unwatchLeaders()
		return nil, fmt.Errorf("cluster: subscribe %s: %w", c.inbox+probeSuffix, err)
	}
	if err := c.register(ctx); err != nil {
		c.pong.Unsubscribe()
		c.unwatchLeaders()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if err := c.watch(rctx); err != nil {
		cancel()
		c.pong.Unsubscribe()
		c.unwatchLeaders()
		return nil, err
	}
	c.wg.Go(func() { c.heartbeat(rctx) })
	c.wg.Go(func() { c.run(rctx) })
	if len(c.shards) > 0 {
		c.wg.Go(func() { c.keepLeaders(rctx) })
	}
	c.log.Info("joined the cluster", slog.String("node", cfg.Name), slog.Int("partitions", cfg.Partitions), slog.Int("replicas", cfg.Replicas))
	return c, nil
}

// NewInbox returns a subject under prefix for one process's forwarded
// calls.
func NewInbox(prefix string) string { return prefix + "." + nuid.Next() }

// Inbox is the subject on which this node takes forwarded calls.
func (c *Cluster) Inbox() string { return c.inbox }

// Name is this node's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// Ready reports whether the node is a member that knows the cluster: it
// read the members and the leases, and its heartbeats get through.
func (c *Cluster) Ready() bool {
	return c.membersSeen.Load() && c.leasesSeen.Load() && c.member()
}

// Owned is how many partitions the node holds.
func (c *Cluster) Owned() int { return int(c.owned.Load()) }

func (c *Cluster) mono() int64 { return int64(time.Since(c.base)) }

func (c *Cluster) kick() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// Failed delivers ErrNameTaken when another node registered under this
// node's name while this one was away: the node must stop.
func (c *Cluster) Failed() <-chan error { return c.failed }

// Stop leaves the cluster: the node drops its member record, hands every
// partition it holds over to its next owner and stops, at most until ctx
// ends.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	already := c.stopped
	c.stopped = true
	delete(c.view, c.cfg.Name)
	c.rank()
	c.mu.Unlock()
	if already {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	// Only this process's own record: a heartbeat in flight may have moved
	// its revision on.
	derr := c.members.Delete(dctx, c.cfg.Name, jetstream.LastRevision(c.memberRev.Load()))
	if derr != nil && journal.WrongLastSequence(derr) && c.adopt(dctx) == ours {
		derr = c.members.Delete(dctx, c.cfg.Name, jetstream.LastRevision(c.memberRev.Load()))
	}
	cancel()
	if derr != nil {
		// Not a failure of the stop: the record expires within MemberTTL,
		// and the others take the partitions as this node hands them over.
		c.log.Warn("leaving: the member record stays until it expires", slog.Any("error", derr))
	}
	c.kick()
	for c.holding() && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	var err error
	if c.holding() {
		err = fmt.Errorf("cluster: leave: partitions still held: %w", ctx.Err())
	}
	c.cancel()
	c.wg.Wait()
	if uerr := c.pong.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) {
		c.log.Debug("leaving: unsubscribe from probes", slog.Any("error", uerr))
	}
	c.unwatchLeaders()
	c.replaceAll()
	return err
}

// holding reports whether any partition is still held here.
func (c *Cluster) holding() bool {
	for p := range c.parts {
		if c.parts[p].state.Load() != free {
			return true
		}
	}
	return false
}
