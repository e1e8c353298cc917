package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// register creates the node's member record. A record of the same name
// may be a crashed process's, which expires within MemberTTL: register
// waits that long for it before it gives up.
func (c *Cluster) register(ctx context.Context) error {
	deadline := time.Now().Add(c.cfg.MemberTTL + c.cfg.Heartbeat)
	for {
		octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
		rev, err := c.members.Create(octx, c.cfg.Name, *c.record.Load())
		cancel()
		switch {
		case err == nil:
			c.memberRev.Store(rev)
			c.beaten.Store(c.mono())
			return nil
		case !errors.Is(err, jetstream.ErrKeyExists):
			return fmt.Errorf("cluster: register %s: %w", c.cfg.Name, err)
		case c.adopt(ctx) == ours:
			c.beaten.Store(c.mono())
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
			if c.probing.CompareAndSwap(false, true) {
				// Not in the heartbeats' way: a probe may wait OpTimeout.
				c.wg.Go(func() { defer c.probing.Store(false); c.probeOthers(ctx) })
			}
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
	c.followServer()
	rev, err := c.members.Update(octx, c.cfg.Name, *c.record.Load(), c.memberRev.Load())
	if err != nil && journal.WrongLastSequence(err) {
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
		rev, err = c.members.Create(octx, c.cfg.Name, *c.record.Load())
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
	case err == nil && c.mine(e.Value()):
		c.memberRev.Store(e.Revision())
		return ours
	case err == nil:
		return others
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return gone
	}
	return unknown
}

// mine reports whether a member record is this process's: its inbox and
// start, whichever server it named.
func (c *Cluster) mine(record []byte) bool {
	var m messages.Member
	return proto.Unmarshal(record, &m) == nil && m.GetName() == c.cfg.Name &&
		m.GetInbox() == c.inbox && m.GetStartedUnixNano() == c.cfg.Started.UnixNano()
}

// followServer makes the member record name the server the node's
// connection is on now: after a reconnect, another one.
func (c *Cluster) followServer() {
	srv := c.nc.ConnectedServerName()
	c.mu.Lock()
	changed := srv != "" && srv != c.server
	if changed {
		c.server = srv
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	record, err := proto.Marshal(&messages.Member{Name: c.cfg.Name, Inbox: c.inbox, StartedUnixNano: c.cfg.Started.UnixNano(), Server: srv})
	if err != nil {
		return
	}
	c.record.Store(&record)
	c.log.Info("the node's connection is on another server", slog.String("server", srv))
}

// member reports whether the node's last heartbeat that got through is
// recent enough for its record to be live.
func (c *Cluster) member() bool {
	return c.mono()-c.beaten.Load() < int64(c.cfg.MemberTTL)
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
	changed := had != has || (has && (m.GetInbox() != old.GetInbox() || m.GetServer() != old.GetServer()))
	if changed {
		c.rank()
	}
	members := len(c.ranked)
	c.mu.Unlock()
	if changed {
		c.viewChanged(name, has, members)
	}
}

// rank rebuilds the rendezvous list from the view, and the shards'
// owners. Called with mu held.
func (c *Cluster) rank() {
	defer c.assign()
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
