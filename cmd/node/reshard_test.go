package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/audit"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal/journaltest"
)

// TestReshardTool writes through a node on a journal of one stream, as
// users, the admin and with retries, reshards its data directory to three
// shards, and starts it again: it serves from the shards, every group as
// it was (counters, seq, members), and a write retried with its request ID
// gets its first outcome without being applied again. A reshard is refused
// while the node runs.
func TestReshardTool(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "--data", dir, "--listen", "127.0.0.1:0", "--journal-shards", "1")
	logged(t, p, "TALLY_JOURNAL (tally.journal.<group>, R1)")
	ctx := context.Background()
	nc := journaltest.ConnectURL(t, p.url)
	alice, err := client.New(nc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.NewAdmin(nc)
	if err != nil {
		t.Fatal(err)
	}
	// One user per room: a user makes at most 20 writes in 5 seconds.
	users := map[string]*client.Client{}
	groups := []string{"club"}
	events := 0
	for i := range 8 {
		g := fmt.Sprintf("room%d", i)
		groups = append(groups, g)
		u, err := client.New(nc, fmt.Sprintf("u%d", i))
		if err != nil {
			t.Fatal(err)
		}
		users[g] = u
		if _, err := u.SetGroupCounters(ctx, g, map[string]int64{"likes": int64(i), "stars": 1}, client.WithRequestID(g+"-set")); err != nil {
			t.Fatal(err)
		}
		for r := range 3 {
			if _, err := u.IncreaseGroupCounter(ctx, g, "likes", 2, client.WithRequestID(fmt.Sprintf("%s-inc%d", g, r))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := admin.DecreaseGroupCounter(ctx, g, "stars", 1); err != nil {
			t.Fatal(err)
		}
		events += 5
	}
	// A retry before the restart changes nothing.
	first, err := users["room3"].IncreaseGroupCounter(ctx, "room3", "likes", 2, client.WithRequestID("room3-inc2"))
	if err != nil || first != 3+3*2 {
		t.Fatalf("retry of room3-inc2 = %d, %v; want %d", first, err, 3+3*2)
	}
	if _, err := admin.AddGroupMembers(ctx, "club", []string{"alice", "bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	for r := range 3 {
		if _, err := alice.IncreaseGroupCounter(ctx, "club", "n", 1, client.WithRequestID(fmt.Sprintf("club-%d", r))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.RemoveGroupMembers(ctx, "club", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.IncreaseGroupCounter(ctx, "club", "n", 1, client.WithRequestID("club-last")); err != nil {
		t.Fatal(err)
	}
	events += 6
	before := snapshots(t, admin, groups)

	if _, errOut, code := tool(t, "", "reshard", "--shards", "3", "--data", dir); code == 0 || !strings.Contains(errOut, "in use by process") {
		t.Errorf("reshard while the node runs exited %d: %s; want a refusal naming the data directory's lock", code, errOut)
	}
	stop(t, p)

	history, errOut, code := tool(t, "", "history", "room3", "--json", "--data", dir)
	if code != 0 {
		t.Fatalf("history exited %d: %s", code, errOut)
	}
	out, errOut, code := tool(t, "", "reshard", "--shards", "3", "--data", dir, "--json", "--keep-old")
	if code != 0 {
		t.Fatalf("reshard exited %d: %s%s", code, out, errOut)
	}
	sum := jsonLines[reshardSummary](t, out)
	if len(sum) != 1 || sum[0].Groups != len(groups) || sum[0].Events != events || sum[0].Copied != events || sum[0].Skipped != 0 || !sum[0].OldKept {
		t.Errorf("reshard printed %s; want %d groups, %d events, all copied, the old stream kept", out, len(groups), events)
	}
	// The tools read both: the shards, renumbered, and with --old the
	// stream kept, as it was.
	renumbered := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".StreamSeq" }, cmp.Ignore())
	for _, old := range []string{"--old=false", "--old"} {
		out, errOut, code := tool(t, "", "history", "room3", "--json", "--data", dir, old)
		var opts []cmp.Option
		if old != "--old" {
			opts = append(opts, renumbered)
			if out == history {
				t.Errorf("history room3 from the shards has the old stream's sequences:\n%s", out)
			}
		}
		if diff := cmp.Diff(jsonLines[audit.Entry](t, history), jsonLines[audit.Entry](t, out), opts...); code != 0 || diff != "" {
			t.Errorf("history room3 %s after the reshard exited %d (%s), differs (-before +after):\n%s", old, code, errOut, diff)
		}
		want := fmt.Sprintf("%d groups, %d events, 0 bad", len(groups), events)
		if out, errOut, code := tool(t, "", "verify", "--data", dir, old); code != 0 || !strings.Contains(out, want) {
			t.Errorf("verify %s after the reshard exited %d: %s%s; want %s", old, code, out, errOut, want)
		}
	}
	if _, errOut, code := tool(t, "", "reshard", "--shards", "3", "--data", dir); code != 1 || !strings.Contains(errOut, "shard streams already") {
		t.Errorf("reshard of a resharded journal exited %d: %s; want 1 and a refusal", code, errOut)
	}

	p = startProc(t, "--data", dir, "--listen", "127.0.0.1:0")
	logged(t, p, "TALLY_JOURNAL_0..2 (tally.journal.<shard>.<group>, 3 shards, R1)")
	nc = journaltest.ConnectURL(t, p.url)
	if alice, err = client.New(nc, "alice"); err != nil {
		t.Fatal(err)
	}
	u3, err := client.New(nc, "u3")
	if err != nil {
		t.Fatal(err)
	}
	if admin, err = client.NewAdmin(nc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshots(t, admin, groups)); diff != "" {
		t.Errorf("groups after the reshard (-before +after):\n%s", diff)
	}
	if again, err := u3.IncreaseGroupCounter(ctx, "room3", "likes", 2, client.WithRequestID("room3-inc2")); err != nil || again != first {
		t.Errorf("retry of room3-inc2 after the reshard = %d, %v; want its first outcome %d", again, err, first)
	}
	if diff := cmp.Diff(before["room3"], snapshots(t, admin, []string{"room3"})["room3"]); diff != "" {
		t.Errorf("room3 after the retry (-before +after):\n%s", diff)
	}
	members, _, err := admin.ListGroupMembers(ctx, "club", "", 0)
	if err != nil || !cmp.Equal(members, []string{"alice", "carol"}) {
		t.Errorf("club's members after the reshard = %v, %v; want [alice carol]", members, err)
	}
	if v, err := alice.IncreaseGroupCounter(ctx, "club", "n", 1); err != nil || v != before["club"].Counters["n"]+1 {
		t.Errorf("a member's increase of club after the reshard = %d, %v; want %d", v, err, before["club"].Counters["n"]+1)
	}
}

// TestReshardToolGoesOnAfterAKill kills a reshard as it copies, and runs
// it again: it copies the rest, no event twice, and a node serves every
// group as it was.
func TestReshardToolGoesOnAfterAKill(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "--data", dir, "--listen", "127.0.0.1:0", "--journal-shards", "1")
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, p.url))
	if err != nil {
		t.Fatal(err)
	}
	// Enough events that the copy takes a while: few writes of one group
	// share an event.
	const groups = 4000
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range 1000 {
				if _, err := admin.IncreaseGroupCounter(context.Background(), fmt.Sprintf("g%d", (w*1000+i)%groups), "n", 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var names []string
	for i := range groups {
		names = append(names, fmt.Sprintf("g%d", i))
	}
	before := snapshots(t, admin, names)
	stop(t, p)

	r := launch(t, "journal", "reshard", "--shards", "3", "--data", dir, "--progress")
	copying := regexp.MustCompile(`\([1-9][0-9]*/[0-9]+, `) // a progress bar past its first event
	journaltest.CheckFor(t, 60*time.Second, time.Millisecond, func() error {
		if !copying.MatchString(r.stderr.String()) {
			return errors.New("no event copied yet")
		}
		return nil
	})
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code == 0 {
		t.Fatalf("the reshard finished before it was killed: write more events\n%s", r.stderr)
	}
	out, errOut, code := tool(t, "", "reshard", "--shards", "3", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("reshard after a kill exited %d: %s%s", code, out, errOut)
	}
	sum := jsonLines[reshardSummary](t, out)
	if len(sum) != 1 || sum[0].Groups != groups || sum[0].Skipped == 0 || sum[0].Copied == 0 || sum[0].Copied+sum[0].Skipped != sum[0].Events {
		t.Errorf("reshard after a kill printed %s; want %d groups, some events copied before, the rest now", out, groups)
	}
	if out, errOut, code := tool(t, "", "verify", "--data", dir); code != 0 || !strings.Contains(out, fmt.Sprintf("%d groups, %d events, 0 bad", groups, sum[0].Events)) {
		t.Errorf("verify after the reshard exited %d: %s%s", code, out, errOut)
	}
	p = startProc(t, "--data", dir, "--listen", "127.0.0.1:0")
	if admin, err = client.NewAdmin(journaltest.ConnectURL(t, p.url)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshots(t, admin, names)); diff != "" {
		t.Errorf("groups after the reshard (-before +after):\n%s", diff)
	}
}

// TestReshardRefusesRunningNodes: through --nats-url, a reshard is refused
// while the cluster's members bucket holds a node's record, and while a
// node answers the service's discovery; the journal is left as it was.
func TestReshardRefusesRunningNodes(t *testing.T) {
	listen, conf := opsConfig(t)
	startProc(t, "--data", t.TempDir(), "--nats-config", conf)
	ctx := context.Background()
	js := journaltest.JetStream(t, journaltest.ConnectURL(t, "nats://ops:ops@"+listen))
	// A member's record, as a cluster node keeps it alive; longer lived
	// than a node's, so that it outlasts the tool's start.
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: cluster.DefaultConfig().MembersBucket, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "n2", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := tool(t, "", "reshard", "--shards", "3", "--nats-url=nats://ops:ops@"+listen)
	if code != 1 || !strings.Contains(errOut, "nodes are running: n2") {
		t.Errorf("reshard with a live member exited %d: %s; want 1 and the member named", code, errOut)
	}
	if err := kv.Delete(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = tool(t, "", "reshard", "--shards", "3", "--nats-url=nats://ops:ops@"+listen)
	if code != 1 || !strings.Contains(errOut, "nodes are running: node") || !strings.Contains(errOut, "$SRV.INFO.tally") {
		t.Errorf("reshard with a node serving exited %d: %s; want 1 and the node named", code, errOut)
	}
	st, err := js.Stream(ctx, "TALLY_JOURNAL")
	if err != nil || st.CachedInfo().Config.Sealed {
		t.Errorf("the journal's stream after a refused reshard: %v, sealed %v; want it open", err, err == nil && st.CachedInfo().Config.Sealed)
	}
}

// snapshots reads the groups' counters and seqs.
func snapshots(t *testing.T, a *client.Admin, groups []string) map[string]client.Snapshot {
	t.Helper()
	out := map[string]client.Snapshot{}
	for _, g := range groups {
		s, err := a.GetGroupSnapshot(context.Background(), g)
		if err != nil {
			t.Fatalf("get %s: %v", g, err)
		}
		out[g] = s
	}
	return out
}
