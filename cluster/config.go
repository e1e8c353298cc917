package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/metrics"
)

// Config configures a node's membership of a cluster. Every node of a
// cluster must run with the same partitions and timings.
type Config struct {
	// Name is the node's name, unique in the cluster.
	Name string
	// Inbox is the subject this process takes forwarded calls on, and
	// Started when it started: they tell its member record and leases from
	// another process's of the same name. Give the same ones to every
	// attempt to Start, so that an attempt recognises what an earlier one
	// that timed out stored. Empty: Start makes them.
	Inbox   string
	Started time.Time
	// Partitions is how many partitions groups and users fall into; fixed
	// for the life of a cluster's buckets.
	Partitions int
	// Replicas of the members and leases buckets: those of the journal.
	Replicas int
	// Journal is the layout of the journal the nodes write. With several
	// shards, a partition's owner is its shard's owner (see Assign), who
	// moves the leader of the shard's stream to its own server; with one,
	// each partition's owner is chosen on its own.
	Journal journal.Layout
	// Storage of the buckets: memory, since leases must not outlive a
	// restart of the whole cluster anyway.
	Storage jetstream.StorageType

	// LeaseTTL is how long a lease lasts after its last renewal, by the
	// bucket's clock; a node that cannot renew stops serving a partition
	// LeaseMargin before that, by its own clock.
	LeaseTTL    time.Duration
	LeaseMargin time.Duration
	// MemberTTL is how long a member record lasts after its last
	// heartbeat.
	MemberTTL time.Duration
	// Heartbeat is how often a node renews its member record and its
	// leases.
	Heartbeat time.Duration
	// OpTimeout bounds each request to the buckets.
	OpTimeout time.Duration
	// ParkFor is how long a call may wait for its partition to get an
	// owner before it is answered with ErrNoOwner.
	ParkFor time.Duration
	// DrainFor bounds how long a node that hands a partition over waits
	// for the calls it is serving on it.
	DrainFor time.Duration

	// Prefix is the root of the nodes' own subjects: a node takes the
	// calls forwarded to it on Prefix.<id>.
	Prefix        string
	MembersBucket string
	LeasesBucket  string

	Logger *slog.Logger
	// Metrics, when set, count lease renewals by result.
	Metrics *metrics.Metrics
}

// DefaultConfig returns the documented timings: leases of 4 s renewed
// every second, member records of 3 s, 64 partitions.
func DefaultConfig() Config {
	return Config{
		Partitions:    journal.Partitions,
		Replicas:      1,
		Storage:       jetstream.MemoryStorage,
		LeaseTTL:      4 * time.Second,
		LeaseMargin:   500 * time.Millisecond,
		MemberTTL:     3 * time.Second,
		Heartbeat:     time.Second,
		OpTimeout:     time.Second,
		ParkFor:       5 * time.Second,
		DrainFor:      6 * time.Second,
		Prefix:        "tally.internal",
		MembersBucket: "TALLY_MEMBERS",
		LeasesBucket:  "TALLY_LEASES",
		Logger:        slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("cluster: a node needs a name")
	case c.Partitions < 1 || c.Partitions > 4096:
		return fmt.Errorf("cluster: partitions %d not in 1..4096", c.Partitions)
	case c.Journal.Shards > 1 && c.Partitions != journal.Partitions:
		return fmt.Errorf("cluster: a journal of %d shards divides %d partitions, not %d", c.Journal.Shards, journal.Partitions, c.Partitions)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("cluster: replicas %d not in 1..5", c.Replicas)
	case c.Heartbeat <= 0 || c.OpTimeout <= 0 || c.ParkFor <= 0 || c.DrainFor <= 0:
		return errors.New("cluster: heartbeat, timeouts and waits must be positive")
	case c.LeaseTTL < time.Second || c.MemberTTL < time.Second:
		return fmt.Errorf("cluster: lease TTL %v and member TTL %v must be at least 1s (the buckets' granularity)", c.LeaseTTL, c.MemberTTL)
	case c.LeaseMargin <= 0 || c.LeaseTTL-c.LeaseMargin <= c.Heartbeat:
		return fmt.Errorf("cluster: a lease of %v with a margin of %v does not outlast a heartbeat of %v", c.LeaseTTL, c.LeaseMargin, c.Heartbeat)
	case c.MemberTTL <= c.Heartbeat:
		return fmt.Errorf("cluster: member TTL %v must be longer than the heartbeat %v", c.MemberTTL, c.Heartbeat)
	case c.Prefix == "" || c.MembersBucket == "" || c.LeasesBucket == "":
		return errors.New("cluster: subject prefix and bucket names are required")
	case c.Logger == nil:
		return errors.New("cluster: no logger")
	}
	return nil
}
