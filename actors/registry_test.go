package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// probe forwards every message but its activation to got, in order.
type probe struct{ got chan any }

func (p *probe) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *activate, actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		p.got <- m
	}
}

// TestRegistryBacksOff: a name whose message comes back within the idle
// time after its actor stopped gets twice the idle time, and the default
// again once it stays away longer.
func TestRegistryBacksOff(t *testing.T) {
	got := make(chan any, 16)
	system := quietSystem()
	idle := time.Minute
	r := newRegistry(system.Root, actor.PropsFromProducer(func() actor.Actor { return &probe{got} }), true, idle, time.Hour)
	defer r.stopAll()
	r.once.Do(func() { close(r.stop) }) // the test keeps the clock
	<-r.done
	start := time.Now().UnixNano()
	r.now.Store(start)
	entry := func() *entry { return r.shard("g").entries["g"] }
	// stopAfter stops g's actor as an idle actor does, leaving a snapshot.
	stopAfter := func() {
		t.Helper()
		pid := entry().pid
		r.release("g", pid)
		r.finish("g", pid, &snapshot{})
		system.Root.Stop(pid)
		if e := entry(); e == nil || e.snap == nil {
			t.Fatal("no snapshot after the actor stopped")
		}
	}
	// asked reports whether g's actor is asked to stop at now.
	asked := func(now int64) bool {
		t.Helper()
		r.askIdle(now)
		system.Root.Send(entry().pid, "marker")
		m := <-got
		if m == "marker" {
			return false
		}
		if _, ok := m.(*idleCheck); !ok {
			t.Fatalf("actor got %T", m)
		}
		if m := <-got; m != "marker" {
			t.Fatalf("actor got %v after the idle check, want the marker", m)
		}
		return true
	}

	r.send("g", "first")
	<-got
	if asked(start+int64(idle)/2) || !asked(start+int64(idle)) {
		t.Fatal("an actor is asked to stop only after the idle time")
	}
	stopAfter()
	r.send("g", "soon") // back within the idle time
	<-got
	if e := entry(); e.backoff != 1 {
		t.Fatalf("backoff after a quick return = %d, want 1", e.backoff)
	}
	if asked(start+int64(idle)*3/2) || !asked(start+2*int64(idle)) {
		t.Error("after a quick return the actor is not asked to stop before twice the idle time")
	}

	stopAfter()
	r.now.Store(start + 10*int64(idle)) // away for longer than twice the idle time
	r.send("g", "late")
	<-got
	if e := entry(); e.backoff != 0 {
		t.Errorf("backoff after a long absence = %d, want 0", e.backoff)
	}
}
