package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/audit"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node"
)

const journalUsage = `usage: tally-node journal <command> [flags] [arguments]

Reads the journal of a node: with NATS embedded, the one in --data (stop
the node first: the tools take its data directory's lock); with --nats-url,
the one on that NATS server or cluster, with the node's credential flags.
Every flag of the node is accepted, and --json prints JSON lines instead of
a table.

commands:
  history GROUP   each change of the group: its sequence, the stream's, the
                  time, the operation, the user, the request ID, and each
                  key's value before and after; --from and --to (a change
                  sequence or an RFC 3339 time), --limit
  at GROUP POINT  the group's counters after change POINT, or at the time
                  POINT (RFC 3339)
  verify          checks every group's chain of events and lists each bad
                  event; exits 1 when there is one
  replay          rebuilds every group from the journal in commit order and
                  prints what it found; --verify compares each group with
                  the running node's (through --nats-url) and lists every
                  difference
  repair GROUP    removes the group's bad events (see verify) after showing
                  them and asking, or with --yes, so that the group loads
                  from its last good event again
  export [GROUP...]
                  writes the events of the groups (all when none) to
                  stdout as JSON lines: to back up, move or inspect
  import          appends the events of an export read from stdin, all
                  or none: it first reads and checks the whole export
                  (lines of at most 256 KiB, each group's chain, every ID
                  and key by the contract), keeping it in a temporary
                  file ($TMPDIR) and each group's last state in memory,
                  then appends, and removes what it appended should an
                  append fail; it refuses a journal that holds events
                  unless --force; then it rebuilds the membership index
  reindex         rebuilds the membership index (which users' sign-ins
                  grant the updates of which members-only groups) from
                  the journal: after a restore of the journal's stream
  reshard --shards N
                  moves a journal of one stream (TALLY_JOURNAL) to N
                  shard streams (TALLY_JOURNAL_0..N-1), every node
                  stopped: it seals the stream, copies each group's
                  events to its shard, checks every group in both, then
                  deletes the stream unless --keep-old; stopped, it goes
                  on when run again. history, at, verify, replay and
                  export read a kept stream with --old

A group ID is 1..48 bytes of printable ASCII without . * > or spaces.
Text from the journal (keys, request IDs, user and group IDs) is shown
with control and format characters escaped (\x1b, \u202e) and a
backslash as \\.

With --nats-url on a node's embedded server, the tools need a user of
account TALLY, where the journal lives: the node's --nats-config declares
account TALLY (as deploy/tally-embedded.conf does) with a user for
operators, users: [{user: tally-admin, password: $TALLY_ADMIN_PASSWORD}],
and the tools get --nats-user tally-admin and $TALLY_NATS_PASSWORD. That
is also how the journal of an embedded cluster is read, through any of
its running servers: a cluster node's data directory holds its share of
a clustered store, which cannot be opened alone.
`

// errBadJournal makes tally-node exit 1 after verify found bad events.
var errBadJournal = errors.New("the journal has bad events")

