package actors

import (
	"github.com/asynkron/protoactor-go/actor"
)

// passivate is the marker a stopping actor sends itself; once it comes
// back the mailbox is drained.
type passivate struct{}

// passivator stops idle actors without dropping messages.
//
// protoactor drops the messages left in a mailbox when its actor stops.
// So an actor the registry found idle stops in two steps: it releases its
// name, after which no new message reaches it (the registry keeps them for
// the next actor), then queues a marker behind everything already in its
// mailbox. When the marker comes back the mailbox is drained and the actor
// may stop, handing the registry what the next actor starts from.
type passivator struct {
	self    actor.Process
	mb      *mailbox // the actor's, when it is one of ours
	pid     *actor.PID
	reg     *registry
	name    string
	started bool
}

// init sets the passivator up in the actor's activation.
func (p *passivator) init(ctx actor.Context, a *activate) {
	p.self, _ = ctx.ActorSystem().ProcessRegistry.GetLocal(ctx.Self().Id)
	p.pid, p.reg, p.name, p.mb = ctx.Self(), a.reg, a.name, a.mb
}

// begin starts passivating: no new messages, then a marker.
func (p *passivator) begin() {
	if p.started {
		return
	}
	p.started = true
	p.reg.release(p.name, p.pid)
	p.self.SendUserMessage(p.pid, &passivate{})
}

// send delivers msg to the actor itself, also while it passivates. An
// idle actor runs it on the caller's goroutine before send returns: the
// caller must hold no lock the actor may take.
func (p *passivator) send(msg any) {
	if p.mb == nil {
		p.self.SendUserMessage(p.pid, msg)
		return
	}
	if p.mb.claim(msg) {
		p.mb.process()
	}
}

// stopped cleans up after the actor stopped, however it stopped (a panic
// stops it too): the name is free for a new actor.
func (p *passivator) stopped() {
	if p.reg != nil {
		p.reg.finish(p.name, p.pid, nil)
	}
}

// stop stops the actor, leaving snap (or nil) for the next one.
func (p *passivator) stop(snap *snapshot) {
	p.reg.finish(p.name, p.pid, snap)
	p.self.Stop(p.pid)
}
