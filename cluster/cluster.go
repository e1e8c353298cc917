// Package cluster places tally's groups and users on the nodes of a
// cluster, with NATS JetStream as the only coordinator.
//
// Groups and users fall into a fixed number of partitions by the FNV-1a
// hash of their IDs. Nodes register in a members bucket with heartbeats and
// a TTL; each partition's owner is chosen by rendezvous hashing over the
// live members and holds a lease on it, a key of the leases bucket created
// by the owner and renewed with the revision it last saw (a compare and
// set): the revision at creation is the lease's epoch. A node serves a
// partition only while its lease is valid by its own monotonic clock, which
// it counts from before each renewal was sent, with a margin: the bucket
// removes the key no earlier than TTL after it stored the renewal, so no
// other node can hold the partition while this one serves it. A node that
// is paused or cut off from the buckets' servers stops serving by itself.
//
// Leases make reads safe; writes do not rest on them. Every append to the
// journal is fenced by the group's last sequence, so even a node that
// serves a partition it lost cannot interleave its events with the new
// owner's.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/messages"
)

// ErrNoOwner means a partition had no node to serve it in time: a node
// died or left and the lease it held has not expired yet, or the cluster
// has no members the node can reach.
var ErrNoOwner = errors.New("no node serves the partition now")

// Partition states.
const (
	free    = iota // not held here
	owned          // held, taking calls
	leaving        // held, taking no new calls, handing over
)

// part is one partition as this node sees it. state, epoch, since and
// until are read by every call; the rest belongs to whoever set busy.
type part struct {
	state    atomic.Int32
	epoch    atomic.Uint64 // the lease's revision when this node created it
	since    atomic.Int64  // unix nanos when this node acquired the lease
	until    atomic.Int64  // mono nanos until which the lease is valid
	inflight atomic.Int64  // calls entered and not yet exited
	busy     atomic.Bool   // a bucket operation on the lease is running
	handing  atomic.Bool   // a handover is draining the partition's calls

	rev     uint64 // the lease key's last revision, for the next renewal
	renewed int64  // mono nanos when the last renewal was sent
}

type waiter struct {
	fn       func(inbox string, err error)
	deadline int64 // mono nanos
}

// Cluster is a node's membership of a cluster.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	members jetstream.KeyValue
	leases  jetstream.KeyValue
	nc      *nats.Conn
	pong    *nats.Subscription // answers the others' probes
	inbox   string
	record  []byte // this node's member record
	lease   []byte // this node's lease value
	base    time.Time
	ttl     int64 // nanos a lease is valid after its renewal was sent

	parts []part

	mu      sync.Mutex
	view    map[string]*messages.Member // live members by name
	ranked  []ranked                    // the view, for rendezvous hashing
	holders []*messages.Lease           // each partition's holder by the watch, or nil
	parked  [][]waiter
	stopped bool // Stop began: acquire nothing more

	registered atomic.Bool
	memberRev  atomic.Uint64
	beaten     atomic.Int64 // mono nanos when the last heartbeat that got through was sent
	// mono nanos of the first heartbeat that got through after one that
	// did not, and whether the last one did not
	beatingSince atomic.Int64
	beatFailed   atomic.Bool
	probed       atomic.Pointer[probe] // the last probe of the other members
	failed       chan error            // ErrNameTaken, when another node took the name
	membersSeen  atomic.Bool
	leasesSeen   atomic.Bool
	poke         chan struct{}
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	owned        atomic.Int32 // partitions owned, for logs
	lastLogOwned int32
}

// probe is what a probe of the other members found.
type probe struct {
	at       int64 // mono nanos
	answered int
	asked    int
}

// reaching reports whether the probe reached most of the cluster, this
// node included.
func (p *probe) reaching() bool { return 2*(p.answered+1) > p.asked+1 }

