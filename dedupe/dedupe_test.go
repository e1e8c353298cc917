package dedupe_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tallyhq/tally/dedupe"
)

// TestAgainstAMap runs random puts, gets and expiries against a map that
// does the same, the entries' expiries growing with time as a node's do.
func TestAgainstAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tab := dedupe.New()
	type want struct {
		o       dedupe.Outcome
		expires int64
	}
	model := map[string]want{}
	now := int64(1_000)
	const window = 500
	for step := range 200_000 {
		now += int64(r.IntN(3))
		id := fmt.Sprintf("r%d", r.IntN(5_000))
		k := tab.Key("g", "u", id)
		switch r.IntN(3) {
		case 0:
			o := dedupe.Outcome{Fingerprint: r.Uint64(), Seq: uint64(step), Value: r.Int64()}
			if r.IntN(4) == 0 {
				o.Users = []string{id, "u"}
			}
			tab.Put(k, o, now+window, now)
			model[id] = want{o, now + window}
		default:
			got, ok := tab.Get(k, now)
			w, wok := model[id]
			wok = wok && w.expires > now
			if ok != wok || ok && !cmp.Equal(got, w.o) {
				t.Fatalf("step %d: Get(%s) = %v, %v; want %v, %v", step, id, got, ok, w.o, wok)
			}
		}
	}
	// Every entry expires.
	tab.Expire(now + window + 1)
	if n := tab.Len(); n != 0 {
		t.Errorf("%d entries after all expired", n)
	}
}

// TestKeysAreApart checks that one request ID in two groups, or of two
// users, is two keys.
func TestKeysAreApart(t *testing.T) {
	tab := dedupe.New()
	tab.Put(tab.Key("g1", "alice", "r"), dedupe.Outcome{Value: 1}, 100, 0)
	for _, k := range []struct{ group, user, id string }{
		{"g2", "alice", "r"},
		{"g1", "bob", "r"},
		{"g1", "", "r"}, // the admin subjects' user
		{"g", "1alice", "r"},
		{"g1", "alic", "er"},
	} {
		if _, ok := tab.Get(tab.Key(k.group, k.user, k.id), 0); ok {
			t.Errorf("%q found after a put of (g1, alice, r)", k)
		}
	}
	if o, ok := tab.Get(tab.Key("g1", "alice", "r"), 99); !ok || o.Value != 1 {
		t.Errorf("g1's r = %v, %v", o, ok)
	}
	if _, ok := tab.Get(tab.Key("g1", "alice", "r"), 100); ok {
		t.Error("g1's r found at its expiry")
	}
}

// TestSize checks the table's own accounting at a million request IDs:
// at most 64 bytes each. BenchmarkMemory measures the heap.
func TestSize(t *testing.T) {
	tab := fill(1_000_000)
	if per := float64(tab.Bytes()) / 1e6; per > 64 {
		t.Errorf("%.1f bytes per request ID, want at most 64", per)
	}
}

func fill(n int) *dedupe.Table {
	tab := dedupe.New()
	for i := range n {
		tab.Put(tab.Key(fmt.Sprintf("g%d", i%10_000), "u", fmt.Sprintf("%020d", i)), dedupe.Outcome{Seq: uint64(i)}, 1<<62, 0)
	}
	return tab
}

// BenchmarkMemory reports the heap a table of a million request IDs
// takes, per ID.
func BenchmarkMemory(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tab := fill(1_000_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "bytes/ID")
		b.ReportMetric(float64(tab.Bytes())/1e6, "table-bytes/ID")
		runtime.KeepAlive(tab)
	}
}

func BenchmarkPutGet(b *testing.B) {
	tab := dedupe.New()
	keys := make([]dedupe.Key, 1<<16)
	for i := range keys {
		keys[i] = tab.Key("group", "u", fmt.Sprintf("request-%d", i))
	}
	b.ResetTimer()
	for i := range b.N {
		k := keys[i&(len(keys)-1)]
		now := int64(i)
		tab.Put(k, dedupe.Outcome{Seq: uint64(i)}, now+50_000, now)
		tab.Get(k, now)
	}
}

// TestEarlierExpiryBehindLater puts an entry that expires before one put
// ahead of it (as a request ID read back from the journal can): it is not
// found past its own expiry, though the ring has not reached it.
func TestEarlierExpiryBehindLater(t *testing.T) {
	tab := dedupe.New()
	first, second := tab.Key("g", "u", "late"), tab.Key("g", "u", "early")
	tab.Put(first, dedupe.Outcome{Value: 1}, 200, 0)
	tab.Put(second, dedupe.Outcome{Value: 2}, 100, 0)
	if _, ok := tab.Get(second, 150); ok {
		t.Error("an entry found past its expiry")
	}
	if o, ok := tab.Get(first, 150); !ok || o.Value != 1 {
		t.Errorf("the entry before it = %v, %v; want it found", o, ok)
	}
}
