package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplit(t *testing.T) {
	calls := func(groups ...string) []call {
		var cs []call
		for _, g := range groups {
			cs = append(cs, call{group: g})
		}
		return cs
	}
	groups := func(cs []call) []string {
		var gs []string
		for _, c := range cs {
			gs = append(gs, c.group)
		}
		return gs
	}
	for _, tc := range []struct {
		name              string
		queued            []string
		max               int
		onePerGroup       bool
		wantBatch, wantRe []string
	}{
		{name: "all", queued: []string{"a", "a", "b"}, max: 10, wantBatch: []string{"a", "a", "b"}},
		{name: "up to max", queued: []string{"a", "b", "c"}, max: 2, wantBatch: []string{"a", "b"}, wantRe: []string{"c"}},
		{name: "one per group", queued: []string{"a", "b", "a", "c", "b", "a"}, max: 10, onePerGroup: true,
			wantBatch: []string{"a", "b", "c"}, wantRe: []string{"a", "b", "a"}},
		{name: "one per group up to max", queued: []string{"a", "a", "b", "c"}, max: 2, onePerGroup: true,
			wantBatch: []string{"a", "b"}, wantRe: []string{"a", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch, rest := split(calls(tc.queued...), tc.max, tc.onePerGroup)
			if diff := cmp.Diff(tc.wantBatch, groups(batch)); diff != "" {
				t.Errorf("split(%v, %d, %t) batch (-want +got):\n%s", tc.queued, tc.max, tc.onePerGroup, diff)
			}
			if diff := cmp.Diff(tc.wantRe, groups(rest)); diff != "" {
				t.Errorf("split(%v, %d, %t) rest (-want +got):\n%s", tc.queued, tc.max, tc.onePerGroup, diff)
			}
		})
	}
}

func TestBatchEncoding(t *testing.T) {
	payloads := [][]byte{[]byte("a"), {}, make([]byte, 300)}
	got, err := decodeBatch(encodeBatch(payloads))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(payloads, got); diff != "" {
		t.Errorf("decodeBatch(encodeBatch(p)) (-want +got):\n%s", diff)
	}
	if _, err := decodeBatch([]byte{5, 'a'}); err == nil {
		t.Error("decodeBatch of a cut payload: no error")
	}
}