type ranked struct {
	name  string
	hash  uint64
	inbox string
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
		poke: make(chan struct{}, 1), failed: make(chan error, 1),
	}
	var err error
	c.record, err = proto.Marshal(&messages.Member{Name: cfg.Name, Inbox: c.inbox, StartedUnixNano: cfg.Started.UnixNano()})
	if err != nil {
		return nil, fmt.Errorf("cluster: member record: %w", err)
	}
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
	c.nc = js.Conn()
	if c.pong, err = c.nc.Subscribe(c.inbox+probeSuffix, func(m *nats.Msg) { m.Respond(nil) }); err != nil {
		return nil, fmt.Errorf("cluster: subscribe %s: %w", c.inbox+probeSuffix, err)
	}
	if err := c.register(ctx); err != nil {
		c.pong.Unsubscribe()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if err := c.watch(rctx); err != nil {
		cancel()
		c.pong.Unsubscribe()
		return nil, err
	}
	c.wg.Go(func() { c.heartbeat(rctx) })
	c.wg.Go(func() { c.run(rctx) })
	c.log.Info("joined the cluster", slog.String("node", cfg.Name), slog.Int("partitions", cfg.Partitions), slog.Int("replicas", cfg.Replicas))
	return c, nil
}

// NewInbox returns a subject under prefix for one process's forwarded
// calls.
func NewInbox(prefix string) string { return prefix + "." + nuid.Next() }

