package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// Exported is one event of an export, a JSON line: the group, the event's
// stream sequence in the journal it came from, and the event itself in
// protobuf's JSON form (int64 values as strings).
type Exported struct {
	Group     string          `json:"groupID"`
	StreamSeq uint64          `json:"streamSeq"`
	Event     json.RawMessage `json:"event"`
}

// MaxLine is the longest line of an export that Import reads, newline
// included. The largest event the service writes fits in a NATS message
// (node.MaxPayload, 16 KiB); in JSON, its strings escaped and its
// numbers quoted, it grows at most about sevenfold.
const MaxLine = 256 << 10

// Export writes the events of groups (every group when there is none) to
// w as JSON lines, each group's in commit order, and returns how many. An
// event that does not decode stops it: verify and repair first.
func Export(ctx context.Context, j Journal, groups []string, w io.Writer) (int, error) {
	for _, g := range groups {
		if err := contract.CheckGroupID(g); err != nil {
			return 0, err
		}
	}
	if len(groups) == 0 {
		groups = []string{""}
	}
	bw := bufio.NewWriter(w)
	n := 0
	for _, g := range groups {
		err := j.Scan(ctx, g, 0, func(s journal.Stored) error {
			ev, err := s.Event()
			if err != nil {
				return fmt.Errorf("%w: group %s, stream sequence %d: %w", ErrBadEvent, s.Group, s.Seq, err)
			}
			line, err := encodeLine(s.Group, s.Seq, ev)
			if err != nil {
				return err
			}
			n++
			_, err = bw.Write(line)
			return err
		})
		if err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// encodeLine is one line of an export, newline included.
func encodeLine(group string, seq uint64, ev *messages.Event) ([]byte, error) {
	b, err := protojson.Marshal(ev)
	if err != nil {
		return nil, err
	}
	line, err := json.Marshal(Exported{Group: group, StreamSeq: seq, Event: b})
	if err != nil {
		return nil, err
	}
	return append(line, '\n'), nil
}

// decodeLine reads one line of an export: one JSON object with the
// fields of Exported and no other, whose event is one the service
// writes (see actors.CheckEvent).
func decodeLine(line []byte) (Exported, *messages.Event, error) {
	var x Exported
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return x, nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return x, nil, errors.New("more than one JSON value")
	}
	if x.Group == "" || x.StreamSeq == 0 || len(x.Event) == 0 {
		return x, nil, errors.New(`want {"groupID","streamSeq","event"}`)
	}
	ev := new(messages.Event)
	if err := protojson.Unmarshal(x.Event, ev); err != nil {
		return x, nil, fmt.Errorf("event: %w", err)
	}
	if err := actors.CheckEvent(x.Group, ev); err != nil {
		return x, nil, fmt.Errorf("group %s: %w: %w", contract.Quote(x.Group), ErrBadEvent, err)
	}
	return x, ev, nil
}

// lineReader reads lines of at most max bytes, newline included, and
// skips blank ones. A longer line is refused without reading the rest
// of it.
type lineReader struct {
	r   *bufio.Reader
	max int
	n   int // the number of the last line read
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, max), max: max}
}

// next returns the next line that is not blank, valid until the next
// call, or io.EOF.
func (l *lineReader) next() ([]byte, error) {
	for {
		line, err := l.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("line %d is longer than %d bytes", l.n+1, l.max)
		case errors.Is(err, io.EOF) && len(line) == 0:
			return nil, io.EOF
		case err != nil && !errors.Is(err, io.EOF):
			return nil, fmt.Errorf("line %d: %w", l.n+1, err)
		}
		l.n++
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, nil
		}
	}
}

// Importer is what Import writes to: a *journal.Journal.
type Importer interface {
	Append(ctx context.Context, group string, expected uint64, ev *messages.Event) (uint64, error)
	Remove(ctx context.Context, group string, seq uint64) error
}

// Import appends the events of an export read from r, each group's after
// the one before it (the events name their new predecessors; a group
// whose export starts after events its journal no longer kept keeps
// saying so), and returns how many. It appends all of them or none.
//
// First it reads and checks the whole export: each line at most MaxLine
// bytes and one event of a group as the service writes them, each group's
// chain as Verify checks it. The first line that fails refuses the
// export, and nothing is appended. What it checked waits in a temporary
// file (in os.TempDir), so that memory holds only each group's last state
// and a few bytes per event. Then it appends; should an append fail (a
// group the journal holds already fails at its first event: each append
// is fenced by the group's last one), it removes what it appended, newest
// first, so that the journal holds what it held before.
func Import(ctx context.Context, j Importer, r io.Reader) (int, error) {
	spool, err := os.CreateTemp("", "tally-import-*")
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if err := check(r, spool, MaxLine); err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	var done []appended
	err = appendAll(ctx, j, spool, &done)
	if err == nil {
		return len(done), nil
	}
	if rerr := rollBack(ctx, j, done); rerr != nil {
		return 0, fmt.Errorf("import: %w; %w", err, rerr)
	}
	return 0, fmt.Errorf("import: %w (nothing imported: the %d events appended before it were removed)", err, len(done))
}

