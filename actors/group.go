package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/dedupe"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// maxAttempts bounds how often one command is retried after conflicts
// before its caller gets ErrUnavailable.
const maxAttempts = 16

// pending is a call on its way to its group, and then a command waiting
// for its reply.
type pending struct {
	group    string
	cmd      *messages.Change             // a write, or nil
	get      *messages.GetRequest         // a get, or nil
	list     *messages.ListMembersRequest // a members.list, or nil
	member   string                       // the user of a user's get, whose membership is checked
	reply    Reply
	id       dedupe.Key       // the write's request ID, hashed with the group's, when it has one
	fp       uint64           // the write's fingerprint, when it has a request ID
	dups     []Reply          // later callers with the same request ID
	result   *messages.Change // the change the command made
	err      error            // why the command was refused
	attempts int
	// unindexed: a members.remove whose users are out of the index, to be
	// appended next.
	unindexed bool
}

// Messages a group actor sends itself when its journal I/O completes.
type (
	loaded struct {
		ev         *messages.Event
		seq        uint64
		recent     []recentChange
		members    *membership.Set
		membersSeq uint64
		err        error
	}
	appended struct {
		seq uint64
		err error
	}
	// wake starts an append that waited for MinAppendGap.
	wake struct{}
	// indexed reports that an index job is done.
	indexed struct{ job *indexJob }
)

type recentChange struct {
	change *messages.Change
	at     int64 // unix nanos of its event
}

// group owns one group's counters. Its fields are touched only in Receive.
type group struct {
	cfg   *Config
	seen  *dedupe.Table // the node's request IDs of committed writes
	loads *loads        // where journal reads run
	id    string

	state *messages.GroupState // committed state
	spare *messages.GroupState // the state before the last commit, reused as a draft
	seq   uint64               // stream sequence of the group's last event
	// members is the committed member set; membersSeq the stream sequence
	// of the last event that changed it, which the next event names.
	members    *membership.Set
	membersSeq uint64
	// Index jobs run one at a time, in order (see members.go): running
	// is the one in flight.
	jobs    []*indexJob
	running *indexJob
	ready   bool // state is loaded and current
	busy    bool // a load or an append is in flight
	stale   bool // another writer wrote the group while busy: load again after
	await   bool // the next load reads until the last event is past seq

	queue    []*pending // arrived, not yet in an append
	inflight []*pending // in the append in flight
	event    *messages.Event
	sent     time.Time // when the append in flight was sent
	// The last append's batch and event, and the callback of every append,
	// kept for the next append so that it allocates less.
	spareBatch []*pending
	spareEvent *messages.Event
	appendDone func(seq uint64, err error)
	updates    string // the subject of the group's updates, once known
	updatesMO  bool   // whether updates is the subject of a group with members

	waiting map[dedupe.Key]*pending // request IDs (by user) of queued and in-flight commands

	lastAppend time.Time // when the last append started
	paced      bool      // a wake-up is due to start the next append

	pass    passivator
	drained bool  // passivating, and the marker came back: stop once idle
	failed  error // the group could not be loaded: answer with it, then stop

	// In a cluster: the group's partition, and the epoch of the node's
	// lease on it when the group was loaded. The group serves only under
	// that lease.
	leases Leases
	part   int
	epoch  uint64
}

func newGroup(n *Node) actor.Actor {
	// waiting is made on first use: an idle group should cost little
	// memory.
	return &group{cfg: &n.cfg, seen: n.seen, loads: n.loads, leases: n.cfg.Leases}
}

// owns reports whether the node still holds the lease the group was loaded
// under.
func (g *group) owns() bool {
	if g.leases == nil {
		return true
	}
	epoch, _, ok := g.leases.Lease(g.part)
	return ok && epoch == g.epoch
}

// disown answers everything the group holds with ErrUnavailable and stops
// it: the node lost the group's partition, and the next owner serves it.
func (g *group) disown() {
	g.failed = fmt.Errorf("%w: this node no longer holds group %s's partition; try again", ErrUnavailable, g.id)
	for _, p := range g.queue {
		p.result, p.err = nil, g.failed
		g.finish(p)
	}
	g.queue = nil
	g.pass.begin()
}

