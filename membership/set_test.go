package membership_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tallyhq/tally/membership"
)

// TestSetAgainstMap runs random adds and removes on a Set and on a map and
// compares them after each step: membership, order, pages, digest.
func TestSetAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s membership.Set
	want := map[string]bool{}
	id := func() string { return fmt.Sprintf("u%d", r.IntN(3000)) }
	for step := range 400 {
		ids := make([]string, 1+r.IntN(100))
		for i := range ids {
			ids[i] = id()
		}
		var got, exp []string
		if r.IntN(3) == 0 {
			got = s.Remove(ids)
			for _, u := range ids {
				if want[u] && !slices.Contains(exp, u) {
					exp = append(exp, u)
				}
				delete(want, u)
			}
		} else {
			got = s.Add(ids)
			for _, u := range ids {
				if !want[u] && !slices.Contains(exp, u) {
					exp = append(exp, u)
				}
				want[u] = true
			}
		}
		slices.Sort(exp)
		if diff := cmp.Diff(exp, got, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })); diff != "" {
			t.Fatalf("step %d: changed (-want +got):\n%s", step, diff)
		}
		all := make([]string, 0, len(want))
		for u := range want {
			all = append(all, u)
		}
		slices.Sort(all)
		if !slices.Equal(s.All(), all) {
			t.Fatalf("step %d: All() = %d members, want %d", step, s.Len(), len(all))
		}
		for range 20 {
			u := id()
			if s.Has(u) != want[u] {
				t.Fatalf("step %d: Has(%q) = %v, want %v", step, u, s.Has(u), want[u])
			}
		}
		if step%20 != 0 {
			continue
		}
		if s.Digest() != membership.DigestOf(all) {
			t.Fatalf("step %d: digest differs", step)
		}
		if !slices.Equal(membership.New(all).All(), all) || (len(all) > 0 && !membership.New(all).Has(all[len(all)/2])) {
			t.Fatalf("step %d: New(all) differs", step)
		}
	}
}

func TestSetList(t *testing.T) {
	s := membership.New([]string{"c", "a", "e", "b", "d", "a"})
	for _, tt := range []struct {
		name  string
		after string
		limit int
		want  []string
		more  bool
	}{
		{"first page", "", 2, []string{"a", "b"}, true},
		{"after a member", "b", 2, []string{"c", "d"}, true},
		{"after a non-member", "bb", 10, []string{"c", "d", "e"}, false},
		{"last page", "d", 1, []string{"e"}, false},
		{"past the end", "z", 5, []string{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, more := s.List(tt.after, tt.limit)
			if !slices.Equal(got, tt.want) || more != tt.more {
				t.Errorf("List(%q, %d) = %q, %v, want %q, %v", tt.after, tt.limit, got, more, tt.want, tt.more)
			}
		})
	}
}

// TestSetLarge adds 100,000 members 100 at a time, as the admin API does,
// and removes half of them, compacting the arena.
func TestSetLarge(t *testing.T) {
	var s membership.Set
	for i := 0; i < 100_000; i += 100 {
		ids := make([]string, 100)
		for j := range ids {
			ids[j] = fmt.Sprintf("user-%06d", i+j)
		}
		if n := len(s.Add(ids)); n != 100 {
			t.Fatalf("Add of 100 new members added %d", n)
		}
	}
	if s.Len() != 100_000 || !s.Has("user-099999") || s.Has("user-100000") {
		t.Fatalf("Len() = %d; Has(last) = %v", s.Len(), s.Has("user-099999"))
	}
	if b := s.Bytes(); b > 100_000*40 {
		t.Errorf("Bytes() = %d for 100,000 members of 11 bytes, want at most 40 a member", b)
	}
	for i := 0; i < 100_000; i += 200 {
		ids := make([]string, 100)
		for j := range ids {
			ids[j] = fmt.Sprintf("user-%06d", i+2*j)
		}
		if n := len(s.Remove(ids)); n != 100 {
			t.Fatalf("Remove of 100 members removed %d", n)
		}
	}
	if s.Len() != 50_000 || s.Has("user-000000") || !s.Has("user-000001") {
		t.Fatalf("after removing the even: Len() = %d", s.Len())
	}
	page, more := s.List("user-050000", 3)
	if want := []string{"user-050001", "user-050003", "user-050005"}; !slices.Equal(page, want) || !more {
		t.Errorf("List = %q, %v, want %q, true", page, more, want)
	}
}

func BenchmarkHas(b *testing.B) {
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%06d", i)
	}
	s := membership.New(ids)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if !s.Has(ids[i%len(ids)]) {
			b.Fatal("member not found")
		}
	}
}