// check reads an export of lines of at most max bytes from r, checks
// every line and every group's chain, and writes the lines to w.
func check(r io.Reader, w io.Writer, max int) error {
	lines := newLineReader(r, max)
	chains := map[string]*actors.Chain{}
	bw := bufio.NewWriter(w)
	for {
		line, err := lines.next()
		if errors.Is(err, io.EOF) {
			return bw.Flush()
		}
		if err != nil {
			return err
		}
		x, ev, err := decodeLine(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", lines.n, err)
		}
		ch, ok := chains[x.Group]
		if !ok {
			ch = actors.NewChain(x.Group)
			chains[x.Group] = ch
		}
		if err := ch.Follow(x.StreamSeq, ev, nil); err != nil {
			return fmt.Errorf("line %d, group %s: %w: %w", lines.n, x.Group, ErrBadEvent, err)
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return err
		}
	}
}

// appended is an event Import appended, and a group's last one.
type appended struct {
	group string
	seq   uint64
	// members maps the stream sequences of the group's events that changed
	// its members, where they come from, to theirs in the journal appended
	// to: the events after them name them (Event.MembersSeq).
	members map[uint64]uint64
}

// appendAll appends the checked export read from r, and lists in done
// what it appended.
func appendAll(ctx context.Context, j Importer, r io.Reader, done *[]appended) error {
	lines := newLineReader(r, MaxLine)
	rn := newRenumbering()
	for {
		line, err := lines.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		x, ev, err := decodeLine(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", lines.n, err)
		}
		g, err := rn.append(ctx, j, x.Group, x.StreamSeq, ev)
		if err != nil {
			return fmt.Errorf("line %d, group %s: %w", lines.n, x.Group, err)
		}
		*done = append(*done, appended{group: g.group, seq: g.seq}) // the group's name shared
	}
}

// appender is what a copy of events appends to: a *journal.Journal.
type appender interface {
	Append(ctx context.Context, group string, expected uint64, ev *messages.Event) (uint64, error)
}

// renumbering appends events from another journal (or its export), each
// group's in their order, after one another: each names its predecessors
// by their sequences in the journal appended to, the group's previous
// event (PrevSeq) and the group's latest event that changed its members
// (MembersSeq), and is otherwise unchanged. A group's first event keeps
// its PrevSeq: when not 0, it says that the journal it comes from no
// longer kept the events before it. Import and Reshard copy with it.
type renumbering struct {
	groups map[string]*appended // each group's last event appended
}

func newRenumbering() *renumbering { return &renumbering{groups: map[string]*appended{}} }

// append appends ev, group's event at stream sequence seq where it comes
// from, as the group's next event in j, and returns the group's last
// event appended (the group's name shared).
func (rn *renumbering) append(ctx context.Context, j appender, group string, seq uint64, ev *messages.Event) (*appended, error) {
	g, seen := rn.groups[group]
	if !seen {
		g = &appended{group: group}
		rn.groups[group] = g
	} else {
		ev.PrevSeq = g.seq
	}
	if m, ok := g.members[ev.GetMembersSeq()]; ok {
		ev.MembersSeq = m
	}
	next, err := j.Append(ctx, g.group, g.seq, ev)
	if err != nil {
		return nil, err
	}
	g.seq = next
	g.follow(seq, ev)
	return g, nil
}

// follow records that the group's event at seq where it comes from is at
// g.seq in the journal appended to, if it changed the group's members.
func (g *appended) follow(seq uint64, ev *messages.Event) {
	for _, c := range ev.GetChanges() {
		if c.GetOp() == messages.Op_OP_MEMBERS_ADD || c.GetOp() == messages.Op_OP_MEMBERS_REMOVE {
			if g.members == nil {
				g.members = map[uint64]uint64{}
			}
			g.members[seq] = g.seq
			return
		}
	}
}

// resume takes up group after a copy that stopped: ev, its event at seq
// where it comes from, is dup at stream sequence dupSeq in the journal
// appended to. The events after ev name at most ev's members event, or
// ev itself, as the latest that changed members.
func (rn *renumbering) resume(group string, seq uint64, ev *messages.Event, dupSeq uint64, dup *messages.Event) {
	g := &appended{group: group, seq: dupSeq}
	if ev.GetMembersSeq() != 0 {
		g.members = map[uint64]uint64{ev.GetMembersSeq(): dup.GetMembersSeq()}
	}
	g.follow(seq, ev)
	rn.groups[group] = g
}

// rollBack removes what an import appended, newest first, also when ctx
// ended: an import stopped halfway must not leave half of it behind.
func rollBack(ctx context.Context, j Importer, done []appended) error {
	ctx = context.WithoutCancel(ctx)
	for i := len(done) - 1; i >= 0; i-- {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := j.Remove(rctx, done[i].group, done[i].seq)
		cancel()
		if err != nil {
			return fmt.Errorf("removing the events it appended failed, %d of them remain (tally-node journal history GROUP shows them): %w", i+1, err)
		}
	}
	return nil
}