// bucket creates or updates a bucket, checking that it has this node's
// partition count.
func (c *Cluster) bucket(ctx context.Context, js jetstream.JetStream, name, description string, ttl time.Duration) (jetstream.KeyValue, error) {
	parts := strconv.Itoa(c.cfg.Partitions)
	// The bucket's stream, made here rather than by CreateOrUpdateKeyValue
	// for one difference: no direct gets. A direct get may be answered by a
	// replica that lags behind its leader, and one that just restarted
	// still has, or already expired, records the leader replaced long ago;
	// the cluster reads its buckets through their leaders.
	want := jetstream.StreamConfig{
		Name:                   "KV_" + name,
		Description:            description,
		Subjects:               []string{"$KV." + name + ".>"},
		MaxMsgsPerSubject:      1,
		MaxBytes:               -1,
		MaxAge:                 ttl,
		MaxMsgSize:             -1,
		MaxMsgs:                -1,
		MaxConsumers:           -1,
		Storage:                c.cfg.Storage,
		Replicas:               c.cfg.Replicas,
		AllowRollup:            true,
		DenyDelete:             true,
		Duplicates:             min(ttl, 2*time.Minute),
		Discard:                jetstream.DiscardNew,
		AllowMsgTTL:            true,
		SubjectDeleteMarkerTTL: ttl,
		Metadata:               map[string]string{"tally_partitions": parts},
	}
	// When several nodes create a bucket at once, nats-server answers one
	// and leaves the others without a reply: give up soon and try again.
	ctx, cancel := context.WithTimeout(ctx, 2*c.cfg.OpTimeout)
	defer cancel()
	if stream, err := js.Stream(ctx, want.Name); err == nil {
		got := stream.CachedInfo().Config
		if p := got.Metadata["tally_partitions"]; p != "" && p != parts {
			return nil, fmt.Errorf("cluster: bucket %s was made for %s partitions, this node has %s: every node of a cluster must have the same", name, p, parts)
		}
		if sameBucket(got, want) {
			return bind(ctx, js, name) // no update: each one is a proposal to the meta leader
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, want); err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	return bind(ctx, js, name)
}

// sameBucket reports whether a bucket's stream has the settings the
// cluster relies on.
func sameBucket(got, want jetstream.StreamConfig) bool {
	return got.MaxAge == want.MaxAge && got.Replicas == want.Replicas && got.Storage == want.Storage &&
		!got.AllowDirect && got.AllowMsgTTL && got.SubjectDeleteMarkerTTL == want.SubjectDeleteMarkerTTL &&
		got.MaxMsgsPerSubject == want.MaxMsgsPerSubject && got.Metadata["tally_partitions"] == want.Metadata["tally_partitions"]
}

func bind(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	return kv, nil
}

// ErrNameTaken means another live node has this node's name.
var ErrNameTaken = errors.New("another node of the cluster has this name: give each node its own --name")

// register creates the node's member record. A record of the same name
// may be a crashed process's, which expires within MemberTTL: register
// waits that long for it before it gives up.
func (c *Cluster) register(ctx context.Context) error {
	deadline := time.Now().Add(c.cfg.MemberTTL + c.cfg.Heartbeat)
	for {
		octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
		rev, err := c.members.Create(octx, c.cfg.Name, c.record)
		cancel()
		switch {
		case err == nil:
			c.memberRev.Store(rev)
			c.beaten.Store(c.mono())
			c.registered.Store(true)
			return nil
		case !errors.Is(err, jetstream.ErrKeyExists):
			return fmt.Errorf("cluster: register %s: %w", c.cfg.Name, err)
		case c.adopt(ctx) == ours:
			c.beaten.Store(c.mono())
			c.registered.Store(true)
			return nil // an attempt that timed out was stored
		case time.Now().After(deadline):
			return fmt.Errorf("cluster: register %s: %w", c.cfg.Name, ErrNameTaken)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: register %s: %w", c.cfg.Name, ctx.Err())
		case <-time.After(c.cfg.Heartbeat / 4):
		}
	}
}

// Inbox is the subject on which this node takes forwarded calls.
func (c *Cluster) Inbox() string { return c.inbox }

// Name is this node's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// Ready reports whether the node is a member that knows the cluster: it
// registered, and read the members and the leases.
func (c *Cluster) Ready() bool {
	return c.registered.Load() && c.membersSeen.Load() && c.leasesSeen.Load() && c.member()
}

// Owned is how many partitions the node holds.
func (c *Cluster) Owned() int { return int(c.owned.Load()) }

// Partition returns the partition of a group or user ID.
func (c *Cluster) Partition(id string) int { return PartitionOf(id, len(c.parts)) }

// PartitionOf returns the partition of a group or user ID among n: the
// FNV-1a hash of the ID, modulo n.
func PartitionOf(id string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

func (c *Cluster) mono() int64 { return int64(time.Since(c.base)) }

// Lease reports whether this node holds partition p now, the lease's
// epoch and since when (unix nanos) the node has held it.
func (c *Cluster) Lease(p int) (epoch uint64, since int64, ok bool) {
	pt := &c.parts[p]
	if s := pt.state.Load(); s == free || c.mono() >= pt.until.Load() {
		return 0, 0, false
	}
	return pt.epoch.Load(), pt.since.Load(), true
}

// Place finds where a call on partition p is served and calls fn: with ""
// when here, the partition then entered (the caller calls Exit(p) once it
// answered the call), with a node's inbox to forward the call to, with
// ErrNoOwner when no node took the partition within ParkFor, or with
// ErrCutOff or ErrNoLeader when this node's heartbeats do not get through.
// fn may be called before Place returns, or later from another goroutine.
func (c *Cluster) Place(p int, fn func(inbox string, err error)) {
	if c.enter(p) {
		fn("", nil)
		return
	}
	if !c.member() {
		// The others do not count this node, and it may not reach them:
		// say why rather than forward the call into the void.
		fn("", c.notMember(p))
		return
	}
	c.mu.Lock()
	inbox, park := c.target(p)
	if park {
		c.parked[p] = append(c.parked[p], waiter{fn: fn, deadline: c.mono() + int64(c.cfg.ParkFor)})
		c.mu.Unlock()
		c.kick()
		return
	}
	c.mu.Unlock()
	if inbox == "" {
		fn("", fmt.Errorf("%w: partition %d: the node has no live members in view", ErrNoOwner, p))
		return
	}
	fn(inbox, nil)
}

// enter counts a call on p if this node serves p now.
func (c *Cluster) enter(p int) bool {
	pt := &c.parts[p]
	pt.inflight.Add(1)
	if pt.state.Load() == owned && c.mono() < pt.until.Load() {
		return true
	}
	pt.inflight.Add(-1)
	return false
}

// Exit ends a call that Place placed here.
func (c *Cluster) Exit(p int) { c.parts[p].inflight.Add(-1) }

// target says where a call on p goes when this node does not serve it:
// the holder of p's lease when it is a live member, else p's chosen owner;
// park when that is this node (the lease is on its way). Called with mu
// held.
func (c *Cluster) target(p int) (inbox string, park bool) {
	if c.parts[p].state.Load() != leaving {
		if h := c.holders[p]; h != nil && h.GetNode() != c.cfg.Name {
			if _, live := c.view[h.GetNode()]; live {
				return h.GetInbox(), false
			}
		}
	}
	chosen := c.chosen(p)
	switch {
	case chosen == nil && c.stopped:
		return "", false
	case chosen == nil:
		return "", !c.membersSeen.Load()
	case chosen.name == c.cfg.Name:
		return "", true
	default:
		return chosen.inbox, false
	}
}

// chosen is p's owner by rendezvous hashing over the view. Called with mu
// held.
func (c *Cluster) chosen(p int) *ranked {
	var best *ranked
	var bestScore uint64
	for i := range c.ranked {
		r := &c.ranked[i]
		if s := score(r.hash, p); best == nil || s > bestScore || (s == bestScore && r.name < best.name) {
			best, bestScore = r, s
		}
	}
	return best
}

// Owner returns the member that rendezvous hashing picks for partition p
// among members: the owner every node chooses when its view of the live
// members is members; "" when there is none.
func Owner(members []string, p int) string {
	var best string
	var bestScore uint64
	for _, name := range members {
		if s := score(nameHash(name), p); best == "" || s > bestScore || (s == bestScore && name < best) {
			best, bestScore = name, s
		}
	}
	return best
}

// score mixes a member's hash with a partition (splitmix64's finalizer).
func score(h uint64, p int) uint64 {
	x := h ^ (uint64(p)+1)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

func (c *Cluster) kick() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

func leaseKey(p int) string { return "p." + strconv.Itoa(p) }

// run acquires, renews and hands over leases: every quarter heartbeat, and
// at once when the view changes.
func (c *Cluster) run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Heartbeat / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.poke:
		}
		c.step(ctx)
	}
}

