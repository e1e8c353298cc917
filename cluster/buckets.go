package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal"
)

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
		if p := stream.CachedInfo().Config.Metadata["tally_partitions"]; p != "" && p != parts {
			return nil, fmt.Errorf("cluster: bucket %s was made for %s partitions, this node has %s: every node of a cluster must have the same", name, p, parts)
		}
	}
	if _, err := journal.EnsureStream(ctx, js, want); err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	return bind(ctx, js, name)
}

func bind(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	return kv, nil
}

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
