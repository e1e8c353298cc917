package node

import "github.com/tallyhq/tally/actors"

// registerMetrics adds the gauges read from the node's parts at each
// scrape: what the actors hold, the cluster's partitions, the fsyncs.
func (n *Node) registerMetrics() {
	m := n.metrics
	stat := func(f func(s actors.Stats) int) func() float64 {
		return func() float64 { return float64(f(n.actors.Stats())) }
	}
	m.Gauge("tally_groups_active", "Groups with a live actor.", stat(func(s actors.Stats) int { return s.Groups }))
	m.Gauge("tally_groups_snapshots", "Groups held as a compact snapshot, without an actor.", stat(func(s actors.Stats) int { return s.Snapshots }))
	m.Gauge("tally_limiters_active", "Users with a rate-limit record: a call within the last limit window, or refusals counted toward a flood.", stat(func(s actors.Stats) int { return s.Limiters }))
	m.Gauge("tally_request_ids", "Request IDs of the dedupe window the node remembers.", stat(func(s actors.Stats) int { return s.RequestIDs }))
	m.Gauge("tally_request_ids_bytes", "Bytes the remembered request IDs take.", stat(func(s actors.Stats) int { return s.RequestIDBytes }))
	m.Counter("tally_updates_dropped_total", "Updates dropped because the NATS server took them slower than groups changed.", func() float64 { return float64(n.publisher.Dropped()) })
	if n.syncer != nil {
		m.Counter("tally_journal_fsyncs_total", "syncfs(2) calls of --sync=always on one server.", func() float64 { return float64(n.syncer.Syncs()) })
	}
	if n.cluster != nil {
		m.Gauge("tally_partitions_owned", "Partitions whose lease this node holds.", func() float64 { return float64(n.cluster.Owned()) })
		if n.journal.Layout().Shards > 1 {
			m.Gauge("tally_shard_leaders_local", "Journal shard streams whose leader is this node's NATS server.", func() float64 { return float64(n.cluster.LeadersHere()) })
		}
	}
}
