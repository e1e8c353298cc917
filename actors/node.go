package actors

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/dedupe"
	"github.com/tallyhq/tally/messages"
)

// Reply receives the answer to a call: a *messages.Change for a write, a
// *messages.GetReply for a get, or an error. Reply is called exactly once,
// from an actor's goroutine (or the caller's, for a call refused before it
// reached an actor), and must not block. An interface rather than a
// function: a caller's own request type answers it, and no closure is
// made per call.
type Reply interface {
	Reply(res proto.Message, err error)
}

// ReplyFunc is a function that receives an answer, as a Reply.
type ReplyFunc func(res proto.Message, err error)

// Reply calls f.
func (f ReplyFunc) Reply(res proto.Message, err error) { f(res, err) }

// Node hosts the group actors and the users' rate limits of one process. Actors are
// activated by name on their first message and passivate when idle.
//
// In a cluster (Config.Leases) a node serves only the groups of the
// partitions it holds; should two nodes ever write one group, the journal
// fences their writes (see the journal package), so no write is lost or
// applied twice.
type Node struct {
	cfg      Config
	system   *actor.ActorSystem
	pool     *pool
	groups   *registry
	limits   *limits       // every user's rate limit
	seen     *dedupe.Table // request IDs of committed writes, for the dedupe window
	loads    *loads
	stopOnce sync.Once
}

// loads runs the groups' journal reads off their actors' goroutines. Stop
// cancels those in flight and waits for them.
type loads struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stopped bool
}

func (l *loads) run(read func(ctx context.Context)) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		read(l.ctx) // cancelled: it returns at once, and runs its actor
		return
	}
	l.wg.Go(func() { read(l.ctx) })
	l.mu.Unlock()
}

func (l *loads) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
}

// Start starts a node's actor system.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// protoactor logs routine events at Info; keep its warnings and errors.
	quiet := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With(slog.String("component", "protoactor"))
	system := actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }),
	))
	n := &Node{cfg: cfg, system: system, pool: newPool(300), seen: dedupe.New(), loads: &loads{}}
	n.loads.ctx, n.loads.cancel = context.WithCancel(context.Background())
	// The mailbox (mailbox.go) allocates nothing per message. An actor that
	// panics stops, answering what it holds with an error; the next message
	// activates a fresh one from the journal.
	opts := []actor.PropsOption{
		actor.WithDispatcher(n.pool),
		actor.WithMailbox(newMailbox),
		actor.WithGuardian(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })),
	}
	idle := min(cfg.ActorIdle, cfg.PassivateAfter)
	n.groups = newRegistry(system.Root, actor.PropsFromProducer(func() actor.Actor { return newGroup(n) }, opts...), true, idle, cfg.PassivateAfter-idle)
	n.limits = newLimits(&n.cfg)
	return n, nil
}

// Stop stops every actor; calls after the first do nothing. Callers stop
// sending commands first and wait for the replies of those they sent, so
// no append is in flight.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		n.loads.stop()
		n.limits.close()
		n.groups.stopAll()
		n.pool.stop()
		n.system.Shutdown()
	})
}

// SubmitChange runs a write command on a group as user, or as a trusted
// back end when user is empty (no rate limit), and answers reply with the
// change made: Seq and Value filled, or Seq 0 when the command changed
// nothing. It does not wait.
func (n *Node) SubmitChange(user, group string, cmd *messages.Change, reply Reply) {
	if err := ValidateChange(group, cmd); err != nil {
		reply.Reply(nil, err)
		return
	}
	if isMembers(cmd.GetOp()) {
		if user != "" || cmd.GetUser() != "" {
			reply.Reply(nil, fmt.Errorf("%w: only the admin subjects change members", ErrNotAllowed))
			return
		}
		// A request's users count once, in any order: its fingerprint and
		// its reply see the set.
		cmd.Members = slices.Compact(slices.Sorted(slices.Values(cmd.GetMembers())))
	}
	if user != "" {
		cmd.User = user // the journal's record, and the scope of its request ID
	}
	n.submit(user, &pending{group: group, cmd: cmd, reply: reply})
}

// SubmitGet reads a group's counters as user, or as a trusted back end
// when user is empty, and answers reply with a *messages.GetReply. It does
// not wait.
func (n *Node) SubmitGet(user string, req *messages.GetRequest, reply Reply) {
	if err := ValidateGet(req); err != nil {
		reply.Reply(nil, err)
		return
	}
	n.submit(user, &pending{group: req.GetGroupId(), get: req, member: user, reply: reply})
}

