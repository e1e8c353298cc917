package signin

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRemote checks the connections known on an external server: a
// user's are kicked once, a refused one is not, and those whose grants
// expired are forgotten.
func TestRemote(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := newRemote()
	r.add("alice", remoteConn{"S1", 1}, now.Add(time.Hour))
	r.add("alice", remoteConn{"S2", 1}, now.Add(time.Minute))
	r.add("alice", remoteConn{"S1", 2}, now.Add(time.Hour))
	r.forget("alice", remoteConn{"S1", 2})
	r.add("bob", remoteConn{"S1", 3}, now.Add(time.Minute))
	var kicked []remoteConn
	kick := func(_ context.Context, server string, id uint64) error {
		kicked = append(kicked, remoteConn{server, id})
		if server == "S2" {
			return errors.New("gone")
		}
		return nil
	}
	if n := r.close(context.Background(), kick, "alice"); n != 1 {
		t.Errorf("alice's connections closed: %d, want 1 (S2's was gone)", n)
	}
	slices.SortFunc(kicked, func(a, b remoteConn) int { return cmp.Or(strings.Compare(a.server, b.server), cmp.Compare(a.id, b.id)) })
	if want := []remoteConn{{"S1", 1}, {"S2", 1}}; !slices.Equal(kicked, want) {
		t.Errorf("kicked %v, want %v", kicked, want)
	}
	kicked = nil
	if n := r.close(context.Background(), kick, "alice"); n != 0 || len(kicked) != 0 {
		t.Errorf("alice's connections closed again: %d (kicked %v), want none", n, kicked)
	}
	r.sweep(now.Add(time.Minute))
	if n := r.close(context.Background(), kick, "bob"); n != 0 || len(kicked) != 0 {
		t.Errorf("bob's connection after its grant expired: %d closed (kicked %v), want none", n, kicked)
	}
}
