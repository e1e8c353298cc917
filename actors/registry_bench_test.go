package actors

import (
	"strconv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// BenchmarkSweep walks a registry holding 1,000,000 snapshots and no live
// actor: askIdle, which runs every half idle period, visits only live
// actors; dropSnapshots, every eighth of the keep time, visits them all.
func BenchmarkSweep(b *testing.B) {
	r := newRegistry(actor.NewActorSystem().Root, nil, time.Hour, time.Hour)
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