func (g *group) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *activate:
		g.id = m.name
		g.pass.init(ctx, m)
		if g.leases != nil {
			g.part = g.leases.Partition(g.id)
		}
		switch {
		case m.snap == nil:
			g.load(0)
		case g.current(m.snap):
			g.restore(m.snap)
		default:
			// Another node may have written the group since: read its state
			// and the request IDs of its events after the snapshot's.
			g.load(m.snap.seq)
		}
	case *pending:
		switch {
		case g.failed != nil:
			m.reply.Reply(nil, g.failed)
		case m.cmd != nil:
			g.onChange(m)
		case !g.ready:
			g.queue = append(g.queue, m)
		case !g.owns():
			g.queue = append(g.queue, m)
			g.disown()
		default:
			m.reply.Reply(g.answer(m.get, m.list, m.member))
		}
	case *stale:
		g.onStale()
	case *loaded:
		g.onLoaded(m)
	case *appended:
		g.onAppended(m)
	case *wake:
		g.paced = false
		g.flush()
		g.stopIfDone()
	case *indexed:
		g.onIndexed(m.job)
	case *idleCheck:
		if !g.busy && !g.paced && g.running == nil && len(g.queue) == 0 {
			g.pass.begin()
		}
	case *passivate:
		g.drained = true
		g.stopIfDone()
	case *actor.Stopped:
		g.pass.stopped()
		g.abandon()
	}
}

// abandon answers every command still held with ErrUnavailable: the actor
// stopped (a panic stops it) before they were done, and the outcome of
// those in the append in flight is unknown.
func (g *group) abandon() {
	held := append(g.inflight, g.queue...)
	// A job still running reports to an actor that is gone: its commands
	// are answered here.
	for _, j := range append(g.jobs, g.running) {
		if j != nil {
			held = append(held, j.then...)
		}
	}
	g.jobs, g.running = nil, nil
	for _, p := range held {
		p.result, p.err = nil, fmt.Errorf("%w: group %s stopped", ErrUnavailable, g.id)
		g.finish(p)
	}
	g.inflight, g.queue = nil, nil
}

// stopIfDone stops a passivating group once its mailbox is drained and it
// has nothing in flight, leaving a snapshot of its state for the next
// activation.
func (g *group) stopIfDone() {
	if g.drained && !g.busy && !g.paced && g.running == nil && len(g.queue) == 0 {
		// A group that lost its lease leaves a snapshot too: served again
		// only under the same lease, it otherwise tells the next load how
		// far the node's table knows the group's request IDs.
		var snap *snapshot
		if g.ready {
			snap = g.snapshot()
		}
		g.pass.stop(snap)
	}
}

// onStale reloads a group that another writer than this node wrote in the
// journal: its state here is no longer the journal's, and the journal is
// the truth, also when what was written is damaged.
func (g *group) onStale() {
	switch {
	case g.failed != nil:
	case g.busy:
		g.stale = true // what is in flight may have read or written before it
	default:
		g.cfg.Logger.Info("group written by another writer; reloading", slog.String("group", g.id))
		g.cfg.Metrics.Reloaded()
		// The watcher sees the event on its way to the journal's stream,
		// which may not have stored it yet.
		g.await = true
		g.load(g.seq)
	}
}

// reloadIfStale loads a group that went stale while busy, and reports
// whether it did.
func (g *group) reloadIfStale() bool {
	if !g.stale {
		return false
	}
	g.stale = false
	g.onStale()
	return true
}

func (g *group) onChange(p *pending) {
	cmd := p.cmd
	if id := cmd.GetRequestId(); id != "" {
		p.id, p.fp = g.seen.Key(g.id, cmd.GetUser(), id), fingerprint(cmd)
		if first, ok := g.waiting[p.id]; ok {
			if first.fp != p.fp {
				p.reply.Reply(nil, reused(id))
				return
			}
			first.dups = append(first.dups, p.reply)
			return
		}
		if g.waiting == nil {
			g.waiting = map[dedupe.Key]*pending{}
		}
		g.waiting[p.id] = p
	}
	g.queue = append(g.queue, p)
	g.flush()
}

