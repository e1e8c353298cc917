package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

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
	since    atomic.Int64  // mono nanos when this node acquired the lease
	until    atomic.Int64  // mono nanos until which the lease is valid
	inflight atomic.Int64  // calls entered and not yet exited
	busy     atomic.Bool   // a bucket operation on the lease is running
	handing  atomic.Bool   // a handover is draining the partition's calls

	rev     uint64 // the lease key's last revision, for the next renewal
	renewed int64  // mono nanos when the last renewal was sent
}

// Lease reports whether this node holds partition p now, the lease's
// epoch and since when the node has held it, in unix nanos: the wall
// clock now less how long it has held the lease by the monotonic clock,
// so that a step of the wall clock since it took the lease does not
// change how long ago that was.
func (c *Cluster) Lease(p int) (epoch uint64, since int64, ok bool) {
	pt := &c.parts[p]
	now := c.mono()
	if s := pt.state.Load(); s == free || now >= pt.until.Load() {
		return 0, 0, false
	}
	return pt.epoch.Load(), time.Now().UnixNano() - (now - pt.since.Load()), true
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
	chosen, stopped := c.chosenNames()
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
	c.notify(chosen, stopped)
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
	pt.since.Store(sent)
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
	case journal.WrongLastSequence(err):
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
	if err := c.leases.Delete(dctx, leaseKey(p), jetstream.LastRevision(rev)); err != nil && !journal.WrongLastSequence(err) {
		c.log.Debug("releasing a lease failed; it expires by itself", slog.Int("partition", p), slog.Any("error", err))
	}
}

func (c *Cluster) logOwned() {
	if n := c.owned.Load(); n != c.lastLogOwned {
		c.lastLogOwned = n
		c.log.Info("partitions held", slog.Int("held", int(n)), slog.Int("of", c.cfg.Partitions))
	}
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
