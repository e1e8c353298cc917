package actors

import (
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// BenchmarkSweep walks a registry holding 1,000,000 snapshots and no live
// actor: askIdle, which runs every half idle period, visits only live
// actors; dropSnapshots, every eighth of the keep time, visits them all.
func BenchmarkSweep(b *testing.B) {
	r := newRegistry(quietSystem().Root, nil, false, time.Hour, time.Hour)
	defer r.stopAll()
	now := time.Now().UnixNano()
	for i := range 1_000_000 {
		name := "g" + strconv.Itoa(i)
		e := &entry{snap: &snapshot{}}
		e.last.Store(now)
		r.shard(name).entries[name] = e
	}
	b.Run("askIdle", func(b *testing.B) {
		for b.Loop() {
			r.askIdle(now)
		}
	})
	b.Run("dropSnapshots", func(b *testing.B) {
		for b.Loop() {
			r.dropSnapshots(now)
		}
	})
}

// hopActor counts the messages it gets, standing in for a
// group to measure what one actor hop costs.
type hopActor struct{ done *sync.WaitGroup }

func (h *hopActor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*pending); ok {
		h.done.Done()
	}
}

// BenchmarkHop posts messages through a registry to actors that do
// nothing, round robin over names: the cost of one actor hop of a call,
// activation aside (every actor is live before the timer starts), with
// tally's mailbox and with protoactor's lock-free one.
func BenchmarkHop(b *testing.B) {
	mailboxes := []struct {
		name string
		make actor.MailboxProducer
	}{{"mailbox", newMailbox}, {"lockfree", actor.UnboundedLockfree()}}
	for _, mb := range mailboxes {
		for _, names := range []int{1, 20_000} {
			b.Run(mb.name+"/"+strconv.Itoa(names), func(b *testing.B) {
				var done sync.WaitGroup
				p := newPool(300)
				defer p.stop()
				props := actor.PropsFromProducer(func() actor.Actor { return &hopActor{done: &done} },
					actor.WithDispatcher(p), actor.WithMailbox(mb.make))
				r := newRegistry(quietSystem().Root, props, mb.name == "mailbox", time.Hour, 0)
				defer r.stopAll()
				ids := make([]string, names)
				for i := range ids {
					ids[i] = "u" + strconv.Itoa(i)
				}
				c := &pending{}
				done.Add(names)
				for _, id := range ids {
					r.send(id, c)
				}
				done.Wait()
				b.ReportAllocs()
				b.ResetTimer()
				done.Add(b.N)
				for i := range b.N {
					r.send(ids[i%names], c)
				}
				done.Wait()
			})
		}
	}
}

// quietSystem is an actor system that logs nothing, so that benchmark
// lines stay readable.
func quietSystem() *actor.ActorSystem {
	return actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }),
	))
}