func (c *Cluster) step(ctx context.Context) {
	now := c.mono()
	c.mu.Lock()
	stopped := c.stopped
	chosen := make([]string, len(c.parts))
	for p := range c.parts {
		if r := c.chosen(p); r != nil {
			chosen[p] = r.name
		}
	}
	c.mu.Unlock()
	for p := range c.parts {
		pt := &c.parts[p]
		if pt.busy.Load() {
			continue
		}
		mine := chosen[p] == c.cfg.Name && !stopped
		switch pt.state.Load() {
		case free:
			// The lease may look held by the watch: an expiry while the
			// bucket changes leaders leaves no marker for watchers to see.
			// Create is the judge.
			if mine && pt.busy.CompareAndSwap(false, true) {
				c.wg.Go(func() { defer pt.busy.Store(false); c.acquire(ctx, p) })
			}
		case owned:
			if !mine && (chosen[p] != "" || stopped) && pt.handing.CompareAndSwap(false, true) {
				pt.state.Store(leaving)
				c.wg.Go(func() { defer pt.handing.Store(false); c.handOver(ctx, p) })
			}
			fallthrough
		case leaving:
			if now-pt.renewed >= int64(c.cfg.Heartbeat) && pt.busy.CompareAndSwap(false, true) {
				c.wg.Go(func() { defer pt.busy.Store(false); c.renew(ctx, p) })
			}
		}
	}
	c.expireParked()
	c.logOwned()
}

// acquire creates p's lease; it fails while another node holds it.
func (c *Cluster) acquire(ctx context.Context, p int) {
	pt := &c.parts[p]
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	sent := c.mono()
	rev, err := c.leases.Create(ctx, leaseKey(p), c.lease)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			c.log.Debug("acquiring a partition failed", slog.Int("partition", p), slog.Any("error", err))
		}
		return
	}
	pt.rev, pt.renewed = rev, sent
	pt.epoch.Store(rev)
	pt.since.Store(time.Now().UnixNano())
	pt.until.Store(sent + c.ttl)
	pt.state.Store(owned)
	c.owned.Add(1)
	c.mu.Lock()
	c.holders[p] = &messages.Lease{Node: c.cfg.Name, Inbox: c.inbox}
	parked := len(c.parked[p])
	c.mu.Unlock()
	c.log.Debug("acquired a partition", slog.Int("partition", p), slog.Int("parked", parked))
	c.replace(p)
}

