package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// openJournal opens an empty journal on a NATS server of the test's.
func openJournal(t testing.TB) *journal.Journal {
	t.Helper()
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	j, err := journal.Open(context.Background(), js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func set(seq uint64, counters map[string]int64) *messages.Change {
	return &messages.Change{Seq: seq, Op: messages.Op_OP_SET, Counters: counters, User: "alice", RequestId: "r"}
}

func increase(seq uint64, key string, amount, value int64) *messages.Change {
	return &messages.Change{Seq: seq, Op: messages.Op_OP_INCREASE, Key: key, Amount: amount, Value: value}
}

// event is an event of changes after the event at prev, carrying state.
func event(prev uint64, state map[string]int64, changes ...*messages.Change) *messages.Event {
	return &messages.Event{PrevSeq: prev, UnixNano: 1_700_000_000_000_000_000, Changes: changes,
		State: &messages.GroupState{Counters: state, Version: changes[len(changes)-1].GetSeq()}}
}

// line is an export's line of group's event at stream sequence seq.
func line(t testing.TB, group string, seq uint64, ev *messages.Event) string {
	t.Helper()
	b, err := encodeLine(group, seq, ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goodExport is an export of two groups, two events each, interleaved.
func goodExport(t testing.TB, a, b string) string {
	return line(t, a, 1, event(0, map[string]int64{"k": 1}, set(1, map[string]int64{"k": 1}))) +
		line(t, b, 2, event(0, map[string]int64{"n": 5}, increase(1, "n", 5, 5))) +
		line(t, a, 3, event(1, map[string]int64{"k": 3}, increase(2, "k", 2, 3))) +
		line(t, b, 4, event(2, map[string]int64{"n": 6}, increase(2, "n", 1, 6)))
}

// TestImportRefusesHostileExports: an export with one bad line imports
// nothing, and the error names the line.
func TestImportRefusesHostileExports(t *testing.T) {
	first := event(0, map[string]int64{"k": 1}, set(1, map[string]int64{"k": 1}))
	second := event(1, map[string]int64{"k": 3}, increase(2, "k", 2, 3))
	good := line(t, "g", 1, first)
	withState := func(ev *messages.Event, counters map[string]int64) *messages.Event {
		ev.State.Counters = counters
		return ev
	}
	many := map[string]int64{}
	for i := range 21 {
		many[fmt.Sprintf("k%d", i)] = 1
	}
	tests := []struct {
		name   string
		export string
		want   string // in the error
	}{
		{"group with a dot", good + line(t, "a.b", 2, first), "line 2"},
		{"group >", good + line(t, ">", 2, first), "line 2"},
		{"group *", good + line(t, "*", 2, first), "line 2"},
		{"group of 49 bytes", good + line(t, strings.Repeat("g", 49), 2, first), "line 2"},
		{"group with a control character", good + line(t, "g\x1b", 2, first), "line 2"},
		{"group with a space", good + line(t, "a b", 2, first), "line 2"},
		{"key with NUL", good + line(t, "h", 2, event(0, map[string]int64{"k\x00": 1}, set(1, map[string]int64{"k\x00": 1}))), "line 2"},
		{"state key with NUL", good + line(t, "h", 2, withState(event(0, nil, increase(1, "k", 1, 1)), map[string]int64{"k": 1, "\x00": 0})), "line 2"},
		{"user ID with a dot", good + line(t, "h", 2, event(0, map[string]int64{"k": 1}, &messages.Change{Seq: 1, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 1}, User: "a.b"})), "line 2"},
		{"request ID of 65 bytes", good + line(t, "h", 2, event(0, map[string]int64{"k": 1}, &messages.Change{Seq: 1, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 1}, RequestId: strings.Repeat("r", 65)})), "line 2"},
		{"state of 21 keys", good + line(t, "h", 2, withState(event(7, nil, increase(8, "k", 1, 1)), many)), "line 2"},
		{"delete of no key", good + line(t, "g", 2, event(1, map[string]int64{"k": 1}, &messages.Change{Seq: 2, Op: messages.Op_OP_DELETE})), "line 2"},
		{"increase carrying a set's counters", good + line(t, "g", 2, event(1, map[string]int64{"k": 3}, &messages.Change{Seq: 2, Op: messages.Op_OP_INCREASE, Key: "k", Amount: 2, Value: 3, Counters: map[string]int64{"x": 1}})), "line 2"},
		{"altered prevSeq", good + line(t, "g", 2, event(7, map[string]int64{"k": 3}, increase(2, "k", 2, 3))), "line 2, group g"},
		{"altered state", good + line(t, "g", 2, event(1, map[string]int64{"k": 9}, increase(2, "k", 2, 3))), "line 2, group g"},
		{"a first event twice", good + good, "line 2, group g"},
		{"no event", good + `{"groupID":"g","streamSeq":2}` + "\n", "line 2"},
		{"unknown field", good + strings.Replace(line(t, "g", 2, second), `"groupID"`, `"extra":1,"groupID"`, 1), "line 2"},
		{"two values on a line", good + strings.TrimSuffix(line(t, "g", 2, second), "\n") + " {}\n", "line 2"},
		{"not JSON", good + "\n\nnot json\n", "line 4"},
		{"line too long", good + `{"groupID":"` + strings.Repeat("g", MaxLine) + "\"}\n" + line(t, "g", 2, second), "line 2 is longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := openJournal(t)
			n, err := Import(context.Background(), j, strings.NewReader(tt.export))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Import = %d, %v; want an error naming %q", n, err, tt.want)
			}
			if held, err := j.Events(context.Background()); err != nil || held != 0 {
				t.Errorf("the journal holds %d events after a refused import (%v), want 0", held, err)
			}
		})
	}
	t.Run("the good part alone", func(t *testing.T) {
		if n, err := Import(context.Background(), openJournal(t), strings.NewReader(good+line(t, "g", 2, second))); n != 2 || err != nil {
			t.Errorf("Import = %d, %v; want 2, nil", n, err)
		}
	})
}

