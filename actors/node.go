package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/tallyhq/tally/messages"
)

// Node is a member of the actor cluster that hosts group and limiter
// actors. Today it is a one-member cluster; more members need only a
// membership provider, since groups are addressed by identity.
type Node struct {
	cfg     Config
	system  *actor.ActorSystem
	cluster *cluster.Cluster
	pool    *pool
}

// Start starts a one-member cluster with the group and limiter kinds.
func Start(cfg Config) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// protoactor logs routine events at Info; keep its warnings and errors.
	quiet := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With(slog.String("component", "protoactor"))
	system := actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }),
	))
	node := &Node{cfg: cfg, system: system, pool: newPool(300)}
	// The lock-free mailbox makes its queue nodes as messages come, where
	// the default keeps a ring of 10 slots per actor (about 270 bytes).
	dispatch := actor.WithDispatcher(node.pool)
	mailbox := actor.WithMailbox(actor.UnboundedLockfree())
	kinds := []*cluster.Kind{
		cluster.NewKind(kindGroup, actor.PropsFromProducer(func() actor.Actor { return newGroup(&node.cfg) }, dispatch, mailbox)),
		cluster.NewKind(kindLimiter, actor.PropsFromProducer(func() actor.Actor { return newLimiter(&node.cfg) }, dispatch, mailbox)),
	}
	provider := test.NewTestProvider(test.NewInMemAgent())
	ccfg := cluster.Configure("tally", provider, disthash.New(), remote.Configure(cfg.Host, cfg.Port),
		cluster.WithKinds(kinds...),
		cluster.WithRequestTimeout(cfg.Timeout),
		cluster.WithClusterContextProducer(newRequestContext),
	)
	node.cluster = cluster.New(system, ccfg)
	// StartMember panics when it cannot listen.
	defer func() {
		if r := recover(); r != nil {
			node.pool.stop()
			err = fmt.Errorf("actors: start cluster member: %v", r)
		}
	}()
	node.cluster.StartMember()
	return node, nil
}

// Stop stops every actor. Callers stop sending commands first and wait for
// the replies of those they sent, so no append is in flight.
func (n *Node) Stop() {
	n.cluster.Shutdown(false)
	n.pool.stop()
}

// Change runs a write command on a group as user, or as a trusted back end
// when user is empty (no rate limit). It returns the change made: Seq and
// Value filled, or Seq 0 when the command changed nothing.
func (n *Node) Change(ctx context.Context, user, group string, cmd *messages.Change) (*messages.Change, error) {
	if err := ValidateChange(group, cmd); err != nil {
		return nil, err
	}
	res, err := n.call(ctx, user, group, &messages.Gate{GroupId: group, Change: cmd}, cmd)
	if err != nil {
		return nil, err
	}
	switch r := res.(type) {
	case *messages.Change:
		return r, nil
	case *messages.Error:
		return nil, fromReply(r)
	}
	return nil, fmt.Errorf("%w: group %s answered %T", ErrUnavailable, group, res)
}

// Get reads a group's counters as user, or as a trusted back end when user
// is empty.
func (n *Node) Get(ctx context.Context, user string, req *messages.GetRequest) (*messages.GetReply, error) {
	if err := ValidateGet(req); err != nil {
		return nil, err
	}
	res, err := n.call(ctx, user, req.GetGroupId(), &messages.Gate{GroupId: req.GetGroupId(), Get: req}, req)
	if err != nil {
		return nil, err
	}
	switch r := res.(type) {
	case *messages.GetReply:
		return r, nil
	case *messages.Error:
		return nil, fromReply(r)
	}
	return nil, fmt.Errorf("%w: group %s answered %T", ErrUnavailable, req.GetGroupId(), res)
}

// call runs msg on the group's actor. A user's call goes to the user's
// limiter, which refuses it or hands it to the group's actor, so that the
// group answers: one actor request, not two. A limiter that does not know
// the group's activation admits the call and leaves the delivery to call.
func (n *Node) call(ctx context.Context, user, group string, gate *messages.Gate, msg any) (any, error) {
	if user == "" {
		return n.request(ctx, group, kindGroup, msg)
	}
	if err := ValidateUserID(user); err != nil {
		return nil, err
	}
	res, err := n.request(ctx, user, kindLimiter, gate)
	if err != nil {
		return nil, err
	}
	if _, admitted := res.(*messages.Acquired); admitted {
		return n.request(ctx, group, kindGroup, msg)
	}
	return res, nil
}

func (n *Node) request(ctx context.Context, identity, kind string, msg any) (any, error) {
	var opts []cluster.GrainCallOption // the cluster's timeout is cfg.Timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < n.cfg.Timeout {
		opts = append(opts, cluster.WithTimeout(time.Until(d)))
	}
	res, err := n.cluster.Request(identity, kind, msg, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, kind, identity, err)
	}
	return res, nil
}

// requestContext is the cluster's request path. Unlike protoactor's
// default it resends a message only when it was not delivered (a dead
// letter: the actor had passivated), never after a timeout, when the actor
// may still apply it: a write must not be applied twice.
type requestContext struct {
	c *cluster.Cluster
}

func newRequestContext(c *cluster.Cluster) cluster.Context { return &requestContext{c: c} }

// maxLookups bounds the attempts to find an activation.
const maxLookups = 20

func (r *requestContext) Request(identity, kind string, msg any, opts ...cluster.GrainCallOption) (any, error) {
	cfg := cluster.NewGrainCallOptions(r.c)
	for _, o := range opts {
		o(cfg)
	}
	deadline := time.Now().Add(cfg.Timeout)
	for attempt := 0; ; attempt++ {
		pid := r.pid(identity, kind)
		left := time.Until(deadline)
		if pid == nil || left <= 0 {
			if left <= 0 || attempt >= maxLookups {
				return nil, fmt.Errorf("no activation of %s/%s: %w", kind, identity, actor.ErrTimeout)
			}
			time.Sleep(time.Duration(attempt+1) * time.Millisecond) // let placement settle
			continue
		}
		res, err := cfg.Context.RequestFuture(pid, msg, left).Result()
		if (errors.Is(err, actor.ErrDeadLetter) || errors.Is(err, remote.ErrDeadLetter)) && time.Until(deadline) > 0 {
			// The actor is passivating: once it has stopped, a new
			// activation takes the message.
			r.c.PidCache.Remove(identity, kind)
			time.Sleep(time.Duration(min(attempt+1, 10)) * time.Millisecond)
			continue
		}
		return res, err
	}
}

func (r *requestContext) RequestFuture(identity, kind string, msg any, opts ...cluster.GrainCallOption) (*actor.Future, error) {
	cfg := cluster.NewGrainCallOptions(r.c)
	for _, o := range opts {
		o(cfg)
	}
	pid := r.pid(identity, kind)
	if pid == nil {
		return nil, fmt.Errorf("no activation of %s/%s: %w", kind, identity, actor.ErrTimeout)
	}
	return cfg.Context.RequestFuture(pid, msg, cfg.Timeout), nil
}

func (r *requestContext) pid(identity, kind string) *actor.PID {
	if pid, ok := r.c.PidCache.Get(identity, kind); ok {
		return pid
	}
	pid := r.c.Get(identity, kind)
	if pid != nil {
		r.c.PidCache.Set(identity, kind, pid)
	}
	return pid
}

// minLevel drops records below its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