// SubmitGetAs reads a group's counters for a user's get that passed its
// rate limit elsewhere (in a cluster, on the node of the user's
// partition), or an admin's when user is empty: no rate limit, but a group
// with members refuses a user who is not one. It does not wait.
func (n *Node) SubmitGetAs(user string, req *messages.GetRequest, reply Reply) {
	if err := ValidateGet(req); err != nil {
		reply.Reply(nil, err)
		return
	}
	n.groups.send(req.GetGroupId(), &pending{group: req.GetGroupId(), get: req, member: user, reply: reply})
}

// SubmitList lists a page of a group's members, for an admin, and answers
// reply with a *messages.ListMembersReply. It does not wait.
func (n *Node) SubmitList(req *messages.ListMembersRequest, reply Reply) {
	if err := ValidateList(req); err != nil {
		reply.Reply(nil, err)
		return
	}
	n.groups.send(req.GetGroupId(), &pending{group: req.GetGroupId(), list: req, reply: reply})
}

// List is SubmitList waiting for its answer, like Change.
func (n *Node) List(ctx context.Context, req *messages.ListMembersRequest) (*messages.ListMembersReply, error) {
	res, err := n.wait(ctx, req.GetGroupId(), func(r Reply) { n.SubmitList(req, r) })
	if err != nil {
		return nil, err
	}
	return res.(*messages.ListMembersReply), nil
}

// submit runs a user's rate limit on a call and hands it to its group
// when admitted; a trusted call goes straight to the group.
func (n *Node) submit(user string, p *pending) {
	if user != "" {
		err := contract.CheckUserID(user)
		if err == nil {
			err = n.limits.admit(user, p.get != nil)
		}
		if err != nil {
			p.reply.Reply(nil, err)
			return
		}
	}
	n.groups.send(p.group, p)
}

// stale tells a group that another writer wrote it in the journal.
type stale struct{}

// Stale tells the node that another writer than this node wrote group's
// subject of the journal (a tool, an operator, a forger): a group in
// memory reloads from the journal, and serves nothing if its last event
// is damaged; one not in memory loads from the journal when next called.
func (n *Node) Stale(group string) { n.groups.notify(group, &stale{}) }

// Admit runs a user's rate limit for one call (a get when read): done gets
// nil when the call may go on, an ErrRateLimited error when not, before
// Admit returns. In a cluster the node that holds the user's partition
// admits, and the call goes on to the node of its group, which runs it as
// a trusted call (user "").
func (n *Node) Admit(user string, read bool, done func(error)) {
	err := contract.CheckUserID(user)
	if err == nil {
		err = n.limits.admit(user, read)
	}
	done(err)
}

// Change is SubmitChange waiting for its answer, at most until ctx ends or
// the configured Timeout, after which the outcome is unknown
// (ErrUnavailable).
func (n *Node) Change(ctx context.Context, user, group string, cmd *messages.Change) (*messages.Change, error) {
	res, err := n.wait(ctx, group, func(r Reply) { n.SubmitChange(user, group, cmd, r) })
	if err != nil {
		return nil, err
	}
	return res.(*messages.Change), nil
}

// Get is SubmitGet waiting for its answer, like Change.
func (n *Node) Get(ctx context.Context, user string, req *messages.GetRequest) (*messages.GetReply, error) {
	res, err := n.wait(ctx, req.GetGroupId(), func(r Reply) { n.SubmitGet(user, req, r) })
	if err != nil {
		return nil, err
	}
	return res.(*messages.GetReply), nil
}

func (n *Node) wait(ctx context.Context, group string, submit func(Reply)) (proto.Message, error) {
	type answer struct {
		res proto.Message
		err error
	}
	done := make(chan answer, 1)
	submit(ReplyFunc(func(res proto.Message, err error) { done <- answer{res, err} }))
	t := time.NewTimer(n.cfg.Timeout)
	defer t.Stop()
	select {
	case a := <-done:
		return a.res, a.err
	case <-t.C:
		return nil, fmt.Errorf("%w: group %s: no answer within %v", ErrUnavailable, group, n.cfg.Timeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: group %s: %w", ErrUnavailable, group, ctx.Err())
	}
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

// Stats are what a node holds in memory, for its metrics.
type Stats struct {
	Groups, Snapshots, Limiters int // live group actors, groups held as snapshots, users with a rate-limit record
	RequestIDs, RequestIDBytes  int // the dedupe window's table
}

// Stats counts what the node holds now.
func (n *Node) Stats() Stats {
	var s Stats
	s.Groups, s.Snapshots = n.groups.counts()
	s.Limiters = n.limits.count()
	s.RequestIDs, s.RequestIDBytes = n.seen.Len(), n.seen.Bytes()
	return s
}
