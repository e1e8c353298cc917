package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal/journaltest"
)

// TestKillMembersLeader kills with SIGKILL the node whose server leads the
// cluster's members bucket, while clients connected to each of the two
// others write 24 groups through it. Until the bucket elects a new leader
// the survivors' heartbeats do not get through, and a call a survivor
// cannot place is answered 10002 saying that the bucket is electing a
// leader, never that the survivor is cut off from its cluster; once the
// bucket has a leader again, every group is written through both
// survivors.
func TestKillMembersLeader(t *testing.T) {
	c := startCluster(t, 3, true)
	bucket := "KV_" + cluster.DefaultConfig().MembersBucket
	var opsURLs []string
	for _, m := range c.members {
		opsURLs = append(opsURLs, "nats://ops:ops@"+strings.TrimPrefix(m.url, "nats://"))
	}
	ops, err := nats.Connect(strings.Join(opsURLs, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ops.Close)
	js := journaltest.JetStream(t, ops)
	var leader string
	journaltest.CheckFor(t, resumeWithin, 50*time.Millisecond, func() error {
		var err error
		leader, err = streamLeader(js, bucket)
		return err
	})
	var victim *member
	var survivors []*member
	for _, m := range c.members {
		if m.name == leader {
			victim = m
		} else {
			survivors = append(survivors, m)
		}
	}
	if victim == nil {
		t.Fatalf("%s is led by %q, no node of the cluster", bucket, leader)
	}

	var groups []string
	for i := range 24 {
		groups = append(groups, fmt.Sprintf("elect-%d", i))
	}
	var elected atomic.Int64 // unix nanos when the bucket had a new leader
	writers := make([]*electionWriter, len(survivors))
	for i, m := range survivors {
		nc, err := nats.Connect(m.url, nats.MaxReconnects(-1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		a, err := client.NewAdmin(nc, client.WithTimeout(time.Second), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		writers[i] = &electionWriter{node: m.name, admin: a}
	}
	for _, w := range writers {
		for _, g := range groups {
			if _, err := w.admin.IncreaseGroupCounter(context.Background(), g, "k", 1); err != nil {
				t.Fatalf("through %s before the kill: increase %s: %v", w.node, g, err)
			}
		}
	}

	killed := time.Now()
	if err := victim.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.p.done
	var wg sync.WaitGroup
	for _, w := range writers {
		for _, g := range groups {
			wg.Go(func() { w.writeUntil(g, &elected, killed.Add(2*resumeWithin)) })
		}
	}
	journaltest.CheckFor(t, resumeWithin, 50*time.Millisecond, func() error {
		got, err := streamLeader(js, bucket)
		if err == nil && got == victim.name {
			err = fmt.Errorf("%s is still led by the killed %s", bucket, got)
		}
		return err
	})
	elected.Store(time.Now().UnixNano())
	t.Logf("SIGKILL of %s, the leader of %s: a new leader within %v", victim.name, bucket, time.Since(killed).Round(time.Millisecond))
	wg.Wait()

	noLeader := 0
	for _, w := range writers {
		w.mu.Lock()
		if w.cutOff != "" {
			t.Errorf("through %s during the election: %s, want no word of being cut off", w.node, w.cutOff)
		}
		if w.late > 0 {
			t.Errorf("through %s: %d groups not written again within %v of the kill", w.node, w.late, 2*resumeWithin)
		}
		noLeader += w.noLeader
		t.Logf("through %s: writes failed from %v to %v after the kill: %d answered 10002 naming the election, %d otherwise 10002, %d timed out or failed otherwise",
			w.node, w.first.Sub(killed).Round(time.Millisecond), w.last.Sub(killed).Round(time.Millisecond), w.noLeader, w.internal, w.timeouts)
		w.mu.Unlock()
	}
	if noLeader == 0 {
		t.Errorf("no call through a survivor was answered %q", cluster.ErrNoLeader)
	}
}

// electionWriter writes groups through one node and records how its
// calls failed.
type electionWriter struct {
	node  string
	admin *client.Admin

	mu                           sync.Mutex
	first, last                  time.Time // of the failed calls
	noLeader, internal, timeouts int
	cutOff                       string // the first reply that says the node is cut off
	late                         int    // groups not written again by the deadline
}

// writeUntil increments group until a write that started after the time
// in elected succeeds, or deadline.
func (w *electionWriter) writeUntil(group string, elected *atomic.Int64, deadline time.Time) {
	for time.Now().Before(deadline) {
		start := time.Now()
		_, err := w.admin.IncreaseGroupCounter(context.Background(), group, "k", 1)
		if err == nil {
			if e := elected.Load(); e != 0 && start.UnixNano() > e {
				return
			}
			continue
		}
		w.mu.Lock()
		if w.first.IsZero() {
			w.first = start
		}
		w.last = time.Now()
		switch {
		case strings.Contains(err.Error(), cluster.ErrCutOff.Error()):
			if w.cutOff == "" {
				w.cutOff = err.Error()
			}
		case strings.Contains(err.Error(), cluster.ErrNoLeader.Error()):
			w.noLeader++
		case errors.Is(err, client.ErrInternal):
			w.internal++
		default:
			w.timeouts++
		}
		w.mu.Unlock()
		time.Sleep(10 * time.Millisecond) // a client's back-off
	}
	w.mu.Lock()
	w.late++
	w.mu.Unlock()
}

// streamLeader names the server that leads stream.
func streamLeader(js jetstream.JetStream, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("%s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}