// renew renews p's lease with the revision this node last wrote. A
// refusal means the lease expired and another node may hold it: the
// partition is lost at once. Any other failure leaves the lease to lapse
// by itself unless a later renewal succeeds, which proves that nobody held
// it meanwhile.
func (c *Cluster) renew(ctx context.Context, p int) {
	pt := &c.parts[p]
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	sent := c.mono()
	rev, err := c.leases.Update(ctx, leaseKey(p), c.lease, pt.rev)
	switch {
	case err == nil:
		c.cfg.Metrics.Renewed("ok")
		pt.rev, pt.renewed = rev, sent
		pt.until.Store(sent + c.ttl)
	case isWrongLastSequence(err):
		// A renewal of this node's that timed out may have been stored
		// after all (or still be in flight): the key is this node's as long
		// as it holds this process's value, which no other writes.
		switch e, gerr := c.leases.Get(ctx, leaseKey(p)); {
		case gerr == nil && bytes.Equal(e.Value(), c.lease):
			pt.rev = e.Revision() // validity still counts from the last acknowledged renewal
			pt.renewed = sent - int64(c.cfg.Heartbeat)/2
		case gerr == nil || errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted):
			c.log.Warn("lost the lease on a partition: it expired before its renewal", slog.Int("partition", p))
			c.cfg.Metrics.Renewed("lost")
			c.lose(p)
		default:
			c.cfg.Metrics.Renewed("failed")
			pt.renewed = sent - int64(c.cfg.Heartbeat)/2 // cannot tell yet: it lapses unless renewed
		}
	default:
		c.cfg.Metrics.Renewed("failed")
		pt.renewed = sent - int64(c.cfg.Heartbeat)/2 // try again in half a heartbeat
		c.log.Debug("renewing a lease failed", slog.Int("partition", p), slog.Any("error", err))
	}
}

func (c *Cluster) lose(p int) {
	pt := &c.parts[p]
	pt.until.Store(0)
	if pt.state.Swap(free) != free {
		c.owned.Add(-1)
	}
	c.replace(p)
}

// handOver stops taking calls on p, waits for those being served (the
// lease is renewed meanwhile), and deletes the lease so that p's chosen
// owner takes it at once.
func (c *Cluster) handOver(ctx context.Context, p int) {
	pt := &c.parts[p]
	start := time.Now()
	c.replace(p) // parked calls, if any, go to the new owner
	deadline := start.Add(c.cfg.DrainFor)
	for pt.inflight.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if n := pt.inflight.Load(); n > 0 {
		c.log.Warn("handing a partition over with calls still in flight", slog.Int("partition", p), slog.Int64("calls", n))
	}
	// The last renewal must be done before the lease is let go.
	for !pt.busy.CompareAndSwap(false, true) {
		time.Sleep(time.Millisecond)
	}
	defer pt.busy.Store(false)
	if pt.state.Load() != leaving {
		return // lost meanwhile
	}
	rev := pt.rev
	c.lose(p)
	c.log.Debug("handed a partition over", slog.Int("partition", p), slog.Duration("drained", time.Since(start)))
	dctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	if err := c.leases.Delete(dctx, leaseKey(p), jetstream.LastRevision(rev)); err != nil && !isWrongLastSequence(err) {
		c.log.Debug("releasing a lease failed; it expires by itself", slog.Int("partition", p), slog.Any("error", err))
	}
}

// replace places p's parked calls again: here once p is entered, or on
// the node that now serves p.
func (c *Cluster) replace(p int) {
	c.mu.Lock()
	w := c.parked[p]
	c.parked[p] = nil
	c.mu.Unlock()
	for _, x := range w {
		c.Place(p, x.fn)
	}
}

