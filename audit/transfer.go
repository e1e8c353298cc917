package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"

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

// Export writes the events of groups (every group when there is none) to
// w as JSON lines, each group's in commit order, and returns how many. An
// event that does not decode stops it: verify and repair first.
func Export(ctx context.Context, j Journal, groups []string, w io.Writer) (int, error) {
	if len(groups) == 0 {
		groups = []string{""}
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	n := 0
	for _, g := range groups {
		err := j.Scan(ctx, g, 0, func(s journal.Stored) error {
			ev, err := s.Event()
			if err != nil {
				return fmt.Errorf("%w: group %s, stream sequence %d: %w", ErrBadEvent, s.Group, s.Seq, err)
			}
			b, err := protojson.Marshal(ev)
			if err != nil {
				return err
			}
			n++
			return enc.Encode(Exported{Group: s.Group, StreamSeq: s.Seq, Event: b})
		})
		if err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// Appender is what Import writes to: a *journal.Journal.
type Appender interface {
	Append(ctx context.Context, group string, expected uint64, ev *messages.Event) (uint64, error)
}

// Import appends the events of an export read from r, each group's after
// the one before it (the events name their new predecessors; a group
// whose export starts after events its journal no longer kept keeps
// saying so), and returns how many. It checks each group's chain as
// Verify does and stops at the first event that does not follow. Importing into a journal that holds
// one of the groups already fails at that group's first event: each
// append is fenced by the group's last one.
func Import(ctx context.Context, j Appender, r io.Reader) (int, error) {
	dec := json.NewDecoder(r)
	last := map[string]uint64{}
	chains := map[string]*chain{}
	n := 0
	for {
		var x Exported
		err := dec.Decode(&x)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("import: line %d: %w", n+1, err)
		}
		if x.Group == "" || len(x.Event) == 0 {
			return n, fmt.Errorf("import: line %d: want {\"groupID\",\"streamSeq\",\"event\"}", n+1)
		}
		var ev messages.Event
		if err := protojson.Unmarshal(x.Event, &ev); err != nil {
			return n, fmt.Errorf("import: line %d: event: %w", n+1, err)
		}
		ch, seen := chains[x.Group]
		if !seen {
			ch = &chain{}
			chains[x.Group] = ch
		}
		if why := ch.follow(!seen, &ev); why != "" {
			return n, fmt.Errorf("import: line %d, group %s: %w: %s", n+1, x.Group, ErrBadEvent, why)
		}
		prev := last[x.Group]
		if seen {
			ev.PrevSeq = prev
		}
		seq, err := j.Append(ctx, x.Group, prev, &ev)
		if err != nil {
			return n, fmt.Errorf("import: line %d, group %s: %w", n+1, x.Group, err)
		}
		last[x.Group] = seq
		n++
	}
}
