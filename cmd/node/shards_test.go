package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/audit"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node/nodetest"
)

// The fixtures were made by the version before the journal had shards:
// testdata/data-v1.tar.gz is a node's data directory (one stream,
// TALLY_JOURNAL) after 40 changes to 12 groups, testdata/export-v1.jsonl
// the export of that journal.

// oldExport reads testdata/export-v1.jsonl: its text, and each group's
// events in order.
func oldExport(t *testing.T) (string, map[string][]*messages.Event) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "export-v1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data), exportedEvents(t, string(data))
}

// exportedEvents decodes an export into each group's events, without the
// stream sequences they name (an import renumbers them).
func exportedEvents(t *testing.T, export string) map[string][]*messages.Event {
	t.Helper()
	groups := map[string][]*messages.Event{}
	for _, x := range jsonLines[audit.Exported](t, export) {
		var ev messages.Event
		if err := protojson.Unmarshal(x.Event, &ev); err != nil {
			t.Fatalf("event of %s at %d: %v", x.Group, x.StreamSeq, err)
		}
		ev.PrevSeq, ev.MembersSeq = 0, 0
		groups[x.Group] = append(groups[x.Group], &ev)
	}
	return groups
}

// checkCounters compares every group's counters, read through the node at
// url, with the last state of its events.
func checkCounters(t *testing.T, url string, groups map[string][]*messages.Event) {
	t.Helper()
	a, err := client.NewAdmin(journaltest.ConnectURL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	for g, evs := range groups {
		got, err := a.GetGroupCounters(context.Background(), g)
		if err != nil {
			t.Fatalf("get %s: %v", g, err)
		}
		if want := evs[len(evs)-1].GetState().GetCounters(); !cmp.Equal(got, want) {
			t.Errorf("%s = %v, want %v", g, got, want)
		}
	}
}

// TestImportOldExport imports the export of a one-stream journal into a
// new journal of three shards: each group lands in its shard's stream,
// renumbered, with its events otherwise as they were, and a node serves
// the groups' states.
func TestImportOldExport(t *testing.T) {
	export, want := oldExport(t)
	dir := t.TempDir()
	if out, errOut, code := tool(t, export, "import", "--data", dir, "--journal-shards", "3"); code != 0 {
		t.Fatalf("import exited %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := tool(t, "", "verify", "--data", dir); code != 0 || !strings.Contains(out, "12 groups, 40 events, 0 bad") {
		t.Errorf("verify exited %d: %s%s; want 12 groups, 40 events, 0 bad", code, out, errOut)
	}
	out, errOut, code := tool(t, "", "export", "--data", dir)
	if code != 0 {
		t.Fatalf("export exited %d: %s", code, errOut)
	}
	if diff := cmp.Diff(want, exportedEvents(t, out), protocmp.Transform()); diff != "" {
		t.Errorf("events after the import (-want +got):\n%s", diff)
	}
	p := startProc(t, "--data", dir, "--listen", "127.0.0.1:0")
	logged(t, p, "TALLY_JOURNAL_0..2 (tally.journal.<shard>.<group>, 3 shards, R1)")
	checkCounters(t, p.url, want)
}

// TestStartOnOldData starts a node, asked for three shards, on the data
// directory of a version before shards: it keeps the one stream it finds,
// serves every group from it, and appends to it.
func TestStartOnOldData(t *testing.T) {
	dir := t.TempDir()
	untar(t, filepath.Join("testdata", "data-v1.tar.gz"), dir)
	_, want := oldExport(t)
	p := startProc(t, "--data", dir, "--listen", "127.0.0.1:0", "--journal-shards", "3")
	logged(t, p, "TALLY_JOURNAL (tally.journal.<group>, R1)")
	checkCounters(t, p.url, want)
	a, err := client.NewAdmin(journaltest.ConnectURL(t, p.url))
	if err != nil {
		t.Fatal(err)
	}
	last := want["room0"][len(want["room0"])-1].GetState().GetCounters()["likes"]
	if v, err := a.IncreaseGroupCounter(context.Background(), "room0", "likes", 1); err != nil || v != last+1 {
		t.Errorf("increase room0 = %d, %v; want %d", v, err, last+1)
	}
	stop(t, p)
	out, errOut, code := tool(t, "", "history", "room0", "--json", "--data", dir)
	if code != 0 {
		t.Fatalf("history exited %d: %s", code, errOut)
	}
	if h := jsonLines[audit.Entry](t, out); len(h) != len(want["room0"])+1 || h[len(h)-1].StreamSeq != 41 {
		t.Errorf("room0's history after the increase: %s; want %d entries, the last at stream sequence 41 of the one stream", out, len(want["room0"])+1)
	}
}

// logged waits until the node's log has text.
func logged(t *testing.T, p *proc, text string) {
	t.Helper()
	journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(p.stderr.String(), text) {
			return fmt.Errorf("the node's log does not have %q", text)
		}
		return nil
	})
}

// stop stops a node with SIGTERM and waits for it.
func stop(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("node exited %d", code)
	}
}

// untar extracts a .tar.gz of regular files and directories into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(path, filepath.Clean(dir)) {
			t.Fatalf("%s leaves the directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(path, data, 0o644)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestClusterOnOneStream runs a cluster on a journal of one stream, as
// every journal was before shards: the nodes keep it, serve from every
// node, and each partition's owner is the one rendezvous hashing picks,
// as before.
func TestClusterOnOneStream(t *testing.T) {
	c := startCluster(t, 3, true, "--journal-shards", "1")
	for _, m := range c.members {
		logged(t, m.p, "TALLY_JOURNAL (tally.journal.<group>, R3)")
	}
	checkServesFromEveryNode(t, c)
	nc := journaltest.ConnectURL(t, c.ops)
	var names []string
	for _, m := range c.members {
		names = append(names, m.name)
	}
	journaltest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		owners, err := nodetest.Owners(ctx, nc)
		if err != nil {
			return err
		}
		for p, o := range owners {
			if want := cluster.Owner(names, p); o != want {
				return fmt.Errorf("partition %d is held by %q, want %s", p, o, want)
			}
		}
		return nil
	})
}