// endless is a line that never ends; it fails the test's import once
// read much further than MaxLine.
type endless struct{ read int }

func (e *endless) Read(p []byte) (int, error) {
	if e.read > 4*MaxLine {
		return 0, errors.New("read far past MaxLine")
	}
	for i := range p {
		p[i] = 'x'
	}
	e.read += len(p)
	return len(p), nil
}

// TestImportStopsAtALongLine: a line longer than MaxLine is refused
// without reading the rest of it.
func TestImportStopsAtALongLine(t *testing.T) {
	r := &endless{}
	_, err := Import(context.Background(), openJournal(t), io.MultiReader(strings.NewReader(goodExport(t, "a", "b")), r))
	if err == nil || !strings.Contains(err.Error(), "line 5 is longer than") {
		t.Errorf("Import of an endless line = %v; want line 5 refused as too long", err)
	}
	if r.read > 2*MaxLine {
		t.Errorf("Import read %d bytes of the endless line, want at most %d", r.read, 2*MaxLine)
	}
}

// TestImportAllOrNothing: an import that fails at an append (a group the
// journal holds already) removes the events it appended before, and the
// journal holds what it held.
func TestImportAllOrNothing(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	if _, err := Import(ctx, j, strings.NewReader(line(t, "b", 1, event(0, map[string]int64{"x": 1}, set(1, map[string]int64{"x": 1}))))); err != nil {
		t.Fatal(err)
	}
	before, err := Verify(ctx, j, "")
	if err != nil {
		t.Fatal(err)
	}
	// a's events come first and append; b's first conflicts.
	n, err := Import(ctx, j, strings.NewReader(goodExport(t, "a", "b")))
	if !errors.Is(err, journal.ErrConflict) || !strings.Contains(err.Error(), "line 2, group b") {
		t.Fatalf("Import into a journal holding b = %d, %v; want a conflict at line 2", n, err)
	}
	after, err := Verify(ctx, j, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the journal after a failed import (-before +after):\n%s", diff)
	}
	if h, err := History(ctx, j, "a", Filter{}); err != nil || len(h) != 0 {
		t.Errorf("History(a) after a failed import = %v, %v; want none", h, err)
	}
}

// TestVerifyFindsInvalidEvents: events that follow their chain but that
// the service never writes (a key with NUL, a group ID outside the
// contract) are bad, and History refuses to read past them.
func TestVerifyFindsInvalidEvents(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	appendEvent := func(group string, expected uint64, ev *messages.Event) uint64 {
		t.Helper()
		seq, err := j.Append(ctx, group, expected, ev)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	good := appendEvent("g", 0, event(0, map[string]int64{"k": 1}, set(1, map[string]int64{"k": 1})))
	nul := appendEvent("g", good, event(good, map[string]int64{"k": 1, "k\x00": 2}, set(2, map[string]int64{"k\x00": 2})))
	dotted := appendEvent("a.b", 0, event(0, map[string]int64{"k": 1}, set(1, map[string]int64{"k": 1})))
	r, err := Verify(ctx, j, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range r.Bad {
		got = append(got, fmt.Sprintf("%s %d", b.Group, b.StreamSeq))
	}
	want := []string{fmt.Sprintf("g %d", nul), fmt.Sprintf("a.b %d", dotted)}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Verify's bad events (-got +want):\n%s\nreport %+v", diff, r)
	}
	if _, err := History(ctx, j, "g", Filter{}); !errors.Is(err, ErrBadEvent) {
		t.Errorf("History(g) = %v, want ErrBadEvent", err)
	}
}

// TestToolsRefuseGroupsOutsideTheContract: a group ID with a NATS
// wildcard would read other groups' subjects.
func TestToolsRefuseGroupsOutsideTheContract(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	if _, err := Import(ctx, j, strings.NewReader(goodExport(t, "a", "b"))); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"*", ">", "a.>", "a b", strings.Repeat("g", 49)} {
		t.Run(g, func(t *testing.T) {
			if h, err := History(ctx, j, g, Filter{}); err == nil {
				t.Errorf("History(%q) = %v, nil; want an error", g, h)
			}
			if st, err := At(ctx, j, g, Point{Seq: 1}); err == nil {
				t.Errorf("At(%q) = %v, nil; want an error", g, st)
			}
			if r, err := Verify(ctx, j, g); err == nil {
				t.Errorf("Verify(%q) = %+v, nil; want an error", g, r)
			}
			if n, err := Export(ctx, j, []string{g}, io.Discard); err == nil {
				t.Errorf("Export(%q) = %d, nil; want an error", g, n)
			}
		})
	}
}
