package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

func start(t *testing.T, s *server.Server, name string) *cluster.Cluster {
	t.Helper()
	nc := journaltest.Connect(t, s)
	cfg := cluster.DefaultConfig()
	cfg.Name = name
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, journaltest.JetStream(t, nc), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Stop(ctx)
	})
	return c
}

// holders counts, for every partition, the members that hold it now.
func holders(members ...*cluster.Cluster) []int {
	out := make([]int, cluster.DefaultConfig().Partitions)
	for p := range out {
		for _, m := range members {
			if _, _, ok := m.Lease(p); ok {
				out[p]++
			}
		}
	}
	return out
}

// settled reports an error until every partition has exactly one holder.
func settled(members ...*cluster.Cluster) error {
	for p, n := range holders(members...) {
		if n != 1 {
			return fmt.Errorf("partition %d has %d holders", p, n)
		}
	}
	return nil
}

// heldBy reports an error until every partition is held by the member
// cluster.Owner picks among members.
func heldBy(members ...*cluster.Cluster) error {
	var names []string
	for _, m := range members {
		names = append(names, m.Name())
	}
	for p := range cluster.DefaultConfig().Partitions {
		want := cluster.Owner(names, p)
		for _, m := range members {
			if _, _, ok := m.Lease(p); ok != (m.Name() == want) {
				return fmt.Errorf("partition %d: %s holds it: %v; cluster.Owner says %s", p, m.Name(), ok, want)
			}
		}
	}
	return nil
}

// TestPartitionsSpreadAndMove starts three members on one server: every
// partition gets exactly one holder, the one cluster.Owner names, each
// member a share; when one leaves, the other two hold everything, and
// never does a partition have two holders on the way.
func TestPartitionsSpreadAndMove(t *testing.T) {
	s := journaltest.StartServer(t)
	a, b, c := start(t, s, "a"), start(t, s, "b"), start(t, s, "c")
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, n := range holders(a, b, c) {
			if n > 1 {
				t.Fatalf("a partition has %d holders", n)
			}
		}
		if err := settled(a, b, c); err != nil {
			return err
		}
		if err := heldBy(a, b, c); err != nil {
			return err
		}
		for _, m := range []*cluster.Cluster{a, b, c} {
			if m.Owned() < 10 {
				return fmt.Errorf("%s holds %d of 64", m.Name(), m.Owned())
			}
		}
		return nil
	})
	t.Logf("held: a %d, b %d, c %d", a.Owned(), b.Owned(), c.Owned())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Owned() != 0 {
		t.Errorf("c holds %d partitions after Stop", c.Owned())
	}
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, n := range holders(a, b) {
			if n > 1 {
				t.Fatalf("a partition has %d holders", n)
			}
		}
		if err := settled(a, b); err != nil {
			return err
		}
		return heldBy(a, b)
	})
}

// TestPlaceRoutesToTheHolder checks that every member places a partition
// on its holder: here for the holder itself, the holder's inbox for the
// others.
func TestPlaceRoutesToTheHolder(t *testing.T) {
	s := journaltest.StartServer(t)
	members := []*cluster.Cluster{start(t, s, "a"), start(t, s, "b")}
	// Settled and handed over: a holder that is still handing a partition
	// over (b joined after a took them all) forwards its calls to the new
	// owner, rightly.
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := settled(members...); err != nil {
			return err
		}
		return heldBy(members...)
	})
	for p := range cluster.DefaultConfig().Partitions {
		var holder *cluster.Cluster
		for _, m := range members {
			if _, _, ok := m.Lease(p); ok {
				holder = m
			}
		}
		for _, m := range members {
			got := make(chan string, 1)
			m.Place(p, func(inbox string, err error) {
				if err != nil {
					t.Errorf("%s: Place(%d) = %v", m.Name(), p, err)
				}
				got <- inbox
			})
			inbox := <-got
			switch {
			case m == holder && inbox != "":
				t.Errorf("%s holds %d but places it on %s", m.Name(), p, inbox)
			case m == holder:
				m.Exit(p)
			case inbox != holder.Inbox():
				t.Errorf("%s places %d on %q, want its holder %s (%s)", m.Name(), p, inbox, holder.Name(), holder.Inbox())
			}
		}
	}
}

