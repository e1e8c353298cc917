package actors

import (
	"runtime"
	"sync"
)

// pool is a protoactor dispatcher that runs mailboxes on long-lived
// goroutines. protoactor's default starts a goroutine each time a mailbox
// gets work; on a busy node those fresh goroutines spend about a tenth of
// the CPU growing their stacks. Actors here never block, so a few workers
// per core suffice; when all are busy, work falls back to a new goroutine.
type pool struct {
	work       chan func()
	done       chan struct{}
	wg         sync.WaitGroup
	throughput int
}

func newPool(throughput int) *pool {
	p := &pool{work: make(chan func(), 4096), done: make(chan struct{}), throughput: throughput}
	for range 4 * runtime.GOMAXPROCS(0) {
		p.wg.Go(p.run)
	}
	return p
}

func (p *pool) run() {
	for {
		select {
		case fn := <-p.work:
			fn()
		case <-p.done:
			return
		}
	}
}

// Schedule runs fn on a worker, or on a goroutine of its own when every
// worker is busy and the queue is full, or the pool is stopped.
func (p *pool) Schedule(fn func()) {
	select {
	case <-p.done:
		go fn()
		return
	default:
	}
	select {
	case p.work <- fn:
	default:
		go fn()
	}
}

// Throughput is how many messages a mailbox processes before yielding.
func (p *pool) Throughput() int { return p.throughput }

// stop ends the workers once they finish what they run; work still queued
// runs on goroutines of its own.
func (p *pool) stop() {
	close(p.done)
	p.wg.Wait()
	for {
		select {
		case fn := <-p.work:
			go fn()
		default:
			return
		}
	}
}
