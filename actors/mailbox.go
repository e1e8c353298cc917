package actors

import (
	"runtime"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// mailbox is a protoactor mailbox that allocates nothing per message once
// its ring has grown to the actor's usual backlog. protoactor's lock-free
// mailbox makes a queue node for every message and a closure every time it
// schedules itself: with a group in the path of each call, and an
// acknowledgement coming back to it, that was (with a limiter actor before
// the group, since removed) 9% of a node's allocations on the benchmark's
// w1. A mutex guards the ring: an actor has
// one consumer, and its producers hold the lock only to store a pointer.
//
// It behaves as protoactor's default mailbox: system messages go first,
// SuspendMailbox holds user messages until ResumeMailbox, a panic in the
// actor is escalated to its supervisor, and a running mailbox yields after
// the dispatcher's Throughput messages. It does not unpack MessageBatch,
// which tally does not send, and has no middleware.
type mailbox struct {
	mu        sync.Mutex
	user      ring
	sys       []any
	scheduled bool // a run is scheduled or running
	suspended bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
	run        func() // m.process, bound once
}

func newMailbox() actor.Mailbox { return &mailbox{} }

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
	m.run = m.process
}

func (m *mailbox) Start() {}

func (m *mailbox) PostUserMessage(msg any) {
	m.mu.Lock()
	m.user.push(msg)
	m.post()
}

func (m *mailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.sys = append(m.sys, msg)
	m.post()
}

// claim posts a user message and reports whether the caller must run the
// mailbox (process) itself: it was idle, and is now the caller's until
// process returns. The caller must hold no lock that the actor may take:
// the registry posts under its shard locks and runs after it unlocked.
// A call's command, and the journal's acknowledgement, run on the
// goroutine that brought them rather than a pool worker woken for them:
// a hand-off between goroutines cost more than most commands.
func (m *mailbox) claim(msg any) bool {
	m.mu.Lock()
	m.user.push(msg)
	run := !m.scheduled
	m.scheduled = true
	m.mu.Unlock()
	return run
}

// post schedules a run unless one is scheduled already, and unlocks.
func (m *mailbox) post() {
	start := !m.scheduled
	m.scheduled = true
	m.mu.Unlock()
	if start {
		m.dispatcher.Schedule(m.run)
	}
}

func (m *mailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user.n
}

// process runs messages until none can run, then marks the mailbox idle
// under the lock that posters take, so a message posted after that
// schedules a new run.
func (m *mailbox) process() {
	for !m.runSome() {
	}
}

// runSome invokes messages until the mailbox is idle, and reports true
// then; it reports false after a panic, which it escalates, so that
// process goes on with what is left.
func (m *mailbox) runSome() (idle bool) {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	limit := m.dispatcher.Throughput()
	for i := 0; ; i++ {
		if i >= limit {
			i = 0
			runtime.Gosched()
		}
		var sys bool
		if msg, sys = m.take(); msg == nil {
			return true
		}
		if !sys {
			m.invoker.InvokeUserMessage(msg)
			continue
		}
		switch msg.(type) {
		case *actor.SuspendMailbox:
			m.setSuspended(true)
		case *actor.ResumeMailbox:
			m.setSuspended(false)
		default:
			m.invoker.InvokeSystemMessage(msg)
		}
	}
}

// take returns the next message to run, system messages first, or nil
// after marking the mailbox idle.
func (m *mailbox) take() (msg any, sys bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sys) > 0 {
		msg = m.sys[0]
		m.sys[0] = nil
		if m.sys = m.sys[1:]; len(m.sys) == 0 {
			m.sys = nil
		}
		return msg, true
	}
	if m.suspended || m.user.n == 0 {
		m.scheduled = false
		return nil, false
	}
	return m.user.pop(), false
}

func (m *mailbox) setSuspended(s bool) {
	m.mu.Lock()
	m.suspended = s
	m.mu.Unlock()
}

// ring is a FIFO queue in a circular buffer that doubles when full.
type ring struct {
	buf  []any // len is a power of two, or 0
	head int   // index of the oldest message
	n    int
}

func (r *ring) push(v any) {
	if r.n == len(r.buf) {
		grown := make([]any, max(2*len(r.buf), 2))
		for i := range r.n {
			grown[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

func (r *ring) pop() any {
	v := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}
