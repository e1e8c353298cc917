package actors

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestPackedCounters(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	maps := []map[string]int64{
		nil,
		{},
		{"": 0},
		{"min": math.MinInt64, "max": math.MaxInt64, "zero": 0, "minus one": -1},
		{string(make([]byte, 128)): 1, "ключ": -42, "😀": 7},
	}
	for range 500 {
		m := map[string]int64{}
		for range rng.IntN(21) {
			m[fmt.Sprintf("k%d", rng.IntN(1_000_000))] = int64(rng.Uint64())
		}
		maps = append(maps, m)
	}
	for _, m := range maps {
		p := pack(m)
		if p.len() != len(m) || cap(p) != len(p) {
			t.Fatalf("pack(%v): %d counters in %d bytes of capacity %d", m, p.len(), len(p), cap(p))
		}
		if got := p.unpack(); !cmp.Equal(m, got, cmpopts.EquateEmpty()) {
			t.Fatalf("unpack(pack(%v)) = %v", m, got)
		}
	}
}

// BenchmarkPack packs and unpacks a group of five counters, as a group
// actor does when it stops and when it starts again from its snapshot.
func BenchmarkPack(b *testing.B) {
	m := map[string]int64{"likes": 1_234, "online": 56, "unread": 7, "gifts": 89, "shares": 10}
	b.ReportAllocs()
	for b.Loop() {
		if got := pack(m).unpack(); len(got) != len(m) {
			b.Fatal(got)
		}
	}
}
