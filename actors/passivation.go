package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Messages a passivator sends its actor.
type (
	// idleCheck asks the actor whether it has been idle long enough.
	idleCheck struct{}
	// passivate is the marker that comes back once the mailbox is drained.
	passivate struct{}
)

// passivator stops idle actors without dropping messages.
//
// protoactor drops the messages left in a mailbox when its actor stops,
// and its receive timeout races with the mailbox (seen with the race
// detector). So the passivator keeps its own idle timer, which only posts a
// message, and passivates in two steps: it removes the actor from its
// registry, after which no new message reaches it, then queues a marker
// behind everything already in the mailbox. When the marker comes back the
// mailbox is drained and the actor may stop.
type passivator struct {
	self    actor.Process
	pid     *actor.PID
	reg     *registry
	name    string
	after   time.Duration
	last    time.Time // when the actor last had work
	timer   *time.Timer
	started bool
}

// init sets the passivator up in the actor's activation; the actor
// passivates once it has had no work for after.
func (p *passivator) init(ctx actor.Context, a *activate, after time.Duration) {
	p.self, _ = ctx.ActorSystem().ProcessRegistry.GetLocal(ctx.Self().Id)
	p.pid, p.reg, p.name, p.after, p.last = ctx.Self(), a.reg, a.name, after, time.Now()
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
func (p *passivator) begin() {
	if p.started {
		return
	}
	p.started = true
	p.timer.Stop()
	p.reg.remove(p.name, p.pid)
	p.self.SendUserMessage(p.pid, &passivate{})
}

// send delivers msg to the actor itself, also while it passivates.
func (p *passivator) send(msg any) { p.self.SendUserMessage(p.pid, msg) }

// stopped cleans up after the actor stopped, however it stopped (a panic
// stops it too): it is no longer found by name.
func (p *passivator) stopped() {
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.reg != nil {
		p.reg.remove(p.name, p.pid)
	}
}

// stop stops the actor.
func (p *passivator) stop() { p.self.Stop(p.pid) }