// usageError is a command line a journal tool cannot run: tally-node
// exits 2 after it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usage(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// journalCommand is one command of tally-node journal.
type journalCommand struct {
	args   string // the positional arguments, for the usage line
	nargs  int    // how many; -1: any
	groups int    // how many of them, first, are group IDs; -1: all
	create bool   // make the journal when there is none
	reads  bool   // only reads: --old reads a reshard's kept stream
	flags  func(fs *flag.FlagSet, o *journalOptions)
	run    func(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error
	// streams, instead of run, works on the journal's streams as they
	// are, a journal or not.
	streams func(ctx context.Context, js jetstream.JetStream, o *journalOptions, args []string, out *output) error
}

// journalOptions are the commands' own flags.
type journalOptions struct {
	json       bool
	from, to   string
	limit      int
	yes        bool
	force      bool
	verify     bool
	progress   bool
	shards     int
	keepOld    bool
	old        bool
	stdin      io.Reader
	progressTo io.Writer
}

var journalCommands = map[string]journalCommand{
	"history": {args: "GROUP", nargs: 1, groups: 1, reads: true, run: runHistory, flags: func(fs *flag.FlagSet, o *journalOptions) {
		fs.StringVar(&o.from, "from", "", "first change: a change sequence or an RFC 3339 time")
		fs.StringVar(&o.to, "to", "", "last change: a change sequence or an RFC 3339 time")
		fs.IntVar(&o.limit, "limit", 0, "at most this many changes (0: all)")
	}},
	"at":     {args: "GROUP SEQ|TIME", nargs: 2, groups: 1, reads: true, run: runAt},
	"verify": {reads: true, run: runVerify},
	"replay": {reads: true, run: runReplay, flags: func(fs *flag.FlagSet, o *journalOptions) {
		fs.BoolVar(&o.verify, "verify", false, "compare every group with the running node's state (with --nats-url: the node must be serving) and list each difference; exits 1 when there is one")
		fs.BoolVar(&o.progress, "progress", isTerminal(o.progressTo), "show a progress bar on stderr (default: when it is a terminal)")
	}},
	"repair": {args: "GROUP", nargs: 1, groups: 1, run: runRepair, flags: func(fs *flag.FlagSet, o *journalOptions) {
		fs.BoolVar(&o.yes, "yes", false, "remove without asking")
	}},
	"export":  {args: "[GROUP...]", nargs: -1, groups: -1, reads: true, run: runExport},
	"reindex": {run: runReindex},
	"reshard": {streams: runReshard, flags: func(fs *flag.FlagSet, o *journalOptions) {
		fs.IntVar(&o.shards, "shards", 0, "how many shard streams, 2..64")
		fs.BoolVar(&o.keepOld, "keep-old", false, "keep the old stream, sealed (nodes ignore it)")
		fs.BoolVar(&o.progress, "progress", isTerminal(o.progressTo), "show a progress bar on stderr (default: when it is a terminal)")
	}},
	"import": {create: true, run: runImport, flags: func(fs *flag.FlagSet, o *journalOptions) {
		fs.BoolVar(&o.force, "force", false, "import into a journal that holds events already (a group it holds fails)")
	}},
}

// runJournal runs tally-node journal with args.
func runJournal(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, journalUsage)
		if len(args) == 0 {
			return usage("journal: a command is missing")
		}
		return flag.ErrHelp
	}
	cmd, ok := journalCommands[args[0]]
	if !ok {
		fmt.Fprint(stderr, journalUsage)
		return usage("journal: unknown command %q", args[0])
	}
	o := &journalOptions{stdin: stdin, progressTo: stderr}
	name := "tally-node journal " + args[0]
	cfg, rest, err := parseFlags(name, args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&o.json, "json", false, "print JSON lines")
		if cmd.reads {
			fs.BoolVar(&o.old, "old", false, "read the journal's one stream that a reshard kept (--keep-old), sealed, instead of its shard streams")
		}
		if cmd.flags != nil {
			cmd.flags(fs, o)
		}
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "usage: %s [flags] %s\n", name, cmd.args)
			fs.PrintDefaults()
		}
	})
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return usageError{err}
	}
	if cmd.nargs >= 0 && len(rest) != cmd.nargs {
		return usage("journal %s: want %s, got %q", args[0], cmd.args, rest)
	}
	groups := rest
	if cmd.groups >= 0 {
		groups = rest[:cmd.groups]
	}
	for _, g := range groups {
		if err := contract.CheckGroupID(g); err != nil {
			return usage("journal %s: %w", args[0], err)
		}
	}
	cfg.node.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: max(cfg.logLevel, slog.LevelWarn)}))
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out := &output{w: stdout, json: o.json}
	run, closeAll, err := cmd.open(octx, cfg.node, o, rest, out)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer closeAll()
	if err := run(ctx); err != nil {
		return err
	}
	return out.flush()
}