// replaceAll places every parked call again, after the view changed.
func (c *Cluster) replaceAll() {
	for p := range c.parts {
		c.mu.Lock()
		n := len(c.parked[p])
		c.mu.Unlock()
		if n > 0 {
			c.replace(p)
		}
	}
}

// expireParked answers the calls parked for longer than ParkFor.
func (c *Cluster) expireParked() {
	now := c.mono()
	var late []waiter
	var parts []int
	c.mu.Lock()
	for p, ws := range c.parked {
		keep := ws[:0]
		for _, w := range ws {
			if now >= w.deadline {
				late, parts = append(late, w), append(parts, p)
			} else {
				keep = append(keep, w)
			}
		}
		c.parked[p] = keep
	}
	c.mu.Unlock()
	for i, w := range late {
		w.fn("", fmt.Errorf("%w: partition %d got no owner within %v", ErrNoOwner, parts[i], c.cfg.ParkFor))
	}
}

func (c *Cluster) logOwned() {
	if n := c.owned.Load(); n != c.lastLogOwned {
		c.lastLogOwned = n
		c.log.Info("partitions held", slog.Int("held", int(n)), slog.Int("of", c.cfg.Partitions))
	}
}

// heartbeat renews the member record every Heartbeat. One that did not
// get through is tried again after a quarter of that: when the members
// bucket's leader died, the first one after the election makes the node
// a member again.
func (c *Cluster) heartbeat(ctx context.Context) {
	t := time.NewTimer(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		stopped := c.stopped
		c.mu.Unlock()
		if stopped {
			return
		}
		start, before, failed := time.Now(), c.beaten.Load(), c.beatFailed.Load()
		if err := c.beat(ctx); err != nil {
			c.failed <- err
			return
		}
		next := c.cfg.Heartbeat - time.Since(start)
		switch {
		case c.beaten.Load() == before:
			c.beatFailed.Store(true)
			c.probeOthers(ctx)
			next = c.cfg.Heartbeat / 4 // nor does the bucket answer reads
		case failed:
			c.reconcile(ctx)
			next = c.cfg.Heartbeat / 2 // the others' records are judged then
		default:
			c.reconcile(ctx)
		}
		t.Reset(max(next, 0))
	}
}

// reconcile checks the view against the members bucket, read through its
// leader: the watch alone can miss a record's expiry (it leaves no marker
// when it happens while the bucket changes leaders) and can stall for
// seconds after the server it reads from died.
//
// A record older than MemberTTL is dropped even while the bucket still
// holds it: a new leader of the bucket expires what its predecessor left
// only a second or two after its election. Age is counted as the bucket
// counts it, by the servers' timestamps: against the newest record read,
// this node's own fresh one among them, so the node's clock plays no part.
func (c *Cluster) reconcile(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	names := map[string]bool{c.cfg.Name: true}
	if lister, err := c.members.ListKeys(octx); err == nil {
		for k := range lister.Keys() {
			names[k] = true
		}
	}
	c.mu.Lock()
	for name := range c.view {
		names[name] = true
	}
	c.mu.Unlock()
	records := map[string]jetstream.KeyValueEntry{}
	var newest time.Time
	for name := range names {
		e, err := c.members.Get(octx, name)
		switch {
		case err == nil:
			records[name] = e
			if e.Created().After(newest) {
				newest = e.Created()
			}
		case name == c.cfg.Name:
			// Its own record, if gone, its next heartbeat makes again.
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			c.drop(name)
		}
	}
	// After heartbeats did not get through, those of every member are
	// old: give the others' next ones time to land.
	judge := c.mono()-c.beatingSince.Load() >= int64(c.cfg.Heartbeat/2)
	for name, e := range records {
		switch {
		case name == c.cfg.Name:
		case judge && newest.Sub(e.Created()) > c.cfg.MemberTTL:
			c.drop(name)
		default:
			c.onMember(e)
		}
	}
}

// drop removes a member whose record is gone from the view.
func (c *Cluster) drop(name string) {
	c.mu.Lock()
	_, had := c.view[name]
	delete(c.view, name)
	if had {
		c.rank()
	}
	members := len(c.ranked)
	c.mu.Unlock()
	if had {
		c.viewChanged(name, false, members)
	}
}

