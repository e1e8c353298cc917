package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// shard is one stream of a journal of several shards, as this node last
// read it, and its owner. Guarded by Cluster.mu.
type shard struct {
	peers  []string // the servers that replicate its stream, sorted
	leader string   // the server that leads it ("" while none does)
	owner  string   // the member that holds its partitions, by Assign
	moved  int64    // mono nanos of this node's last step-down request
}

// How often the keeper rereads the shards' streams without an election
// advisory, and how long it leaves a shard alone after asking its leader
// to step down: raft moves it in about 20 ms, or not at all when the
// preferred server is not healthy, and the keeper must not insist then.
const (
	rereadEvery = 5 * time.Second
	moveBackoff = 2 * time.Second
)

// assign computes the shards' owners from the view and the peers. Called
// with mu held.
func (c *Cluster) assign() {
	if len(c.shards) == 0 {
		return
	}
	peers := make([][]string, len(c.shards))
	for s := range c.shards {
		peers[s] = c.shards[s].peers
	}
	cands := make([]Candidate, 0, len(c.view))
	for name, m := range c.view {
		cands = append(cands, Candidate{Name: name, Server: m.GetServer()})
	}
	for s, owner := range Assign(peers, cands) {
		c.shards[s].owner = owner
	}
}

// watchLeaders subscribes to the leader elections of the journal's
// streams, which the keeper then reads again.
func (c *Cluster) watchLeaders() (*nats.Subscription, error) {
	subj := "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED." + c.cfg.Journal.Stream + "_*"
	sub, err := c.nc.Subscribe(subj, func(*nats.Msg) {
		select {
		case c.reread <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribe %s: %w", subj, err)
	}
	return sub, nil
}

func (c *Cluster) unwatchLeaders() {
	if c.elected == nil {
		return
	}
	if err := c.elected.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		c.log.Debug("unsubscribe from leader elections", slog.Any("error", err))
	}
}

// readShards reads each shard stream's peers and leader; when the peers
// changed, the shards' owners are assigned again.
func (c *Cluster) readShards(ctx context.Context) {
	for s := range c.shards {
		peers, leader, err := c.readShard(ctx, s)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Debug("reading a journal shard's stream failed", slog.Int("shard", s), slog.Any("error", err))
			}
			continue
		}
		c.mu.Lock()
		sh := &c.shards[s]
		changed := !slices.Equal(sh.peers, peers)
		sh.peers, sh.leader = peers, leader
		if changed {
			c.assign()
		}
		c.mu.Unlock()
		if changed {
			c.replaceAll()
			c.kick()
		}
	}
}

// readShard reads shard s's stream's servers and its leader.
func (c *Cluster) readShard(ctx context.Context, s int) (peers []string, leader string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	name := c.cfg.Journal.StreamOf(s)
	stream, err := c.js.Stream(ctx, name)
	if err != nil {
		return nil, "", fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("stream %s: %w", name, err)
	}
	if info.Cluster == nil {
		return nil, "", nil
	}
	leader = info.Cluster.Leader
	if leader != "" {
		peers = append(peers, leader)
	}
	for _, r := range info.Cluster.Replicas {
		peers = append(peers, r.Name)
	}
	slices.Sort(peers)
	return peers, leader, nil
}

// keepLeaders moves the leader of each shard whose partitions this node
// holds, every one of them, to this node's server: its appends then go to
// a stream leader in its own process. Requiring every partition means
// that two nodes whose views of the members disagree never pull one
// leader back and forth: their leases exclude each other.
func (c *Cluster) keepLeaders(ctx context.Context) {
	t := time.NewTicker(c.cfg.Heartbeat / 4)
	defer t.Stop()
	read := time.Now() // Start read the shards
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.reread:
			read = time.Time{}
		}
		if time.Since(read) >= rereadEvery {
			c.readShards(ctx)
			read = time.Now()
		}
		for _, s := range c.toMove() {
			c.moveLeader(ctx, s)
		}
	}
}

// toMove lists the shards whose leader this node should ask to its
// server now.
func (c *Cluster) toMove() []int {
	now := c.mono()
	var out []int
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.server == "" {
		return nil
	}
	for s := range c.shards {
		sh := &c.shards[s]
		if sh.owner != c.cfg.Name || sh.leader == c.server || sh.leader == "" ||
			!slices.Contains(sh.peers, c.server) || now-sh.moved < int64(moveBackoff) || !c.holdsShard(s) {
			continue
		}
		sh.moved = now
		out = append(out, s)
	}
	return out
}

// holdsShard reports whether this node holds every partition of shard s.
func (c *Cluster) holdsShard(s int) bool {
	for p := range c.parts {
		if c.cfg.Journal.ShardOfPartition(p) == s {
			if _, _, ok := c.Lease(p); !ok || c.parts[p].state.Load() != owned {
				return false
			}
		}
	}
	return true
}

// moveLeader asks shard s's stream leader to step down in favour of this
// node's server, and reads where the leadership went.
func (c *Cluster) moveLeader(ctx context.Context, s int) {
	name := c.cfg.Journal.StreamOf(s)
	c.mu.Lock()
	server := c.server
	c.mu.Unlock()
	// What the keeper read may be old: the leader may be here already,
	// or electing.
	if _, leader, err := c.readShard(ctx, s); err != nil || leader == server || leader == "" {
		if err == nil {
			c.setLeader(s, leader)
		}
		return
	}
	req, err := json.Marshal(stepDownRequest{Placement: preferred{Server: server}})
	if err != nil {
		return
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	msg, err := c.nc.RequestWithContext(rctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, req)
	cancel()
	var reply struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err == nil {
		err = json.Unmarshal(msg.Data, &reply)
	}
	if err == nil && reply.Error != nil {
		err = reply.Error
	}
	if err != nil {
		c.log.Info("moving a journal shard's leader here failed", slog.Int("shard", s), slog.String("stream", name), slog.Any("error", err))
		c.cfg.Metrics.LeaderMoved("failed")
		return
	}
	// Raft elects the new leader some 20 ms after the request; until
	// then the stream has none.
	var leader string
	deadline := time.Now().Add(c.cfg.OpTimeout)
	for leader == "" && time.Now().Before(deadline) && ctx.Err() == nil {
		if _, leader, err = c.readShard(ctx, s); err != nil || leader == "" {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	c.setLeader(s, leader)
	result := "moved"
	if leader != server {
		result = "elsewhere"
	}
	c.cfg.Metrics.LeaderMoved(result)
	c.log.Info("asked a journal shard's leader here", slog.Int("shard", s), slog.String("stream", name),
		slog.String("leader", leader), slog.String("server", server), slog.Duration("took", time.Since(start)))
}

// stepDownRequest is the JetStream API's request of a stream leader's
// step-down with a preferred successor (nats-server 2.11 and later).
// setLeader records where shard s's stream leader is.
func (c *Cluster) setLeader(s int, leader string) {
	c.mu.Lock()
	c.shards[s].leader = leader
	c.mu.Unlock()
}

type stepDownRequest struct {
	Placement preferred `json:"placement"`
}

type preferred struct {
	Server string `json:"preferred"`
}

// LeadersHere is how many of the journal's shard streams this node's
// server leads, as the node last read them.
func (c *Cluster) LeadersHere() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, sh := range c.shards {
		if sh.leader != "" && sh.leader == c.server {
			n++
		}
	}
	return n
}