// open opens what the command works on: the journal; with --old, the one
// stream a reshard kept; or the journal's streams as they are.
func (cmd journalCommand) open(ctx context.Context, cfg node.Config, o *journalOptions, args []string, out *output) (run func(context.Context) error, closeAll func(), err error) {
	if cmd.streams == nil && !o.old {
		j, closeJournal, err := node.OpenJournal(ctx, cfg, cmd.create)
		return func(ctx context.Context) error { return cmd.run(ctx, j, o, args, out) }, closeJournal, err
	}
	js, closeJS, err := node.OpenJetStream(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if cmd.streams != nil {
		return func(ctx context.Context) error { return cmd.streams(ctx, js, o, args, out) }, closeJS, nil
	}
	j, err := journal.BindKept(ctx, js, journal.DefaultConfig())
	if err != nil {
		closeJS()
		return nil, nil, err
	}
	return func(ctx context.Context) error { return cmd.run(ctx, j, o, args, out) }, func() { j.Close(); closeJS() }, nil
}

// parsePoint reads a change sequence or an RFC 3339 time.
func parsePoint(s string) (seq uint64, t time.Time, err error) {
	if seq, err = strconv.ParseUint(s, 10, 64); err == nil && seq > 0 {
		return seq, time.Time{}, nil
	}
	if t, err = time.Parse(time.RFC3339Nano, s); err == nil {
		return 0, t, nil
	}
	return 0, time.Time{}, fmt.Errorf("%q is neither a change sequence (1, 2, ...) nor an RFC 3339 time (2026-12-01T20:00:00Z)", s)
}

func runHistory(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	f := audit.Filter{Limit: o.limit}
	if o.limit < 0 {
		return usage("--limit %d: want 0 (all) or more", o.limit)
	}
	if o.from != "" {
		seq, t, err := parsePoint(o.from)
		if err != nil {
			return usage("--from: %w", err)
		}
		f.FromSeq, f.From = seq, t
	}
	if o.to != "" {
		seq, t, err := parsePoint(o.to)
		if err != nil {
			return usage("--to: %w", err)
		}
		f.ToSeq, f.To = seq, t
	}
	entries, err := audit.History(ctx, j, args[0], f)
	if err != nil {
		return err
	}
	if err := out.header("SEQ", "STREAM", "TIME", "OP", "USER", "REQUEST", "CHANGES"); err != nil {
		return err
	}
	for _, e := range entries {
		var changes []string
		for _, c := range e.Changes {
			before := show(c.Before)
			if c.Before == nil && e.BeforeUnknown {
				before = "?"
			}
			changes = append(changes, fmt.Sprintf("%s: %s -> %s", c.Key, before, show(c.After)))
		}
		if len(e.Members) > 0 {
			changes = append(changes, strings.Join(e.Members, ","))
		}
		user := e.User
		if user == "" {
			user = "(admin)"
		}
		if err := out.row(e, strconv.FormatUint(e.Seq, 10), strconv.FormatUint(e.StreamSeq, 10),
			e.Time.UTC().Format(time.RFC3339Nano), e.Op, user, e.RequestID, strings.Join(changes, ", ")); err != nil {
			return err
		}
	}
	return nil
}

func show(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func runAt(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	seq, t, err := parsePoint(args[1])
	if err != nil {
		return usageError{err}
	}
	st, err := audit.At(ctx, j, args[0], audit.Point{Seq: seq, Time: t})
	if err != nil {
		return err
	}
	if out.json {
		return out.row(st)
	}
	when := "never changed by then"
	if st.Seq > 0 {
		when = fmt.Sprintf("after change %d, made %s", st.Seq, st.Time.UTC().Format(time.RFC3339Nano))
	}
	if err := out.text("%s %s", st.Group, when); err != nil {
		return err
	}
	if err := out.header("KEY", "VALUE"); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(st.Counters)) {
		if err := out.row(nil, k, strconv.FormatInt(st.Counters[k], 10)); err != nil {
			return err
		}
	}
	return nil
}

func runVerify(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	r, err := audit.Verify(ctx, j, "")
	if err != nil {
		return err
	}
	if out.json {
		if err := out.row(r); err != nil {
			return err
		}
	} else {
		if len(r.Bad) > 0 {
			if err := out.header("GROUP", "STREAM", "REASON"); err != nil {
				return err
			}
			for _, b := range r.Bad {
				if err := out.row(nil, b.Group, strconv.FormatUint(b.StreamSeq, 10), b.Reason); err != nil {
					return err
				}
			}
		}
		if err := out.text("%d groups, %d events, %d bad", r.Groups, r.Events, len(r.Bad)); err != nil {
			return err
		}
	}
	if len(r.Bad) > 0 {
		if err := out.flush(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %d (tally-node journal repair GROUP removes a group's)", errBadJournal, len(r.Bad))
	}
	return nil
}

// replaySummary is what replay prints.
type replaySummary struct {
	Groups       int     `json:"groups"`
	Events       int     `json:"events"`
	Keys         int     `json:"keys"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"eventsPerSecond"`
}

// counting counts the events a replay reads, on a progress bar if any.
type counting struct {
	j      *journal.Journal
	events int
	bar    *progressbar.ProgressBar
}

func (c *counting) Replay(ctx context.Context, fn func(group string, seq uint64, ev *messages.Event) error) error {
	return c.j.Replay(ctx, func(group string, seq uint64, ev *messages.Event) error {
		c.events++
		if c.bar != nil {
			c.bar.Add(1)
		}
		return fn(group, seq, ev)
	})
}

// eventsBar is a progress bar of total events on w, with events/s and
// the time left.
func eventsBar(total uint64, description string, w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"), progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func runReplay(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	start := time.Now()
	c := &counting{j: j}
	if o.progress {
		total, err := j.Events(ctx)
		if err != nil {
			return err
		}
		c.bar = eventsBar(total, "replaying", o.progressTo)
	}
	states, err := actors.Rebuild(ctx, c)
	if c.bar != nil {
		c.bar.Finish()
	}
	if err != nil {
		return fmt.Errorf("replay: %w (tally-node journal verify lists every bad event)", err)
	}
	took := time.Since(start)
	s := replaySummary{Groups: len(states), Events: c.events, Seconds: took.Seconds()}
	for _, st := range states {
		s.Keys += len(st.GetCounters())
	}
	if took > 0 {
		s.EventsPerSec = float64(c.events) / took.Seconds()
	}
	if out.json {
		if err := out.row(s); err != nil {
			return err
		}
	} else if err := out.text("%d groups, %d events, %d keys, in %v (%.0f events/s)", s.Groups, s.Events, s.Keys, took.Round(time.Millisecond), s.EventsPerSec); err != nil {
		return err
	}
	if !o.verify {
		return nil
	}
	diffs, err := compareLive(ctx, j, states)
	if err != nil {
		return err
	}
	for _, d := range diffs {
		if err := out.row(d, d.Group, d.What); err != nil {
			return err
		}
	}
	if len(diffs) > 0 {
		if err := out.flush(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %d groups differ from the running node", errBadJournal, len(diffs))
	}
	return out.text("the running node agrees on every group")
}

// difference is a group whose replayed state is not the running node's.
type difference struct {
	Group string `json:"groupID"`
	What  string `json:"difference"`
}

// compareLive reads every replayed group from the running node (an admin
// get over the journal's connection) and lists those that differ. A
// group written since the replay read it is compared with the journal's
// state at the seq the node answered, so that writes going on meanwhile
// make no difference.
func compareLive(ctx context.Context, j *journal.Journal, states map[string]*messages.GroupState) ([]difference, error) {
	var diffs []difference
	for _, g := range slices.Sorted(maps.Keys(states)) {
		want := states[g]
		live, err := liveGet(ctx, j.Conn(), g)
		if errors.Is(err, nats.ErrNoResponders) {
			return diffs, errors.New("replay --verify: no node answers tally.v1.admin.get here; give --nats-url of a running node's server, with credentials of its journal's account")
		}
		if err != nil {
			return diffs, fmt.Errorf("replay --verify: get %s from the running node: %w", g, err)
		}
		counters, version := want.GetCounters(), want.GetVersion()
		if live.GetSeq() > version {
			st, err := audit.At(ctx, j, g, audit.Point{Seq: live.GetSeq()})
			if err != nil {
				return diffs, fmt.Errorf("replay --verify: %s at %d: %w", g, live.GetSeq(), err)
			}
			counters, version = st.Counters, st.Seq
		}
		switch {
		case live.GetSeq() != version:
			diffs = append(diffs, difference{g, fmt.Sprintf("the node is at change %d, the journal at %d", live.GetSeq(), version)})
		case !maps.Equal(live.GetCounters(), counters):
			diffs = append(diffs, difference{g, fmt.Sprintf("the node has %v, the journal %v at change %d", live.GetCounters(), counters, version)})
		}
	}
	return diffs, nil
}

// liveGet asks the running node for a group's counters, in protobuf.
func liveGet(ctx context.Context, nc *nats.Conn, group string) (*messages.GetReply, error) {
	data, err := proto.Marshal(&messages.GetRequest{GroupId: group})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: "tally.v1.admin.get", Data: data,
		Header: nats.Header{"Content-Type": []string{gateway.ContentTypeProtobuf}}})
	if err != nil {
		return nil, err
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, fmt.Errorf("error %s: %s", code, m.Header.Get(micro.ErrorHeader))
	}
	var r messages.GetReply
	if err := proto.Unmarshal(m.Data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func runRepair(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	group := args[0]
	removed, err := audit.Repair(ctx, j, group, func(bad []audit.Bad) bool {
		if o.yes && out.json {
			return true
		}
		fmt.Fprintf(o.progressTo, "%s: %d bad events; removing them gives up their changes, and the group loads from its last good event:\n", group, len(bad))
		for _, b := range bad {
			fmt.Fprintf(o.progressTo, "  stream sequence %d: %s\n", b.StreamSeq, printable(b.Reason))
		}
		if o.yes {
			return true
		}
		fmt.Fprint(o.progressTo, "remove them? [y/N] ")
		answer, _ := bufio.NewReader(o.stdin).ReadString('\n')
		return strings.EqualFold(strings.TrimSpace(answer), "y") || strings.EqualFold(strings.TrimSpace(answer), "yes")
	})
	if err != nil {
		return err
	}
	for _, b := range removed {
		if err := out.row(b, "removed", strconv.FormatUint(b.StreamSeq, 10), b.Reason); err != nil {
			return err
		}
	}
	if len(removed) == 0 {
		return out.text("%s: nothing removed", group)
	}
	return out.text("%s: removed %d events", group, len(removed))
}

func runExport(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	n, err := audit.Export(ctx, j, args, out.w)
	if err != nil {
		return fmt.Errorf("export: %w (after %d events)", err, n)
	}
	fmt.Fprintf(o.progressTo, "exported %d events\n", n)
	return nil
}

func runImport(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	held, err := j.Events(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("import: %w", err)
	case held > 0 && !o.force:
		return errors.New("import: the journal holds events already; import into an empty one, or give --force to add to it")
	}
	n, err := audit.Import(ctx, j, o.stdin)
	if err != nil {
		return err
	}
	// The groups' members are in the events; sign-in reads them from the
	// index, which the import does not write.
	m, err := reindex(ctx, j)
	if err != nil {
		return fmt.Errorf("imported %d events; %w (run tally-node journal reindex)", n, err)
	}
	if out.json {
		return out.row(map[string]int{"imported": n, "memberships": m})
	}
	return out.text("imported %d events; %d memberships indexed", n, m)
}

// runReindex rebuilds the membership index from the journal: after a
// restore of the journal's stream, say, which leaves the index as it was.
func runReindex(ctx context.Context, j *journal.Journal, o *journalOptions, args []string, out *output) error {
	m, err := reindex(ctx, j)
	if err != nil {
		return err
	}
	if out.json {
		return out.row(map[string]int{"memberships": m})
	}
	return out.text("%d memberships indexed", m)
}

// reindex replaces the membership index with the members the journal's
// events give each group.
func reindex(ctx context.Context, j *journal.Journal) (int, error) {
	_, sets, err := actors.RebuildMembers(ctx, j)
	if err != nil {
		return 0, fmt.Errorf("reindex: %w (tally-node journal verify lists every bad event)", err)
	}
	members := map[string][]string{}
	for group, s := range sets {
		if s != nil && s.Len() > 0 {
			members[group] = s.All()
		}
	}
	idx, err := membership.Bind(ctx, j.JetStream())
	if err != nil {
		return 0, fmt.Errorf("reindex: %w", err)
	}
	n, err := idx.Rebuild(ctx, members)
	if err != nil {
		return n, fmt.Errorf("reindex: %w", err)
	}
	return n, nil
}
