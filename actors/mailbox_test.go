package actors

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/go-cmp/cmp"
)

// TestRing pushes and pops across wrap-arounds and growth, against a slice.
func TestRing(t *testing.T) {
	var r ring
	var model []any
	next := 0
	// Push a, pop b, for a pattern that wraps the head around and grows
	// the buffer while it is wrapped.
	for round, step := range [][2]int{{3, 2}, {5, 5}, {7, 3}, {1, 4}, {16, 9}, {2, 0}, {40, 33}} {
		for range step[0] {
			r.push(next)
			model = append(model, next)
			next++
		}
		for range step[1] {
			got := r.pop()
			if got != model[0] {
				t.Fatalf("round %d: popped %v, want %v", round, got, model[0])
			}
			model = model[1:]
		}
		if r.n != len(model) {
			t.Fatalf("round %d: %d queued, want %d", round, r.n, len(model))
		}
	}
	// Slots outside the queued range hold nothing, so that the ring keeps
	// no popped message alive.
	for i := r.n; i < len(r.buf); i++ {
		if v := r.buf[(r.head+i)&(len(r.buf)-1)]; v != nil {
			t.Fatalf("slot %d past the queue still holds %v", i, v)
		}
	}
}

// invokerLog is a MessageInvoker that records what it is given, and panics
// on the user message "panic".
type invokerLog struct {
	mu        sync.Mutex
	user, sys []any
	failures  []any
}

func (r *invokerLog) InvokeUserMessage(m any) {
	if m == "panic" {
		panic("boom")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user = append(r.user, m)
}

func (r *invokerLog) InvokeSystemMessage(m any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sys = append(r.sys, m)
}

func (r *invokerLog) EscalateFailure(reason, m any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprint(reason, " in ", m))
}

// inline runs a mailbox on the poster's goroutine, so that each post is
// processed before it returns.
type inline struct{}

func (inline) Schedule(fn func()) { fn() }
func (inline) Throughput() int    { return 2 }

// deferred runs a mailbox only when told to, so that a test can post
// several messages before any runs.
type deferred struct{ runs []func() }

func (d *deferred) Schedule(fn func()) { d.runs = append(d.runs, fn) }
func (d *deferred) Throughput() int    { return 300 }

func (d *deferred) runAll() {
	for len(d.runs) > 0 {
		fn := d.runs[0]
		d.runs = d.runs[1:]
		fn()
	}
}

func TestMailboxSystemMessagesFirst(t *testing.T) {
	var rec invokerLog
	var d deferred
	m := newMailbox()
	m.RegisterHandlers(&rec, &d)
	m.PostUserMessage("u1")
	m.PostSystemMessage("s1")
	m.PostUserMessage("u2")
	m.PostSystemMessage("s2")
	if len(d.runs) != 1 {
		t.Fatalf("%d runs scheduled for four posts, want 1", len(d.runs))
	}
	if got := m.UserMessageCount(); got != 2 {
		t.Fatalf("UserMessageCount = %d, want 2", got)
	}
	d.runAll()
	if diff := cmp.Diff([]any{"s1", "s2"}, rec.sys); diff != "" {
		t.Errorf("system messages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"u1", "u2"}, rec.user); diff != "" {
		t.Errorf("user messages (-want +got):\n%s", diff)
	}
	// Idle again: the next post schedules a new run.
	m.PostUserMessage("u3")
	if len(d.runs) != 1 {
		t.Fatalf("%d runs scheduled after going idle, want 1", len(d.runs))
	}
	d.runAll()
	if got := len(rec.user); got != 3 {
		t.Fatalf("%d user messages run, want 3", got)
	}
}

func TestMailboxSuspendHoldsUserMessages(t *testing.T) {
	var rec invokerLog
	m := newMailbox()
	m.RegisterHandlers(&rec, inline{})
	m.PostUserMessage("u1")
	m.PostSystemMessage(&actor.SuspendMailbox{})
	m.PostUserMessage("u2")
	m.PostUserMessage("u3")
	m.PostSystemMessage("s1") // system messages still run while suspended
	if diff := cmp.Diff([]any{"u1"}, rec.user); diff != "" {
		t.Fatalf("user messages while suspended (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"s1"}, rec.sys); diff != "" {
		t.Fatalf("system messages while suspended (-want +got):\n%s", diff)
	}
	if got := m.UserMessageCount(); got != 2 {
		t.Fatalf("UserMessageCount while suspended = %d, want 2", got)
	}
	m.PostSystemMessage(&actor.ResumeMailbox{})
	if diff := cmp.Diff([]any{"u1", "u2", "u3"}, rec.user); diff != "" {
		t.Fatalf("user messages after resume (-want +got):\n%s", diff)
	}
}

func TestMailboxEscalatesPanicsAndGoesOn(t *testing.T) {
	var rec invokerLog
	var d deferred
	m := newMailbox()
	m.RegisterHandlers(&rec, &d)
	for _, msg := range []any{"u1", "panic", "u2"} {
		m.PostUserMessage(msg)
	}
	d.runAll()
	if diff := cmp.Diff([]any{"boom in panic"}, rec.failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"u1", "u2"}, rec.user); diff != "" {
		t.Errorf("user messages (-want +got):\n%s", diff)
	}
	if got := m.UserMessageCount(); got != 0 {
		t.Errorf("UserMessageCount = %d, want 0", got)
	}
}

// sequenced is a message of one of several producers, numbered in the
// order that producer sent it.
type sequenced struct{ producer, n int }

// orderActor checks that each producer's messages arrive in order.
type orderActor struct {
	next []int
	bad  []string
	done chan<- []string
	want int
}

func (a *orderActor) Receive(ctx actor.Context) {
	m, ok := ctx.Message().(sequenced)
	if !ok {
		return
	}
	if m.n != a.next[m.producer] {
		a.bad = append(a.bad, fmt.Sprintf("producer %d: got %d, want %d", m.producer, m.n, a.next[m.producer]))
	}
	a.next[m.producer] = m.n + 1
	if a.want--; a.want == 0 {
		a.done <- a.bad
	}
}

// TestMailboxKeepsEachSendersOrder has producers send concurrently to one
// actor on the node's pool; every message arrives once, each producer's in
// the order sent.
func TestMailboxKeepsEachSendersOrder(t *testing.T) {
	const producers, each = 8, 20_000
	p := newPool(300)
	defer p.stop()
	done := make(chan []string, 1)
	system := quietSystem()
	defer system.Shutdown()
	props := actor.PropsFromProducer(func() actor.Actor {
		return &orderActor{next: make([]int, producers), done: done, want: producers * each}
	}, actor.WithDispatcher(p), actor.WithMailbox(newMailbox))
	pid := system.Root.Spawn(props)
	var wg sync.WaitGroup
	for i := range producers {
		wg.Go(func() {
			for n := range each {
				system.Root.Send(pid, sequenced{producer: i, n: n})
			}
		})
	}
	wg.Wait()
	select {
	case bad := <-done:
		if len(bad) > 0 {
			t.Fatalf("%d messages out of order, first: %s", len(bad), bad[0])
		}
	case <-time.After(time.Minute):
		t.Fatal("not every message arrived within a minute")
	}
}
