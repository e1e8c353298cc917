package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
)

// startSharded starts member name on server s, for a journal of layout
// l replicated on three servers.
func startSharded(t *testing.T, s *server.Server, name string, l journal.Layout) *cluster.Cluster {
	t.Helper()
	js := journaltest.JetStream(t, journaltest.Connect(t, s))
	cfg := cluster.DefaultConfig()
	cfg.Name, cfg.Replicas, cfg.Journal = name, 3, l
	// A server that just started may not serve the buckets yet: try again,
	// as a node does.
	var c *cluster.Cluster
	journaltest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		c, err = cluster.Start(ctx, js, cfg)
		return err
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Stop(ctx)
	})
	return c
}

// shardedCluster starts three servers, a journal of three shards on them
// and a member on each server, n<i> on tally-test-<i>.
func shardedCluster(t *testing.T) ([]*server.Options, []*server.Server, jetstream.JetStream, journal.Layout, []*cluster.Cluster) {
	t.Helper()
	opts := journaltest.ClusterOptions(t, 3)
	servers := make([]*server.Server, 3)
	for i := range opts {
		servers[i] = journaltest.Start(t, opts[i].Clone())
	}
	journaltest.AwaitJetStream(t, servers[0])
	js := journaltest.JetStream(t, journaltest.Connect(t, servers[0]))
	cfg := journal.DefaultConfig()
	cfg.Replicas, cfg.Shards = 3, 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := journal.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	members := make([]*cluster.Cluster, 3)
	for i := range members {
		members[i] = startSharded(t, servers[i], fmt.Sprintf("n%d", i), j.Layout())
	}
	return opts, servers, js, j.Layout(), members
}

// leadersFollowOwners reports an error until every partition has one
// holder among members, on[i] being members[i]'s server, each shard's
// partitions are held by one member, and its stream's leader is that
// member's server; it returns the shard streams' leaders.
func leadersFollowOwners(js jetstream.JetStream, l journal.Layout, members []*cluster.Cluster, on []string) (map[string]int, error) {
	if err := settled(members...); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	leading := map[string]int{}
	for s := range l.Shards {
		leader, err := journaltest.LeaderOf(ctx, js, l.StreamOf(s))
		if err != nil {
			return nil, err
		}
		leading[leader]++
		for p := range journal.Partitions {
			if l.ShardOfPartition(p) != s {
				continue
			}
			for i, m := range members {
				if _, _, ok := m.Lease(p); ok && on[i] != leader {
					return nil, fmt.Errorf("shard %d: %s (on %s) holds partition %d, its stream's leader is %s", s, m.Name(), on[i], p, leader)
				}
			}
		}
	}
	return leading, nil
}

// leadersSpread reports an error until leadersFollowOwners holds and each
// server of on leads exactly one shard stream.
func leadersSpread(js jetstream.JetStream, l journal.Layout, members []*cluster.Cluster, on []string) error {
	leading, err := leadersFollowOwners(js, l, members, on)
	if err != nil {
		return err
	}
	for _, s := range on {
		if leading[s] != 1 {
			return fmt.Errorf("%s leads %d of the %d shard streams (%v)", s, leading[s], l.Shards, leading)
		}
	}
	return nil
}

// TestStreamLeadersSpread: three members on three servers each take one
// shard of the journal, all its partitions, and each server leads the
// stream of its member's shard.
func TestStreamLeadersSpread(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	start := time.Now()
	_, servers, js, l, members := shardedCluster(t)
	started := time.Now()
	on := []string{servers[0].Name(), servers[1].Name(), servers[2].Name()}
	journaltest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error { return leadersSpread(js, l, members, on) })
	t.Logf("leaders spread %v after the servers started, %v after the members did", time.Since(start).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	for _, m := range members {
		if got := m.Owned(); got != 21 && got != 22 {
			t.Errorf("%s holds %d partitions, want its shard's 21 or 22", m.Name(), got)
		}
	}
	// What each member reads of the leaders (tally_shard_leaders_local)
	// follows the elections.
	journaltest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, m := range members {
			if got := m.LeadersHere(); got != 1 {
				return fmt.Errorf("%s sees its server lead %d shard streams, want 1", m.Name(), got)
			}
		}
		return nil
	})
}

// TestLeadersReturn: when a member and its server stop, the survivors
// take its shard and its stream's leadership; once both are back, the
// member takes its shard again and its server leads the shard's stream.
func TestLeadersReturn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	opts, servers, js, l, members := shardedCluster(t)
	on := []string{servers[0].Name(), servers[1].Name(), servers[2].Name()}
	spread := func() error { return leadersSpread(js, l, members, on) }
	journaltest.CheckFor(t, 30*time.Second, 50*time.Millisecond, spread)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := members[2].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	servers[2].Shutdown()
	servers[2].WaitForShutdown()
	journaltest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		leading, err := leadersFollowOwners(js, l, members[:2], on[:2])
		if err != nil {
			return err
		}
		if leading[on[0]]+leading[on[1]] != l.Shards {
			return fmt.Errorf("the survivors' servers lead %v", leading)
		}
		return nil
	})

	returned := time.Now()
	servers[2] = journaltest.Start(t, opts[2].Clone())
	members[2] = startSharded(t, servers[2], "n2", l)
	journaltest.CheckFor(t, 30*time.Second, 50*time.Millisecond, spread)
	t.Logf("leaders spread again %v after the server restarted", time.Since(returned).Round(time.Millisecond))
}