// viewChanged follows a change of the view: parked calls go where they
// now belong, and the leases follow the new owners.
func (c *Cluster) viewChanged(name string, live bool, members int) {
	c.log.Info("members changed", slog.String("node", name), slog.Bool("live", live), slog.Int("members", members))
	c.replaceAll()
	c.kick()
}

// beat renews the member record with the revision this node wrote last.
// When the record expired meanwhile (the node was paused, or cut off) it
// creates it again, unless another node has taken the name.
func (c *Cluster) beat(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	sent := c.mono()
	rev, err := c.members.Update(octx, c.cfg.Name, c.record, c.memberRev.Load())
	if err != nil && isWrongLastSequence(err) {
		// A heartbeat that timed out may have been stored after all.
		switch c.adopt(octx) {
		case ours:
			return nil
		case unknown:
			return nil // cut off from the bucket: try again next heartbeat
		case others:
			return fmt.Errorf("cluster: %s: %w", c.cfg.Name, ErrNameTaken)
		}
		c.log.Warn("the node's member record expired; registering again")
		rev, err = c.members.Create(octx, c.cfg.Name, c.record)
		if errors.Is(err, jetstream.ErrKeyExists) {
			if c.adopt(octx) == others {
				return fmt.Errorf("cluster: %s: %w", c.cfg.Name, ErrNameTaken)
			}
			return nil
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("heartbeat failed", slog.Any("error", err))
		}
		return nil
	}
	c.memberRev.Store(rev)
	if !c.member() {
		c.log.Info("the cluster's buckets take this node's heartbeats again")
	}
	c.beaten.Store(sent)
	if c.beatFailed.Swap(false) {
		c.beatingSince.Store(c.mono())
	}
	return nil
}

// Whose record the members bucket holds under this node's name.
const (
	unknown = iota // the bucket did not answer
	ours           // this process's
	others         // another process's
	gone           // none: it expired
)

// adopt reads the record under the node's name; when it is this
// process's own, it takes its revision for the next heartbeat.
func (c *Cluster) adopt(ctx context.Context) int {
	e, err := c.members.Get(ctx, c.cfg.Name)
	switch {
	case err == nil && bytes.Equal(e.Value(), c.record):
		c.memberRev.Store(e.Revision())
		return ours
	case err == nil:
		return others
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return gone
	}
	return unknown
}

// ErrCutOff means this node cannot prove it is a member of its cluster:
// its heartbeats have not reached the members bucket for longer than a
// member record lasts, and it does not reach most of the other members.
var ErrCutOff = errors.New("this node is cut off from its cluster")

// ErrNoLeader means the members bucket takes no heartbeats while this node
// reaches most of the other members: the bucket's leader is gone (its
// server died or stopped) and its replicas elect another, which takes
// seconds in JetStream's raft.
var ErrNoLeader = errors.New("the cluster's members bucket has no leader: it is electing one, and calls resume once it has one")

// probeSuffix follows a node's inbox in the subject on which it answers
// the others' probes.
const probeSuffix = ".probe"