// answer answers a get or a members.list of a group that is ready.
func (g *group) answer(get *messages.GetRequest, list *messages.ListMembersRequest, member string) (proto.Message, error) {
	if list != nil {
		return g.list(list), nil
	}
	if err := g.allowed(member); err != nil {
		return nil, err
	}
	return g.read(get), nil
}

func (g *group) read(req *messages.GetRequest) *messages.GetReply {
	out := &messages.GetReply{GroupId: g.id, Counters: make(map[string]int64, len(req.GetKeyList())), Seq: g.state.GetVersion(), Members: g.state.GetMembersOnly()}
	if len(req.GetKeyList()) == 0 {
		for k, v := range g.state.Counters {
			out.Counters[k] = v
		}
		return out
	}
	for _, k := range req.GetKeyList() {
		if v, ok := g.state.Counters[k]; ok {
			out.Counters[k] = v
		}
	}
	return out
}

// flush starts the next append with every queued command, up to MaxBatch,
// unless a load or an append is in flight.
func (g *group) flush() {
	for g.ready && !g.busy && !g.paced && g.running == nil && len(g.queue) > 0 {
		if !g.owns() {
			g.disown()
			return
		}
		if g.pace() {
			return
		}
		now := g.cfg.Clock.Mono()
		next := g.draft()
		ev := g.newEvent(g.cfg.Clock.Now().UnixNano())
		batch := g.spareBatch
		g.spareBatch = nil
		n := 0
		size := maxStateBytes
		for ; n < len(g.queue) && len(batch) < g.cfg.MaxBatch; n++ {
			p := g.queue[n]
			if g.answered(p, now) {
				g.settle(p, true)
				continue
			}
			// A members change goes alone, so that every other command of
			// an append is checked against the members before it.
			members := isMembers(p.cmd.GetOp())
			if len(batch) > 0 && (members || isMembers(batch[0].cmd.GetOp())) {
				break
			}
			if g.unindex(p) {
				break
			}
			// The event must fit in one NATS message.
			if size += changeBytes(p.cmd); size > g.cfg.MaxEventBytes && len(batch) > 0 {
				break
			}
			if p.err = g.allowed(p.cmd.GetUser()); p.err == nil {
				p.result, p.err = decide(next, g.members, p.cmd)
			}
			if p.err == nil && p.result == nil {
				p.result = &messages.Change{Op: p.cmd.GetOp(), RequestId: p.cmd.GetRequestId()}
			} else if p.err == nil {
				ev.Changes = append(ev.Changes, p.result)
			}
			batch = append(batch, p)
		}
		g.queue = slices.Delete(g.queue, 0, n)
		if len(ev.Changes) == 0 {
			for _, p := range batch {
				g.settle(p, false)
			}
			continue
		}
		ev.State = next
		g.busy, g.inflight, g.event = true, batch, ev
		g.lastAppend = time.Now()
		g.append(ev)
	}
}

// pace reports whether the next append must wait for MinAppendGap, and
// then arranges a wake-up.
func (g *group) pace() bool {
	gap := int64(g.cfg.MinAppendGap)
	if gap <= 0 {
		return false
	}
	wait := gap - int64(time.Since(g.lastAppend))
	if wait <= 0 {
		return false
	}
	g.paced = true
	pass := &g.pass
	time.AfterFunc(time.Duration(wait), func() { pass.send(&wake{}) })
	return true
}

// maxStateBytes bounds the encoded state an event carries: 20 counters of
// 128-byte keys and 10-byte values, with their tags.
const maxStateBytes = contract.MaxKeys*(contract.MaxKeyLen+16) + 16