// TestLeaseLapsesWithoutTheBucket cuts a member off from NATS: it stops
// holding its partitions by its own clock, and the other member takes them
// once the leases expire in the bucket.
func TestLeaseLapsesWithoutTheBucket(t *testing.T) {
	s := journaltest.StartServer(t)
	a := start(t, s, "a")
	nc := journaltest.Connect(t, s)
	cfg := cluster.DefaultConfig()
	cfg.Name = "b"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := cluster.Start(ctx, journaltest.JetStream(t, nc), cfg)
	if err != nil {
		t.Fatal(err)
	}
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := settled(a, b); err != nil {
			return err
		}
		if b.Owned() == 0 {
			return fmt.Errorf("b holds nothing yet")
		}
		return nil
	})
	nc.Close() // b can renew nothing from now on
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for p := range cfg.Partitions {
			if _, _, ok := b.Lease(p); ok {
				return fmt.Errorf("b still holds partition %d", p)
			}
		}
		return nil
	})
	journaltest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for p, n := range holders(a, b) {
			if n > 1 {
				t.Fatalf("partition %d has two holders", p)
			}
		}
		return settled(a)
	})
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	b.Stop(sctx)
}

// TestForwardedCallsWaitForAHolder gives member a a peer, z, that is in
// its view (z's member record, kept fresh) but never takes the partitions
// it is chosen for. A call placed on one of them goes on to z, a guess;
// a call forwarded to a to be placed waits instead for a holder (another
// node guessed otherwise, and two guesses would pass it back and forth),
// and gets none within ParkFor; once z leaves, a takes the partition and
// the waiting call is served there.
func TestForwardedCallsWaitForAHolder(t *testing.T) {
	s := journaltest.StartServer(t)
	// b makes the buckets and takes every partition; z comes next, and b
	// hands z's partitions over to nobody; a joins last, and never holds
	// them.
	b := start(t, s, "b")
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := b.Owned(); n != cluster.DefaultConfig().Partitions {
			return fmt.Errorf("b holds %d partitions", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := journaltest.JetStream(t, journaltest.Connect(t, s))
	kv, err := js.KeyValue(ctx, cluster.DefaultConfig().MembersBucket)
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := proto.Marshal(&messages.Member{Name: "z", Inbox: "_INBOX.z", StartedUnixNano: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for {
			if _, err := kv.Put(ctx, "z", ghost); err != nil && ctx.Err() == nil {
				t.Errorf("z's heartbeat: %v", err)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	p := -1
	for q := range cluster.DefaultConfig().Partitions {
		if cluster.Owner([]string{"a", "b", "z"}, q) == "z" {
			p = q
			break
		}
	}
	if p < 0 {
		t.Fatal("z is chosen for no partition")
	}
	a := start(t, s, "a")
	type placed struct {
		inbox string
		err   error
	}
	place := func(placer func(int, func(string, error))) placed {
		got := make(chan placed, 1)
		placer(p, func(inbox string, err error) { got <- placed{inbox, err} })
		return <-got
	}
	// Until a sees b's lease of p go, it places p on b.
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if r := place(a.Place); r.inbox != "_INBOX.z" || r.err != nil {
			return fmt.Errorf("a places %d on %q (%v), want z's guess", p, r.inbox, r.err)
		}
		return nil
	})
	if r := place(a.PlaceForwarded); !errors.Is(r.err, cluster.ErrNoOwner) {
		t.Errorf("a places a forwarded call on %d on %q (%v), want it kept until ParkFor and then ErrNoOwner", p, r.inbox, r.err)
	}

	waiting := make(chan placed, 1)
	a.PlaceForwarded(p, func(inbox string, err error) { waiting <- placed{inbox, err} })
	close(stop)
	<-beating
	if err := kv.Delete(ctx, "z"); err != nil {
		t.Fatal(err)
	}
	r := <-waiting
	switch holder := cluster.Owner([]string{"a", "b"}, p); {
	case r.err != nil:
		t.Errorf("once z left, the waiting call got %v, want it placed on %s", r.err, holder)
	case holder == "a" && r.inbox != "":
		t.Errorf("once z left, the waiting call was placed on %q, want here", r.inbox)
	case holder == "a":
		a.Exit(p)
	case r.inbox != b.Inbox():
		t.Errorf("once z left, the waiting call was placed on %q, want b's %s", r.inbox, b.Inbox())
	}
}
