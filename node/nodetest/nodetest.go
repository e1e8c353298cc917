// Package nodetest holds what tests and the benchmark need to run tally
// nodes whose journal they can read.
package nodetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// OpsConfig is an embedded server configuration, after a listen line:
// clients enter APP without credentials and reach the service by imports
// from TALLY, and the operator user ops/ops enters TALLY, where the
// journal and the cluster's buckets are.
const OpsConfig = `
accounts {
  TALLY: {
    jetstream: enabled
    users: [{user: ops, password: ops}]
    exports: [
      {service: "tally.v1.user.>", response: singleton}
      {service: "tally.v1.admin.>", response: singleton}
      {service: "$SRV.>", response: stream}
      {stream: "tally.v1.updates.>"}
    ]
  }
  APP: {
    users: [{user: app, password: app}]
    imports: [
      {service: {account: TALLY, subject: "tally.v1.user.>"}}
      {service: {account: TALLY, subject: "tally.v1.admin.>"}}
      {service: {account: TALLY, subject: "$SRV.>"}}
      {stream: {account: TALLY, subject: "tally.v1.updates.>"}}
    ]
  }
}
no_auth_user: app
`

// Roles reads, through nc (a connection to the account that holds the
// journal and the cluster's buckets), which node leads the journal's
// stream that holds group and which holds the lease of group's partition.
func Roles(ctx context.Context, nc *nats.Conn, group string) (leader, owner string, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", "", err
	}
	layout, err := journal.Discover(ctx, js, journal.DefaultConfig())
	if err != nil {
		return "", "", err
	}
	st, err := js.Stream(ctx, layout.StreamOf(layout.ShardOf(group)))
	if err != nil {
		return "", "", fmt.Errorf("journal stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return "", "", fmt.Errorf("journal stream info: %w", err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", "", errors.New("the journal stream has no leader")
	}
	owners, err := Owners(ctx, nc)
	if err != nil {
		return "", "", err
	}
	return info.Cluster.Leader, owners[cluster.PartitionOf(group, len(owners))], nil
}

// Owners reads, through nc, which node holds each partition's lease: ""
// for a partition no node holds.
func Owners(ctx context.Context, nc *nats.Conn) ([]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cfg := cluster.DefaultConfig()
	kv, err := js.KeyValue(ctx, cfg.LeasesBucket)
	if err != nil {
		return nil, fmt.Errorf("leases bucket: %w", err)
	}
	owners := make([]string, cfg.Partitions)
	for p := range owners {
		e, err := kv.Get(ctx, "p."+strconv.Itoa(p))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lease of partition %d: %w", p, err)
		}
		var l messages.Lease
		if err := proto.Unmarshal(e.Value(), &l); err != nil {
			return nil, fmt.Errorf("lease of partition %d: %w", p, err)
		}
		owners[p] = l.GetNode()
	}
	return owners, nil
}

// Owner returns the node that the cluster, with members as its live
// members, picks to hold group's partition, and with a journal of several
// shards the server that is to lead its shard's stream (the owner's):
// read through nc (a connection to the account that holds the journal and
// the cluster's buckets), from the journal's layout and, with several
// shards, the members' records (each must be in the bucket) and the shard
// streams' servers.
func Owner(ctx context.Context, nc *nats.Conn, group string, members []string) (owner, server string, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", "", err
	}
	layout, err := journal.Discover(ctx, js, journal.DefaultConfig())
	if err != nil {
		return "", "", err
	}
	p := cluster.PartitionOf(group, journal.Partitions)
	if layout.Shards == 1 {
		return cluster.Owner(members, p), "", nil
	}
	kv, err := js.KeyValue(ctx, cluster.DefaultConfig().MembersBucket)
	if err != nil {
		return "", "", fmt.Errorf("members bucket: %w", err)
	}
	var cands []cluster.Candidate
	servers := map[string]string{}
	for _, name := range members {
		e, err := kv.Get(ctx, name)
		if err != nil {
			return "", "", fmt.Errorf("member record of %s: %w", name, err)
		}
		var m messages.Member
		if err := proto.Unmarshal(e.Value(), &m); err != nil {
			return "", "", fmt.Errorf("member record of %s: %w", name, err)
		}
		cands = append(cands, cluster.Candidate{Name: name, Server: m.GetServer()})
		servers[name] = m.GetServer()
	}
	peers := make([][]string, layout.Shards)
	for s := range peers {
		st, err := js.Stream(ctx, layout.StreamOf(s))
		if err != nil {
			return "", "", fmt.Errorf("journal stream: %w", err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return "", "", fmt.Errorf("journal stream info: %w", err)
		}
		if info.Cluster != nil {
			if info.Cluster.Leader != "" {
				peers[s] = append(peers[s], info.Cluster.Leader)
			}
			for _, r := range info.Cluster.Replicas {
				peers[s] = append(peers[s], r.Name)
			}
		}
	}
	owner = cluster.Assign(peers, cands)[layout.ShardOfPartition(p)]
	return owner, servers[owner], nil
}