// probe asks the other members in the view whether they answer, once a
// heartbeat did not get through: a node that reaches most of the cluster
// is not cut off from it; its members bucket is without a leader.
func (c *Cluster) probeOthers(ctx context.Context) {
	c.mu.Lock()
	var inboxes []string
	for _, r := range c.ranked {
		if r.name != c.cfg.Name {
			inboxes = append(inboxes, r.inbox)
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout/2)
	defer cancel()
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, inbox := range inboxes {
		wg.Go(func() {
			if _, err := c.nc.RequestWithContext(ctx, inbox+probeSuffix, nil); err == nil {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	c.probed.Store(&probe{at: c.mono(), answered: int(answered.Load()), asked: len(inboxes)})
}

// notMember is the error of a call on p that this node cannot place
// because it is not a member now: ErrNoLeader when a probe since its last
// heartbeat that got through reached most of the cluster, else ErrCutOff.
func (c *Cluster) notMember(p int) error {
	if pr := c.probed.Load(); pr != nil && pr.at > c.beaten.Load() && pr.reaching() {
		return fmt.Errorf("%w: partition %d: heartbeats have not reached the members bucket for %v; this node reaches %d of the %d other members",
			ErrNoLeader, p, c.cfg.MemberTTL, pr.answered, pr.asked)
	}
	return fmt.Errorf("%w: partition %d: its heartbeats have not reached the members bucket for %v", ErrCutOff, p, c.cfg.MemberTTL)
}

// member reports whether the node's last heartbeat that got through is
// recent enough for its record to be live.
func (c *Cluster) member() bool {
	return c.mono()-c.beaten.Load() < int64(c.cfg.MemberTTL)
}

// Failed delivers ErrNameTaken when another node registered under this
// node's name while this one was away: the node must stop.
func (c *Cluster) Failed() <-chan error { return c.failed }

// watch follows the members and the leases buckets.
func (c *Cluster) watch(ctx context.Context) error {
	mw, err := c.members.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("cluster: watch %s: %w", c.cfg.MembersBucket, err)
	}
	lw, err := c.leases.WatchAll(ctx)
	if err != nil {
		mw.Stop()
		return fmt.Errorf("cluster: watch %s: %w", c.cfg.LeasesBucket, err)
	}
	c.wg.Go(func() {
		defer mw.Stop()
		for e := range mw.Updates() {
			c.onMember(e)
		}
	})
	c.wg.Go(func() {
		defer lw.Stop()
		for e := range lw.Updates() {
			c.onLease(e)
		}
	})
	return nil
}

func (c *Cluster) onMember(e jetstream.KeyValueEntry) {
	if e == nil {
		c.membersSeen.Store(true)
		c.replaceAll()
		c.kick()
		return
	}
	name := e.Key()
	c.mu.Lock()
	old, had := c.view[name]
	switch e.Operation() {
	case jetstream.KeyValuePut:
		var m messages.Member
		if err := proto.Unmarshal(e.Value(), &m); err != nil || m.GetName() != name {
			c.mu.Unlock()
			c.log.Warn("ignoring a malformed member record", slog.String("key", name))
			return
		}
		if name == c.cfg.Name && c.stopped {
			break // a heartbeat that raced Stop
		}
		c.view[name] = &m
	default:
		delete(c.view, name)
	}
	m, has := c.view[name]
	changed := had != has || (has && m.GetInbox() != old.GetInbox())
	if changed {
		c.rank()
	}
	members := len(c.ranked)
	c.mu.Unlock()
	if changed {
		c.viewChanged(name, has, members)
	}
}

// rank rebuilds the rendezvous list from the view. Called with mu held.
func (c *Cluster) rank() {
	c.ranked = c.ranked[:0]
	for name, m := range c.view {
		c.ranked = append(c.ranked, ranked{name: name, hash: nameHash(name), inbox: m.GetInbox()})
	}
	slices.SortFunc(c.ranked, func(a, b ranked) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
}

func (c *Cluster) onLease(e jetstream.KeyValueEntry) {
	if e == nil {
		c.leasesSeen.Store(true)
		c.kick()
		return
	}
	key := e.Key()
	if len(key) < 3 || key[:2] != "p." {
		return
	}
	p, err := strconv.Atoi(key[2:])
	if err != nil || p < 0 || p >= len(c.parts) {
		return
	}
	var h *messages.Lease
	if e.Operation() == jetstream.KeyValuePut {
		h = &messages.Lease{}
		if err := proto.Unmarshal(e.Value(), h); err != nil {
			h = nil
		}
	}
	c.mu.Lock()
	c.holders[p] = h
	c.mu.Unlock()
	if h == nil {
		c.kick() // a lease ended: its chosen owner takes it
	}
	if h == nil || h.GetNode() != c.cfg.Name {
		c.replace(p)
	}
}

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
	if derr != nil && isWrongLastSequence(derr) && c.adopt(dctx) == ours {
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

// isWrongLastSequence reports JetStream's refusal of a stale revision.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}
