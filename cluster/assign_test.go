package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tallyhq/tally/cluster"
)

func TestAssign(t *testing.T) {
	three := [][]string{{"s1", "s2", "s3"}, {"s1", "s2", "s3"}, {"s1", "s2", "s3"}}
	// Five R3 streams on five servers, three replicas on each server, as
	// the meta leader places them.
	five := [][]string{{"s1", "s2", "s3"}, {"s2", "s3", "s4"}, {"s3", "s4", "s5"}, {"s4", "s5", "s1"}, {"s5", "s1", "s2"}}
	on := func(n int) []cluster.Candidate {
		var ms []cluster.Candidate
		for i := 1; i <= n; i++ {
			ms = append(ms, cluster.Candidate{Name: fmt.Sprintf("n%d", i), Server: fmt.Sprintf("s%d", i)})
		}
		return ms
	}
	tests := []struct {
		name    string
		peers   [][]string
		members []cluster.Candidate
		loads   []int // shards per member, sorted, most first
		onPeer  bool  // every owner's server is a peer of its shard
	}{
		{"three members, three shards", three, on(3), []int{1, 1, 1}, true},
		{"five members, five shards", five, on(5), []int{1, 1, 1, 1, 1}, true},
		{"two survivors of three", three, on(2), []int{2, 1}, true},
		{"one member", three, on(1), []int{3}, true},
		{"two members on one server", three, []cluster.Candidate{{"a", "s1"}, {"b", "s1"}, {"c", "s2"}}, []int{1, 1, 1}, true},
		{"four survivors of five", five, on(4), []int{2, 1, 1, 1}, true},
		{"members on no peer", three, []cluster.Candidate{{"a", "x"}, {"b", "y"}}, nil, false},
		{"a member of an older version", three, []cluster.Candidate{{"n1", "s1"}, {"n2", ""}}, []int{3}, true},
		{"six shards on three", append(three, three...), on(3), []int{2, 2, 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cluster.Assign(tt.peers, tt.members)
			if len(got) != len(tt.peers) {
				t.Fatalf("Assign() = %v: %d owners, want %d", got, len(got), len(tt.peers))
			}
			servers := map[string]string{}
			for _, m := range tt.members {
				servers[m.Name] = m.Server
			}
			load := map[string]int{}
			for s, o := range got {
				if _, ok := servers[o]; !ok {
					t.Fatalf("Assign() = %v: shard %d's owner %q is no member", got, s, o)
				}
				load[o]++
				if tt.onPeer && !slices.Contains(tt.peers[s], servers[o]) {
					t.Errorf("Assign() = %v: shard %d's owner %s is on %s, not a peer of %v", got, s, o, servers[o], tt.peers[s])
				}
			}
			if tt.loads != nil {
				var loads []int
				for _, n := range load {
					loads = append(loads, n)
				}
				slices.Sort(loads)
				slices.Reverse(loads)
				if !slices.Equal(loads, tt.loads) {
					t.Errorf("Assign() = %v: loads %v, want %v", got, loads, tt.loads)
				}
			}
			// Any order of the members gives the same owners.
			for range 10 {
				shuffled := slices.Clone(tt.members)
				rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				if again := cluster.Assign(tt.peers, shuffled); !slices.Equal(again, got) {
					t.Fatalf("Assign(%v) = %v, but %v for %v", shuffled, again, got, tt.members)
				}
			}
		})
	}
	t.Run("without peers, rendezvous over all", func(t *testing.T) {
		members := []cluster.Candidate{{"a", "x"}, {"b", "y"}, {"c", "z"}}
		got := cluster.Assign([][]string{nil, nil, nil, nil}, members)
		for s, o := range got {
			if want := cluster.Owner([]string{"a", "b", "c"}, s); o != want {
				t.Errorf("shard %d: owner %s, want %s", s, o, want)
			}
		}
	})
	// A member that leaves hands its own shards over, and others move
	// little: none of three, at most two of five.
	for _, tt := range []struct {
		peers  [][]string
		n      int
		others int
	}{{three, 3, 0}, {five, 5, 2}} {
		all := on(tt.n)
		before := cluster.Assign(tt.peers, all)
		for i, gone := range all {
			after := cluster.Assign(tt.peers, slices.Delete(slices.Clone(all), i, i+1))
			moved := 0
			for s := range before {
				if before[s] != gone.Name && after[s] != before[s] {
					moved++
				}
			}
			if moved > tt.others {
				t.Errorf("%d members, %s leaves: owners %v then %v, %d shards of others moved, want at most %d", tt.n, gone.Name, before, after, moved, tt.others)
			}
		}
	}
	if got := cluster.Assign(three, nil); !slices.Equal(got, []string{"", "", ""}) {
		t.Errorf("Assign(no members) = %q, want no owners", got)
	}
}