// changeBytes bounds the encoded size of the change a command makes.
func changeBytes(c *messages.Change) int {
	n := 48 + len(c.GetRequestId()) + len(c.GetKey()) + len(c.GetUser())
	for _, u := range c.GetMembers() {
		n += len(u) + 4
	}
	for k := range c.GetCounters() {
		n += len(k) + 16
	}
	for _, k := range c.GetKeys() {
		n += len(k) + 4
	}
	return n
}

// answered reports whether p's request ID was committed within the dedupe
// window, and if so sets the first write's outcome as p's, or refuses p
// when it is another request under that ID.
func (g *group) answered(p *pending, now int64) bool {
	if p.cmd.GetRequestId() == "" || g.cfg.DedupeWindow == 0 {
		return false
	}
	o, ok := g.seen.Get(p.id, now)
	switch {
	case !ok:
		return false
	case o.Fingerprint != p.fp:
		p.err = reused(p.cmd.GetRequestId())
	default:
		c := p.cmd
		p.result = &messages.Change{
			Seq: o.Seq, Op: c.GetOp(), RequestId: c.GetRequestId(),
			Counters: c.GetCounters(), Key: c.GetKey(), Amount: c.GetAmount(), Value: o.Value,
			Members: o.Users,
		}
	}
	return true
}

func reused(id string) error {
	return fmt.Errorf("%w: requestID %s was used for another request within the dedupe window; send a new ID for a new request", ErrInvalidParameter, contract.Quote(id))
}

// draft returns a copy of the committed state for the next append to
// change, reusing the map of the state before the last commit.
func (g *group) draft() *messages.GroupState {
	d := g.spare
	if d == nil {
		return CloneState(g.state)
	}
	g.spare = nil
	clear(d.Counters)
	maps.Copy(d.Counters, g.state.Counters)
	d.Version = g.state.Version
	d.MembersOnly, d.MemberCount, d.MembersDigest = g.state.MembersOnly, g.state.MemberCount, g.state.MembersDigest
	return d
}

// newEvent returns an empty event after the group's last, reusing the last
// append's.
func (g *group) newEvent(now int64) *messages.Event {
	ev := g.spareEvent
	if ev == nil {
		return &messages.Event{PrevSeq: g.seq, UnixNano: now, MembersSeq: g.membersSeq}
	}
	g.spareEvent = nil
	ev.PrevSeq, ev.UnixNano, ev.State, ev.MembersSeq = g.seq, now, nil, g.membersSeq
	return ev
}

// recycle keeps an append's batch and event for the next append, once
// nothing refers to them: their commands are answered, and the journal
// encoded the event before AppendAsync returned. The changes themselves
// live on (in replies, and in seen).
func (g *group) recycle(batch []*pending, ev *messages.Event) {
	clear(batch)
	g.spareBatch = batch[:0]
	clear(ev.Changes)
	ev.Changes, ev.State = ev.Changes[:0], nil
	g.spareEvent = ev
}

// append stores ev in the journal without waiting; the outcome comes back
// as an appended message.
func (g *group) append(ev *messages.Event) {
	if g.appendDone == nil {
		// One message for every acknowledgement: one append is in flight
		// at a time, and the actor reads it before the next one starts.
		pass, ack := &g.pass, &appended{}
		g.appendDone = func(seq uint64, err error) {
			ack.seq, ack.err = seq, err
			pass.send(ack)
		}
	}
	if g.cfg.Metrics != nil {
		g.sent = time.Now()
	}
	g.cfg.Journal.AppendAsync(g.id, g.seq, ev, g.appendDone)
}

