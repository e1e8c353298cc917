package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// passivationGrace is how long a passivating actor waits, unregistered,
// before it stops: a sender that looked the actor up just before it was
// unregistered has posted its message by then.
const passivationGrace = 50 * time.Millisecond

// Messages a passivator sends its actor.
type (
	// idleCheck asks the actor whether it has been idle long enough.
	idleCheck struct{}
	// passivate is the marker that comes back once the mailbox is drained.
	passivate struct{ round int }
)

// passivator stops idle actors without dropping messages.
//
// protoactor drops the messages left in a mailbox when its actor stops,
// and their callers time out; its receive timeout also races with the
// mailbox (seen with the race detector). So the passivator keeps its own
// idle timer, which only posts a message, and passivates in two steps: it
// unregisters the actor, so that new messages become dead letters, which
// the cluster request path resends to a fresh activation; then it queues a
// marker behind everything already in the mailbox, and a second one after
// passivationGrace. When that comes back the mailbox holds nothing more and
// the actor may stop.
type passivator struct {
	self    actor.Process // takes messages even once unregistered
	pid     *actor.PID
	after   time.Duration
	last    time.Time // when the actor last had work
	timer   *time.Timer
	started bool
}

// init sets the passivator up in the actor's first message; the actor
// passivates once it has had no work for after.
func (p *passivator) init(ctx actor.Context, after time.Duration) {
	p.self, _ = ctx.ActorSystem().ProcessRegistry.GetLocal(ctx.Self().Id)
	p.pid, p.after, p.last = ctx.Self(), after, time.Now()
	self, pid := p.self, p.pid
	p.timer = time.AfterFunc(after, func() { self.SendUserMessage(pid, &idleCheck{}) })
}

// touch records work.
func (p *passivator) touch() { p.last = time.Now() }

// idle handles an idleCheck: it reports whether the actor has been idle
// for the whole period, and otherwise checks again when it may be.
func (p *passivator) idle() bool {
	if left := p.after - time.Since(p.last); left > 0 {
		p.timer.Reset(left)
		return false
	}
	return true
}

// begin starts passivating: no new messages, then a marker.
func (p *passivator) begin(ctx actor.Context) {
	if p.started {
		return
	}
	p.started = true
	p.timer.Stop()
	ctx.ActorSystem().ProcessRegistry.Remove(ctx.Self())
	p.self.SendUserMessage(p.pid, &passivate{})
}

// marker handles a returning marker and reports whether the mailbox is
// drained, so the actor may stop once it has no work in flight.
func (p *passivator) marker(m *passivate) bool {
	if m.round == 0 {
		self, pid := p.self, p.pid
		time.AfterFunc(passivationGrace, func() { self.SendUserMessage(pid, &passivate{round: 1}) })
		return false
	}
	return true
}

// send delivers msg to the actor itself, also while it passivates.
func (p *passivator) send(msg any) { p.self.SendUserMessage(p.pid, msg) }

// stop stops the actor; ctx.Stop cannot, as the actor is no longer
// registered.
func (p *passivator) stop() {
	p.timer.Stop()
	p.self.Stop(p.pid)
}
