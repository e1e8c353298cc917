package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// probeSuffix follows a node's inbox in the subject on which it answers
// the others' probes.
const probeSuffix = ".probe"

// probe is what a probe of the other members found.
type probe struct {
	at       int64 // mono nanos
	answered int
	asked    int
}

// reaching reports whether the probe reached most of the cluster, this
// node included.
func (p *probe) reaching() bool { return 2*(p.answered+1) > p.asked+1 }

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
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
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