func (g *group) onAppended(ack *appended) {
	// ack is reused by the next append, which may start below.
	m := *ack
	batch, ev := g.inflight, g.event
	g.busy, g.inflight, g.event = false, nil, nil
	if mt := g.cfg.Metrics; mt != nil {
		result := "ok"
		switch {
		case errors.Is(m.err, journal.ErrConflict):
			result = "conflict"
		case m.err != nil:
			result = "error"
		}
		mt.Appended(len(batch), time.Since(g.sent), result)
	}
	switch {
	case m.err == nil:
		g.commit(m.seq, ev, batch)
		g.recycle(batch, ev)
		if g.reloadIfStale() {
			return
		}
		g.flush()
		g.stopIfDone()
	case errors.Is(m.err, journal.ErrConflict):
		// Another writer appended to this group: nothing of the batch is
		// stored. Reload and run the batch again against the new state.
		g.cfg.Logger.Info("group changed by another writer; reloading", slog.String("group", g.id), slog.Uint64("expected", g.seq))
		requeue := batch[:0]
		for _, p := range batch {
			p.result, p.err = nil, nil
			if p.attempts++; p.attempts >= maxAttempts {
				p.err = fmt.Errorf("%w: group %s: %d conflicting writers in a row", ErrUnavailable, g.id, p.attempts)
				g.finish(p)
				continue
			}
			requeue = append(requeue, p)
		}
		g.queue = append(requeue, g.queue...)
		g.cfg.Metrics.Reloaded()
		g.load(g.seq)
	default:
		// The append may or may not be stored: answer unknown, and reload,
		// since a stored append moved the group past g.seq.
		g.cfg.Logger.Warn("journal append failed", slog.String("group", g.id), slog.Any("error", m.err))
		for _, p := range batch {
			p.result, p.err = nil, fmt.Errorf("%w: group %s: %w", ErrUnavailable, g.id, m.err)
			g.finish(p)
		}
		g.recycle(batch, ev)
		g.cfg.Metrics.Reloaded()
		g.load(g.seq)
	}
}

// commit applies an acknowledged event, remembers its request IDs,
// publishes its updates and replies to its callers in arrival order.
func (g *group) commit(seq uint64, ev *messages.Event, batch []*pending) {
	// The event's state is the committed state with the event applied:
	// decide built it with Apply's own steps. The old state is the next
	// draft.
	g.spare, g.state, g.seq = g.state, ev.State, seq
	for _, c := range ev.Changes {
		if isMembers(c.GetOp()) {
			applyMembers(g.members, c)
			g.membersSeq = seq
		}
	}
	if g.cfg.DedupeWindow > 0 {
		now, expires := expiry(g.cfg.Clock, g.cfg.DedupeWindow, ev.GetUnixNano())
		for _, p := range batch {
			if p.err == nil && p.result.GetSeq() > 0 && p.cmd.GetRequestId() != "" {
				g.seen.Put(p.id, dedupe.Outcome{Fingerprint: p.fp, Seq: p.result.GetSeq(), Value: p.result.GetValue(), Users: p.result.GetMembers()}, expires, now)
			}
		}
	}
	if pub := g.cfg.Publisher; pub != nil {
		if mo := g.state.GetMembersOnly(); g.updates == "" || g.updatesMO != mo {
			g.updates, g.updatesMO = pub.Subject(g.id, mo), mo
		}
		if pub.Wants(g.updates) {
			var ups []*messages.Update
			for _, c := range ev.Changes {
				ups = append(ups, updates(g.id, c)...)
			}
			pub.Publish(g.updates, ups)
		}
	}
	if !g.owns() {
		// The lease ended while the append was in flight: the new owner may
		// have served a read without this change, so it cannot be
		// acknowledged; a retry with its request ID gets its outcome.
		for _, p := range batch {
			p.result, p.err = nil, fmt.Errorf("%w: this node lost group %s's partition while the write was stored; retry with the same requestID for its outcome", ErrUnavailable, g.id)
		}
	}
	for _, p := range batch {
		g.settle(p, false)
	}
}

// finish replies to a command's caller and to the callers that sent the
// same request ID while it was pending.
func (g *group) finish(p *pending) {
	// Gets reach here only refused: an answered get never waits.
	var res proto.Message = p.result
	if p.err != nil || p.cmd == nil {
		res = nil // not a typed nil
	}
	p.reply.Reply(res, p.err)
	for _, d := range p.dups {
		d.Reply(res, p.err)
	}
	if p.cmd.GetRequestId() != "" && g.waiting[p.id] == p {
		delete(g.waiting, p.id)
	}
}
