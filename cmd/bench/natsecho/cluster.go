package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal"
)

// clusterConfig makes natsecho one server of a cluster of natsecho
// servers, the journal ceiling of a tally cluster: one stream per server
// (shard), each on replicas servers and led by the server of its index,
// and each change appended to its group's shard from the server that took
// the call, so that two calls in three (on three servers) cross a route
// to their stream's leader and back, as a tally call crosses one to its
// group's node.
type clusterConfig struct {
	listen   string   // this server's cluster address
	routes   []string // every server's cluster address, in shard order
	shard    int      // the index of listen in routes
	replicas int
}

// serverName names the server of shard i.
func serverName(i int) string { return "e" + strconv.Itoa(i+1) }

// shardTag is the placement tag of shard i's stream: the servers that
// carry it hold the stream.
func shardTag(i int) string { return "s" + strconv.Itoa(i) }

// replicasOf is the replicas of each shard stream: at most one per server.
func (cl clusterConfig) replicasOf() int { return max(1, min(cl.replicas, len(cl.routes))) }

// configure adds the cluster to opts: the routes, and the tags that place
// shard i's stream on the servers i, i+1, ... (replicas of them, wrapping
// around), so that every server holds the stream it leads and the streams
// spread evenly.
func (cl clusterConfig) configure(opts *server.Options) error {
	n := len(cl.routes)
	if cl.shard < 0 || cl.shard >= n || cl.routes[cl.shard] != cl.listen {
		return fmt.Errorf("-shard %d: want the index of -cluster %s in -routes %v", cl.shard, cl.listen, cl.routes)
	}
	host, port, err := net.SplitHostPort(cl.listen)
	if err != nil {
		return fmt.Errorf("-cluster %q: %w", cl.listen, err)
	}
	opts.Cluster.Name, opts.Cluster.Host = "natsecho", host
	if opts.Cluster.Port, err = strconv.Atoi(port); err != nil {
		return fmt.Errorf("-cluster %q: %w", cl.listen, err)
	}
	opts.ServerName = serverName(cl.shard)
	opts.Routes = server.RoutesFromStr("nats://" + strings.Join(cl.routes, ",nats://"))
	for k := range cl.replicasOf() {
		opts.Tags = append(opts.Tags, shardTag((cl.shard-k+n)%n))
	}
	return nil
}

// streamOf names shard i's stream.
func streamOf(i int) string { return streamName + "_" + strconv.Itoa(i) }

// subjectOf is the journal subject of a group: on its shard's stream.
func (cl clusterConfig) subjectOf(group string) string {
	return "echo.journal." + strconv.Itoa(journal.PartitionOf(group, len(cl.routes))) + "." + group
}

// createShard creates this server's shard stream once the cluster's
// JetStream answers, and waits until this server leads it, at most a
// minute.
func (cl clusterConfig) createShard(ctx context.Context, jc *nats.Conn, atomic bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	js, err := jetstream.New(jc)
	if err != nil {
		return err
	}
	name, me := streamOf(cl.shard), serverName(cl.shard)
	cfg := jetstream.StreamConfig{
		Name: name, Subjects: []string{"echo.journal." + strconv.Itoa(cl.shard) + ".>"}, Storage: jetstream.FileStorage,
		Replicas: cl.replicasOf(), Placement: &jetstream.Placement{Tags: []string{shardTag(cl.shard)}},
		AllowAtomicPublish: atomic,
	}
	var stream jetstream.Stream
	for stream == nil {
		// Until the cluster elects its JetStream meta leader, requests
		// go unanswered: ask again.
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		stream, err = js.CreateOrUpdateStream(actx, cfg)
		acancel()
		if err != nil {
			if err := pause(ctx, 100*time.Millisecond); err != nil {
				return fmt.Errorf("create stream %s: %w", name, err)
			}
		}
	}
	req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": me}})
	if err != nil {
		return err
	}
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := stream.Info(actx)
		if err == nil && info.Cluster != nil && info.Cluster.Leader == me {
			acancel()
			return nil
		}
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			// Raft may refuse while this server catches up: ask again.
			_, _ = jc.RequestWithContext(actx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, req)
		}
		acancel()
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("stream %s: not led by %s: %w", name, me, err)
		}
	}
}

// gatherShards returns a handler that queues each change request for its
// group's shard, and starts one loop per shard in loops that appends the
// shard's calls as atomic batches until ctx ends.
func (cl clusterConfig) gatherShards(ctx context.Context, jc *nats.Conn, loops *sync.WaitGroup) func(*nats.Msg) {
	queues := make([]*queue, len(cl.routes))
	for i := range queues {
		q := newQueue()
		queues[i] = q
		loops.Go(func() { appendAtomic(ctx, jc, q, cl.subjectOf, false) })
	}
	return func(m *nats.Msg) {
		group, ok := groupOf(m)
		if !ok {
			fail(m, "not a change request with a group")
			return
		}
		queues[journal.PartitionOf(group, len(queues))].add(call{msg: m, group: group})
	}
}

// pause waits d, or returns ctx's error when it ends first.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
