package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/audit"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node/nodetest"
)

// tool runs tally-node journal with args and returns its stdout, stderr
// and exit status.
func tool(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return toolEnv(t, nil, stdin, args...)
}

// toolEnv is tool with variables added to the test's environment.
func toolEnv(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"journal"}, args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("tally-node journal %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// jsonLines decodes each line of out into a T.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func i64(v int64) *int64 { return &v }

// opsConfig writes a --nats-config on a free port with the operator user
// ops/ops in the journal's account (nodetest.OpsConfig), and returns the
// address and the file.
func opsConfig(t *testing.T) (listen, conf string) {
	t.Helper()
	listen = freeAddr(t)
	conf = filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: "+listen+"\n"+nodetest.OpsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return listen, conf
}

// TestJournalTools writes through a node process as several users, stops
// it, and reads its data directory with tally-node journal: history lists
// exactly the writes made, with their users and request IDs and each key's
// value before and after; at gives the state after a change and at a
// time; verify passes. Then an event planted through the node's own
// account is reported by verify with its group and stream sequence,
// repair removes it after asking, verify passes again and the node serves
// the group from its last good event.
func TestJournalTools(t *testing.T) {
	dir := t.TempDir()
	listen, conf := opsConfig(t)
	args := []string{"--data", dir, "--nats-config", conf}
	p := startProc(t, args...)
	ctx := context.Background()
	nc := journaltest.ConnectURL(t, "nats://"+listen)
	alice, err := client.New(nc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := client.New(nc, "bob")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.NewAdmin(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetGroupCounters(ctx, "room", map[string]int64{"likes": 1, "stars": 2}, client.WithRequestID("r1")); err != nil {
		t.Fatal(err)
	}
	between := time.Now()
	if _, err := bob.IncreaseGroupCounter(ctx, "room", "likes", 5, client.WithRequestID("r2")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DecreaseGroupCounter(ctx, "room", "stars", 3, client.WithRequestID("r3")); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteGroupCounters(ctx, "room", "likes"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.IncreaseGroupCounter(ctx, "other", "n", 1); err != nil {
		t.Fatal(err)
	}
	stop := func(p *proc) {
		t.Helper()
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t); code != 0 {
			t.Fatalf("node exited %d", code)
		}
	}
	stop(p)
	data := append([]string{}, args...)

	out, errOut, code := tool(t, "", append([]string{"history", "room", "--json"}, data...)...)
	if code != 0 {
		t.Fatalf("history exited %d: %s", code, errOut)
	}
	got := jsonLines[audit.Entry](t, out)
	want := []audit.Entry{
		{Seq: 1, Op: "set", User: "alice", RequestID: "r1", Changes: []audit.KeyChange{{Key: "likes", After: i64(1)}, {Key: "stars", After: i64(2)}}},
		{Seq: 2, Op: "increase", User: "bob", RequestID: "r2", Changes: []audit.KeyChange{{Key: "likes", Before: i64(1), After: i64(6)}}},
		{Seq: 3, Op: "decrease", RequestID: "r3", Changes: []audit.KeyChange{{Key: "stars", Before: i64(2), After: i64(-1)}}},
		{Seq: 4, Op: "delete", Changes: []audit.KeyChange{{Key: "likes", Before: i64(6)}}},
	}
	// The client gives a delete a request ID of its own.
	if len(got) == len(want) && got[3].RequestID != "" {
		want[3].RequestID = got[3].RequestID
	}
	ignore := cmp.FilterPath(func(p cmp.Path) bool {
		name := p.Last().String()
		return name == ".Time" || name == ".StreamSeq"
	}, cmp.Ignore())
	if diff := cmp.Diff(want, got, ignore); diff != "" {
		t.Errorf("history room (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		if got[i].StreamSeq <= got[i-1].StreamSeq || got[i].Time.Before(got[i-1].Time) {
			t.Errorf("history entries %d and %d are out of order: %+v, %+v", i-1, i, got[i-1], got[i])
		}
	}
	for _, c := range []struct {
		args []string
		want []uint64
	}{
		{[]string{"--from", "2", "--limit", "2"}, []uint64{2, 3}},
		{[]string{"--to", "2"}, []uint64{1, 2}},
		{[]string{"--from", between.UTC().Format(time.RFC3339Nano)}, []uint64{2, 3, 4}},
		{[]string{"--to", between.UTC().Format(time.RFC3339Nano)}, []uint64{1}},
		{[]string{"--from", "3", "--to", "3"}, []uint64{3}},
	} {
		out, errOut, code := tool(t, "", append(append([]string{"history", "room", "--json"}, c.args...), data...)...)
		var seqs []uint64
		for _, e := range jsonLines[audit.Entry](t, out) {
			seqs = append(seqs, e.Seq)
		}
		if code != 0 || !cmp.Equal(seqs, c.want) {
			t.Errorf("history %v gave changes %v (exit %d, %s), want %v", c.args, seqs, code, errOut, c.want)
		}
	}
	// The table form names the users, and the admin's calls as such.
	out, _, _ = tool(t, "", append([]string{"history", "room"}, data...)...)
	for _, s := range []string{"alice", "bob", "(admin)", "likes: 1 -> 6", "stars: 2 -> -1", "likes: 6 -> -"} {
		if !strings.Contains(out, s) {
			t.Errorf("history's table lacks %q:\n%s", s, out)
		}
	}

	for _, c := range []struct {
		point string
		want  map[string]int64
	}{
		{"2", map[string]int64{"likes": 6, "stars": 2}},
		{"4", map[string]int64{"stars": -1}},
		{between.UTC().Format(time.RFC3339Nano), map[string]int64{"likes": 1, "stars": 2}},
	} {
		out, errOut, code := tool(t, "", append([]string{"at", "room", c.point, "--json"}, data...)...)
		if code != 0 {
			t.Fatalf("at room %s exited %d: %s", c.point, code, errOut)
		}
		st := jsonLines[audit.State](t, out)
		if len(st) != 1 || !cmp.Equal(st[0].Counters, c.want) {
			t.Errorf("at room %s = %+v, want %v", c.point, st, c.want)
		}
	}

	if out, errOut, code := tool(t, "", append([]string{"verify"}, data...)...); code != 0 || !strings.Contains(out, "2 groups, 5 events, 0 bad") {
		t.Fatalf("verify of a clean journal exited %d: %s%s", code, out, errOut)
	}

	// Export, import into a fresh data directory, replay: the same
	// groups, history and counters; a second import is refused.
	export, errOut, code := tool(t, "", append([]string{"export"}, data...)...)
	if code != 0 || !strings.Contains(errOut, "exported 5 events") {
		t.Fatalf("export exited %d: %s", code, errOut)
	}
	moved := []string{"--data", t.TempDir()}
	if out, errOut, code := tool(t, export, append([]string{"import"}, moved...)...); code != 0 || !strings.Contains(out, "imported 5 events") {
		t.Fatalf("import exited %d: %s%s", code, out, errOut)
	}
	if out, _, code := tool(t, export, append([]string{"import"}, moved...)...); code == 0 {
		t.Errorf("a second import into the same journal exited 0: %s", out)
	}
	replayed := func(args []string) string {
		out, errOut, code := tool(t, "", append([]string{"replay", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("replay exited %d: %s", code, errOut)
		}
		var s struct{ Groups, Events, Keys int }
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(s)
	}
	// A progress bar when asked (by default when stderr is a terminal,
	// which here it is not).
	if _, errOut, _ := tool(t, "", append([]string{"replay", "--progress"}, data...)...); !strings.Contains(errOut, "replaying 100%") || !strings.Contains(errOut, "(5/5") {
		t.Errorf("replay --progress drew no bar that ends at 5 of 5 events: %q", errOut)
	}
	if _, errOut, _ := tool(t, "", append([]string{"replay"}, data...)...); strings.Contains(errOut, "replaying") {
		t.Errorf("replay drew a progress bar on a stderr that is no terminal: %q", errOut)
	}
	if a, b := replayed(data), replayed(moved); a != b || a != "{2 5 2}" {
		t.Errorf("replay: %s before the move, %s after; want {2 5 2} both", a, b)
	}
	out, _, _ = tool(t, "", append([]string{"history", "room", "--json"}, moved...)...)
	if diff := cmp.Diff(got, jsonLines[audit.Entry](t, out), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".StreamSeq" }, cmp.Ignore())); diff != "" {
		t.Errorf("history after export and import (-before +after):\n%s", diff)
	}
	// An export whose event was altered does not import.
	tampered := strings.Replace(export, `"stars":"-1"`, `"stars":"7"`, 1)
	if tampered == export {
		t.Fatalf("no state to alter in the export:\n%s", export)
	}
	if out, errOut, code := tool(t, tampered, "import", "--data", t.TempDir()); code == 0 || !strings.Contains(errOut, "bad event") {
		t.Errorf("import of an altered export exited %d: %s%s", code, out, errOut)
	}
	mp := startProc(t, "--data", moved[1], "--listen", "127.0.0.1:0")
	mc, err := client.NewAdmin(journaltest.ConnectURL(t, mp.url))
	if err != nil {
		t.Fatal(err)
	}
	for g, want := range map[string]map[string]int64{"room": {"stars": -1}, "other": {"n": 1}} {
		if got, err := mc.GetGroupCounters(ctx, g); err != nil || !cmp.Equal(got, want) {
			t.Errorf("the moved journal's node serves %s = %v, %v; want %v", g, got, err, want)
		}
	}
	stop(mp)

	// An event planted through the node's own account, as a client that
	// got the journal's credentials could.
	p = startProc(t, args...)
	ops := journaltest.ConnectURL(t, "nats://ops:ops@"+listen)
	js, err := jetstream.New(ops)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "tally.journal.room", []byte("not an event"))
	if err != nil {
		t.Fatal(err)
	}
	// The history over NATS names the bad event rather than skip it.
	m, err := journaltest.ConnectURL(t, "nats://"+listen).Request("tally.v1.admin.history", []byte(`{"groupID":"room"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := m.Header.Get("Nats-Service-Error-Code"), m.Header.Get("Nats-Service-Error"); code != "10002" || !strings.Contains(msg, fmt.Sprintf("stream sequence %d", ack.Sequence)) {
		t.Errorf("history of a group with a bad event: code %q, %q; want 10002 naming event %d", code, msg, ack.Sequence)
	}
	stop(p)
	out, errOut, code = tool(t, "", append([]string{"verify", "--json"}, data...)...)
	if code == 0 {
		t.Fatalf("verify passed a journal with a planted event: %s", out)
	}
	rep := jsonLines[audit.Report](t, out)
	if len(rep) != 1 || len(rep[0].Bad) != 1 || rep[0].Bad[0].Group != "room" || rep[0].Bad[0].StreamSeq != ack.Sequence {
		t.Fatalf("verify reported %+v, want room's event %d; stderr %s", rep, ack.Sequence, errOut)
	}
	// Repair asks first: "no" removes nothing.
	if out, _, _ := tool(t, "n\n", append([]string{"repair", "room"}, data...)...); !strings.Contains(out, "nothing removed") {
		t.Errorf("repair answered no: %s", out)
	}
	if _, _, code := tool(t, "", append([]string{"verify"}, data...)...); code == 0 {
		t.Fatal("repair removed an event it was told not to")
	}
	if out, errOut, code := tool(t, "y\n", append([]string{"repair", "room"}, data...)...); code != 0 || !strings.Contains(out, "removed 1 events") {
		t.Fatalf("repair exited %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := tool(t, "", append([]string{"verify"}, data...)...); code != 0 {
		t.Fatalf("verify after repair exited %d: %s%s", code, out, errOut)
	}
	startProc(t, args...)
	nc = journaltest.ConnectURL(t, "nats://"+listen)
	admin, err = client.NewAdmin(nc)
	if err != nil {
		t.Fatal(err)
	}
	counters, err := admin.GetGroupCounters(ctx, "room")
	if err != nil {
		t.Fatalf("get room after repair: %v", err)
	}
	if !cmp.Equal(counters, map[string]int64{"stars": -1}) {
		t.Errorf("room after repair = %v, want its last good state", counters)
	}
}

// TestJournalToolsRefuseBadInput: what a careless or hostile operator
// types gets an error and a non-zero exit, and changes nothing.
func TestJournalToolsRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "--data", dir, "--listen", "127.0.0.1:0")
	// The node holds its data directory: the tools say so.
	if _, errOut, code := tool(t, "", "verify", "--data", dir); code == 0 || !strings.Contains(errOut, "in use by process") {
		t.Errorf("verify on a running node's data exited %d: %s", code, errOut)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("node exited %d", code)
	}
	for _, args := range [][]string{
		{},
		{"nope"},
		{"history"},
		{"history", "room", "extra"},
		{"history", "room", "--from", "yesterday"},
		{"history", "room", "--limit", "-1"},
		{"at", "room"},
		{"at", "room", "0"},
		{"at", "room", "soon"},
		{"verify", "--data", filepath.Join(dir, "missing")},
	} {
		if !strings.Contains(strings.Join(args, " "), "--data") {
			args = append(args, "--data", dir)
		}
		if out, errOut, code := tool(t, "", args...); code == 0 {
			t.Errorf("journal %v exited 0: %s%s", args, out, errOut)
		}
	}
	for _, export := range []string{
		"not json\n",
		`{"groupID":"g"}` + "\n",
		`{"groupID":"","event":{}}` + "\n",
		`{"groupID":"g","event":{"changes":[{"seq":"5","op":"OP_INCREASE","key":"k","amount":"1","value":"1"}],"state":{"counters":{"k":"1"},"version":"5"}}}` + "\n",
		`{"groupID":"g","event":{"state":{"counters":{"k":"1"}}}}` + "\n",
	} {
		fresh := t.TempDir()
		if out, errOut, code := tool(t, export, "import", "--data", fresh); code == 0 {
			t.Errorf("import of %q exited 0: %s%s", export, out, errOut)
		}
		if out, _, _ := tool(t, "", "verify", "--data", fresh); !strings.Contains(out, "0 events") {
			t.Errorf("a refused import of %q left events: %s", export, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("a tool made a data directory it was pointed at")
	}
}

// TestReplayVerify replays the journal of a running node while clients
// write: --verify finds no difference, however the writes and the replay
// interleave, nor after an event planted in the journal, which the node
// follows. (TestJournalToolsOnEmbeddedCluster has --verify find one.)
func TestReplayVerify(t *testing.T) {
	listen, conf := opsConfig(t)
	startProc(t, "--data", t.TempDir(), "--nats-config", conf)
	ctx := context.Background()
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, "nats://"+listen))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.IncreaseGroupCounter(ctx, "quiet", "n", 1); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	var written atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			written.Add(1)
			if _, err := admin.IncreaseGroupCounter(ctx, fmt.Sprintf("busy%d", i%10), "n", 1); err != nil {
				done <- err
				return
			}
		}
	}()
	ops := "--nats-url=nats://ops:ops@" + listen
	for range 3 {
		from := written.Load()
		if out, errOut, code := tool(t, "", "replay", "--verify", ops); code != 0 || !strings.Contains(out, "agrees on every group") {
			t.Errorf("replay --verify under writes exited %d: %s%s", code, out, errOut)
		}
		if written.Load() == from {
			t.Error("no write went on during the replay")
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A valid event appended behind the node's back: a node alone watches
	// its journal and follows it, so --verify agrees once it has.
	nc := journaltest.ConnectURL(t, "nats://ops:ops@"+listen)
	plantEvent(t, nc, "quiet")
	journaltest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if out, errOut, code := tool(t, "", "replay", "--verify", ops); code != 0 {
			return fmt.Errorf("replay --verify after a planted event exited %d: %s%s", code, out, errOut)
		}
		return nil
	})
	if got, err := admin.GetGroupCounters(ctx, "quiet"); err != nil || got["n"] != 101 {
		t.Errorf("quiet after the planted event = %v, %v; want n 101", got, err)
	}
	// Without a running node to compare with, it says so.
	dir := t.TempDir()
	p := startProc(t, "--data", dir, "--listen", "127.0.0.1:0")
	other, err := client.NewAdmin(journaltest.ConnectURL(t, p.url))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.IncreaseGroupCounter(ctx, "g", "n", 1); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
	if _, errOut, code := tool(t, "", "replay", "--verify", "--data", dir); code == 0 || !strings.Contains(errOut, "no node answers") {
		t.Errorf("replay --verify of a stopped node's data exited %d: %s", code, errOut)
	}
}

// plantEvent appends a valid event to group's subject through nc, a
// connection to the journal's account, as a writer other than the node:
// an increase of n by 100. It returns the event's change sequence.
func plantEvent(t *testing.T, nc *nats.Conn, group string) uint64 {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := journal.Discover(ctx, js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, layout.StreamOf(layout.ShardOf(group)))
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, layout.Subject(group))
	if err != nil {
		t.Fatal(err)
	}
	var prev messages.Event
	if err := proto.Unmarshal(last.Data, &prev); err != nil {
		t.Fatal(err)
	}
	v, counters := prev.GetState().GetVersion(), maps.Clone(prev.GetState().GetCounters())
	counters["n"] += 100
	planted, _ := proto.Marshal(&messages.Event{PrevSeq: last.Sequence, UnixNano: time.Now().UnixNano(),
		Changes: []*messages.Change{{Seq: v + 1, Op: messages.Op_OP_INCREASE, Key: "n", Amount: 100, Value: counters["n"]}},
		State:   &messages.GroupState{Counters: counters, Version: v + 1}})
	if _, err := js.Publish(ctx, layout.Subject(group), planted, jetstream.WithExpectLastSequencePerSubject(last.Sequence)); err != nil {
		t.Fatal(err)
	}
	return v + 1
}

// TestJournalToolsShowHostileText: text a user chose (a request ID with
// terminal escapes, a key with a bidi override) reaches an operator's
// terminal escaped, in the table and in JSON, and JSON still decodes to
// the text itself; a group ID outside the contract (a NATS wildcard
// would read other groups) is a usage error.
func TestJournalToolsShowHostileText(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "--data", dir, "--listen", "127.0.0.1:0")
	ctx := context.Background()
	alice, err := client.New(journaltest.ConnectURL(t, p.url), "alice")
	if err != nil {
		t.Fatal(err)
	}
	const (
		forged = "\x1b[1A\x1b[2K\rforged\u009b2J\x7f"
		key    = "price\u202e\u2066evil\u200f"
	)
	if _, err := alice.SetGroupCounters(ctx, "room", map[string]int64{key: 1}, client.WithRequestID(forged)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.IncreaseGroupCounter(ctx, "secret", "n", 42); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("node exited %d", code)
	}
	raw := []string{"\x1b", "\r", "\u009b", "\x7f", "\u202e", "\u2066", "\u200f"}
	tests := []struct {
		name string
		args []string
		want []string // in the output, escaped
	}{
		{"history table", []string{"history", "room"}, []string{`\x1b[1A\x1b[2K\rforged\u009b2J\x7f`, `price\u202e\u2066evil\u200f: - -> 1`}},
		{"history JSON", []string{"history", "room", "--json"}, []string{`\u001b[1A`, `price\u202e\u2066evil\u200f`}},
		{"at table", []string{"at", "room", "1"}, []string{`price\u202e\u2066evil\u200f`}},
		{"at JSON", []string{"at", "room", "1", "--json"}, []string{`price\u202e\u2066evil\u200f`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := tool(t, "", append(tt.args, "--data", dir)...)
			if code != 0 {
				t.Fatalf("exited %d: %s", code, errOut)
			}
			for _, r := range raw {
				if strings.Contains(out, r) {
					t.Errorf("the output holds %q unescaped:\n%q", r, out)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %s:\n%s", w, out)
				}
			}
		})
	}
	t.Run("JSON decodes to the text", func(t *testing.T) {
		out, _, _ := tool(t, "", "history", "room", "--json", "--data", dir)
		got := jsonLines[audit.Entry](t, out)
		if len(got) != 1 || got[0].RequestID != forged || len(got[0].Changes) != 1 || got[0].Changes[0].Key != key {
			t.Errorf("history --json = %+v, want request ID %q and key %q", got, forged, key)
		}
	})
	for _, args := range [][]string{
		{"history", "*"},
		{"history", ">"},
		{"history", "room.x"},
		{"at", ">", "1"},
		{"at", "s*", "1"},
		{"repair", ">", "--yes"},
		{"export", "room", "a b"},
		{"history", strings.Repeat("g", 49)},
		{"history", "g\x1b[2J"},
	} {
		t.Run(fmt.Sprintf("%q", args), func(t *testing.T) {
			out, errOut, code := tool(t, "", append(args, "--data", dir)...)
			if code != 2 || !strings.Contains(errOut, "group ID") || strings.Contains(out, "42") {
				t.Errorf("exited %d: %s%s; want 2 and a message about the group ID", code, out, errOut)
			}
			if strings.Contains(errOut, "\x1b") {
				t.Errorf("the error holds an escape unescaped: %q", errOut)
			}
		})
	}
}

// TestJournalImportAllOrNothing: an import that fails, at a line or at an
// append, leaves the journal as it was, so that the corrected import
// needs no --force.
func TestJournalImportAllOrNothing(t *testing.T) {
	ev := func(group string, seq, prev, version uint64, key string, value int64) string {
		change := fmt.Sprintf(`{"seq":"%d","op":"OP_SET","counters":{%q:"%d"}}`, version, key, value)
		return fmt.Sprintf(`{"groupID":%q,"streamSeq":%d,"event":{"prevSeq":"%d","changes":[%s],"state":{"counters":{%q:"%d"},"version":"%d"}}}`+"\n",
			group, seq, prev, change, key, value, version)
	}
	dir := t.TempDir()
	if out, errOut, code := tool(t, ev("b", 1, 0, 1, "x", 1), "import", "--data", dir); code != 0 {
		t.Fatalf("import exited %d: %s%s", code, out, errOut)
	}
	held, _, _ := tool(t, "", "export", "--data", dir)
	export := ev("a", 1, 0, 1, "k", 1) + ev("a", 2, 1, 2, "k", 2) + ev("b", 3, 0, 1, "y", 1)
	tests := []struct {
		name   string
		export string
		want   string
	}{
		{"a group the journal holds", export, "line 3, group b"},
		{"an altered prevSeq", ev("a", 1, 0, 1, "k", 1) + ev("a", 2, 5, 2, "k", 2), "line 2, group a"},
		{"a group with a dot", ev("a", 1, 0, 1, "k", 1) + ev("a.b", 2, 0, 1, "k", 1), "line 2"},
		{"a key with NUL", ev("a", 1, 0, 1, "k", 1) + ev("c", 2, 0, 1, "k\x00", 1), "line 2"},
		{"a line of 1 MB", ev("a", 1, 0, 1, "k", 1) + ev("c", 2, 0, 1, strings.Repeat("k", 1<<20), 1), "line 2 is longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := tool(t, tt.export, "import", "--force", "--data", dir)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Errorf("import exited %d: %s%s; want 1 and an error naming %q", code, out, errOut, tt.want)
			}
			out, _, _ = tool(t, "", "export", "--data", dir)
			if out != held {
				t.Errorf("the journal after a failed import holds\n%s\nwant\n%s", out, held)
			}
		})
	}
}

// TestJournalToolsOnEmbeddedCluster: the journal of a cluster of embedded
// nodes is read through the running cluster, as a user of account TALLY
// that the nodes' configuration declares; without such a user, and on a
// stopped node's data directory, the tools say what they need.
func TestJournalToolsOnEmbeddedCluster(t *testing.T) {
	c := startCluster(t, 3, true) // each node's --nats-config declares ops/ops in TALLY
	ctx := context.Background()
	for i, step := range []func(a *client.Admin) error{
		func(a *client.Admin) error {
			_, err := a.SetGroupCounters(ctx, "room", map[string]int64{"k": 1}, client.WithRequestID("r1"))
			return err
		},
		func(a *client.Admin) error {
			_, err := a.IncreaseGroupCounter(ctx, "room", "k", 2, client.WithRequestID("r2"))
			return err
		},
	} {
		a, err := client.NewAdmin(c.connect(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := step(a); err != nil {
			t.Fatal(err)
		}
	}
	ops := []string{"TALLY_NATS_PASSWORD=ops"}
	want := []audit.Entry{
		{Seq: 1, Op: "set", RequestID: "r1", Changes: []audit.KeyChange{{Key: "k", After: i64(1)}}},
		{Seq: 2, Op: "increase", RequestID: "r2", Changes: []audit.KeyChange{{Key: "k", Before: i64(1), After: i64(3)}}},
	}
	ignore := cmp.FilterPath(func(p cmp.Path) bool {
		name := p.Last().String()
		return name == ".Time" || name == ".StreamSeq"
	}, cmp.Ignore())
	for _, m := range c.members {
		out, errOut, code := toolEnv(t, ops, "", "history", "room", "--json", "--nats-url", m.url, "--nats-user", "ops")
		if code != 0 {
			t.Fatalf("history through %s exited %d: %s", m.name, code, errOut)
		}
		if diff := cmp.Diff(want, jsonLines[audit.Entry](t, out), ignore); diff != "" {
			t.Errorf("history through %s (-want +got):\n%s", m.name, diff)
		}
	}
	if out, errOut, code := toolEnv(t, ops, "", "verify", "--nats-url", c.members[0].url, "--nats-user", "ops"); code != 0 || !strings.Contains(out, "1 groups, 2 events, 0 bad") {
		t.Errorf("verify through the cluster exited %d: %s%s", code, out, errOut)
	}

	// An event planted behind the cluster's back, which the group's owner
	// does not know (nodes of a cluster do not watch the journal): replay
	// --verify finds it.
	plantEvent(t, c.connectWith(0, nats.UserInfo("ops", "ops")), "room")
	out, errOut, code := toolEnv(t, ops, "", "replay", "--verify", "--json", "--nats-url", c.members[1].url, "--nats-user", "ops")
	if code == 0 {
		t.Fatalf("replay --verify missed the planted event: %s", out)
	}
	var diffs []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		var d struct{ GroupID, Difference string }
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		diffs = append(diffs, d.GroupID+": "+d.Difference)
	}
	if len(diffs) != 1 || !strings.HasPrefix(diffs[0], "room: the node is at change 2, the journal at 3") {
		t.Errorf("replay --verify found %q, want room's planted change; stderr %s", diffs, errOut)
	}

	// Without a user of TALLY the connection enters the clients' account.
	_, errOut, code = tool(t, "", "history", "room", "--nats-url", c.members[0].url)
	if code != 1 || !strings.Contains(errOut, "account TALLY") || !strings.Contains(errOut, "--nats-user") {
		t.Errorf("history without credentials exited %d: %s; want 1 and what to give", code, errOut)
	}

	// A stopped node's data directory, with its flags or --data alone.
	m := c.members[2]
	m.p.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.p.wait(t); code != 0 {
		t.Fatalf("node %s exited %d", m.name, code)
	}
	data := m.args[slices.Index(m.args, "--data")+1]
	for _, args := range [][]string{
		{"--data", data},
		m.args,
	} {
		_, errOut, code := tool(t, "", append([]string{"history", "room"}, args...)...)
		if code != 1 || !strings.Contains(errOut, "--nats-url") || !strings.Contains(errOut, "account TALLY") {
			t.Errorf("history on %v exited %d: %s; want 1 and the way through the running cluster", args, code, errOut)
		}
	}
}
