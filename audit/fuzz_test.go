package audit

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// fuzzMaxLine is the line bound FuzzExportLine checks with: small, so
// that the fuzzer reaches past it.
const fuzzMaxLine = 4096

// FuzzExportLine reads any bytes as an export, as Import's check does
// before it appends. What it accepts has no line over the bound, only
// IDs and keys of the contract, each group's events naming the one before
// as their predecessor, and lines that encode and decode to the same
// event. testdata/fuzz/FuzzExportLine holds hostile exports: group IDs
// with wildcards, dots, spaces, escapes or 49 bytes, a key with NUL, an
// altered prevSeq or state, a long line.
func FuzzExportLine(f *testing.F) {
	f.Add([]byte(goodExport(f, "a", "b")))
	f.Add([]byte(membersExport(f)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var checked bytes.Buffer
		if err := check(bytes.NewReader(data), &checked, fuzzMaxLine); err != nil {
			return
		}
		lines := newLineReader(&checked, fuzzMaxLine)
		last := map[string]uint64{}
		for {
			line, err := lines.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil || len(line) > fuzzMaxLine {
				t.Fatalf("a checked line (%d bytes) does not read back: %v", len(line), err)
			}
			x, ev, err := decodeLine(line)
			if err != nil {
				t.Fatalf("a checked line does not decode: %v\n%s", err, line)
			}
			checkContract(t, x.Group, ev)
			if prev, ok := last[x.Group]; ok && ev.GetPrevSeq() != prev {
				t.Fatalf("group %q: event %d names %d as its predecessor, not %d", x.Group, x.StreamSeq, ev.GetPrevSeq(), prev)
			}
			last[x.Group] = x.StreamSeq
			again, err := encodeLine(x.Group, x.StreamSeq, ev)
			if err != nil {
				t.Fatalf("a checked line does not encode: %v", err)
			}
			y, ev2, err := decodeLine(bytes.TrimSpace(again))
			if err != nil {
				t.Fatalf("a re-encoded line does not decode: %v\n%s", err, again)
			}
			if y.Group != x.Group || y.StreamSeq != x.StreamSeq {
				t.Fatalf("re-encoded: group %q at %d, want %q at %d", y.Group, y.StreamSeq, x.Group, x.StreamSeq)
			}
			if diff := cmp.Diff(ev, ev2, protocmp.Transform()); diff != "" {
				t.Fatalf("re-encoded event differs (-read +re-encoded):\n%s", diff)
			}
		}
	})
}

// FuzzCheckEvent decodes any bytes as a group's stored event, as the
// tools read the journal, and takes it as the group's first: what the
// chain accepts has IDs and keys of the contract and encodes and decodes
// to the same event, and the check of a whole event (Verify) and the one
// change by change (History) agree. testdata/fuzz/FuzzCheckEvent holds
// hostile events and group IDs.
func FuzzCheckEvent(f *testing.F) {
	for _, ev := range []*messages.Event{
		event(0, map[string]int64{"k": 1}, set(1, map[string]int64{"k": 1})),
		event(4, map[string]int64{"k": 3}, increase(2, "k", 2, 3)),
		membersEvent(0, 0, 1, []string{"alice", "bob"}, nil),
	} {
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("g", b)
	}
	f.Fuzz(func(t *testing.T, group string, data []byte) {
		ev, err := journal.Stored{Group: group, Seq: 1, Data: data}.Event()
		if err != nil {
			return
		}
		whole := actors.NewChain(group).Follow(1, ev, nil)
		changes := 0
		each := actors.NewChain(group).Follow(1, ev, func(*messages.Change, *messages.GroupState, *messages.GroupState) error {
			changes++
			return nil
		})
		if (whole == nil) != (each == nil) {
			t.Fatalf("the whole event's check says %v, the check change by change %v", whole, each)
		}
		if whole != nil {
			return
		}
		if changes != len(ev.GetChanges()) {
			t.Fatalf("History saw %d changes of %d", changes, len(ev.GetChanges()))
		}
		checkContract(t, group, ev)
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatalf("an accepted event does not encode: %v", err)
		}
		again, err := journal.Stored{Group: group, Seq: 1, Data: b}.Event()
		if err != nil {
			t.Fatalf("an accepted event does not decode once encoded: %v", err)
		}
		if diff := cmp.Diff(ev, again, protocmp.Transform(), protocmp.IgnoreUnknown()); diff != "" {
			t.Fatalf("re-encoded event differs (-read +re-encoded):\n%s", diff)
		}
	})
}

// checkContract fails t unless every ID and key of group's event is one
// the contract allows, each checked on its own.
func checkContract(t *testing.T, group string, ev *messages.Event) {
	t.Helper()
	if err := contract.CheckGroupID(group); err != nil {
		t.Fatalf("accepted: %v", err)
	}
	for _, c := range ev.GetChanges() {
		keys := c.GetKeys()
		switch c.GetOp() {
		case messages.Op_OP_SET:
			for k := range c.GetCounters() {
				keys = append(keys, k)
			}
		case messages.Op_OP_INCREASE, messages.Op_OP_DECREASE:
			keys = append(keys, c.GetKey())
		case messages.Op_OP_DELETE:
		case messages.Op_OP_MEMBERS_ADD, messages.Op_OP_MEMBERS_REMOVE:
			if len(c.GetMembers()) == 0 {
				t.Fatalf("accepted a members change of no user")
			}
			for i, u := range c.GetMembers() {
				if err := contract.CheckUserID(u); err != nil {
					t.Fatalf("accepted a member: %v", err)
				}
				if i > 0 && c.GetMembers()[i-1] >= u {
					t.Fatalf("accepted members out of order: %q", c.GetMembers())
				}
			}
		default:
			t.Fatalf("accepted operation %v", c.GetOp())
		}
		if len(c.GetMembers()) > 0 && c.GetOp() != messages.Op_OP_MEMBERS_ADD && c.GetOp() != messages.Op_OP_MEMBERS_REMOVE {
			t.Fatalf("accepted members on a %v", c.GetOp())
		}
		for _, k := range keys {
			if err := contract.CheckKey(k); err != nil {
				t.Fatalf("accepted: %v", err)
			}
		}
		if err := contract.CheckRequestID(c.GetRequestId()); err != nil {
			t.Fatalf("accepted: %v", err)
		}
		if u := c.GetUser(); u != "" {
			if err := contract.CheckUserID(u); err != nil {
				t.Fatalf("accepted: %v", err)
			}
		}
	}
	if n := len(ev.GetState().GetCounters()); n > contract.MaxKeys {
		t.Fatalf("accepted a state of %d keys", n)
	}
	for k := range ev.GetState().GetCounters() {
		if err := contract.CheckKey(k); err != nil {
			t.Fatalf("accepted a state: %v", err)
		}
	}
}

// membersEvent is an event of one members change at change seq, after
// the event at prev, naming membersSeq as the last that changed members:
// it adds add, or removes remove, from a group whose members were
// exactly the removed.
func membersEvent(prev, membersSeq, seq uint64, add, remove []string) *messages.Event {
	c := &messages.Change{Seq: seq, Op: messages.Op_OP_MEMBERS_ADD, Members: add, RequestId: "m"}
	st := &messages.GroupState{Counters: map[string]int64{}, Version: seq, MembersOnly: true,
		MemberCount: uint64(len(add)), MembersDigest: membership.DigestOf(add)}
	if remove != nil {
		c = &messages.Change{Seq: seq, Op: messages.Op_OP_MEMBERS_REMOVE, Members: remove}
		st.MemberCount, st.MembersDigest = 0, 0
	}
	return &messages.Event{PrevSeq: prev, MembersSeq: membersSeq, UnixNano: 1_700_000_000_000_000_000, Changes: []*messages.Change{c}, State: st}
}

// membersExport is an export of a group whose members are added, then a
// counter changed, then the members removed.
func membersExport(tb testing.TB) string {
	tb.Helper()
	inc := event(1, map[string]int64{"k": 1}, increase(2, "k", 1, 1))
	inc.State.MembersOnly, inc.State.MemberCount, inc.State.MembersDigest = true, 2, membership.DigestOf([]string{"alice", "bob"})
	inc.MembersSeq = 1
	remove := membersEvent(2, 1, 3, nil, []string{"alice", "bob"})
	remove.State.Counters = map[string]int64{"k": 1}
	var b strings.Builder
	for i, ev := range []*messages.Event{membersEvent(0, 0, 1, []string{"alice", "bob"}, nil), inc, remove} {
		line, err := encodeLine("m", uint64(i+1), ev)
		if err != nil {
			tb.Fatal(err)
		}
		b.Write(line)
	}
	return b.String()
}

// TestMembersExport: the export of a group with members passes the
// import's check; altered, it does not.
func TestMembersExport(t *testing.T) {
	good := membersExport(t)
	if err := check(strings.NewReader(good), io.Discard, MaxLine); err != nil {
		t.Fatalf("check of a good export with members: %v", err)
	}
	for name, bad := range map[string]string{
		"members out of order": strings.Replace(good, `"members":["alice","bob"]`, `"members":["bob","alice"]`, 1),
		"a removed non-member": strings.Replace(good, `"members":["alice","bob"]}],"state":{"counters":{"k":"1"},"version":"3"`, `"members":["alice","carol"]}],"state":{"counters":{"k":"1"},"version":"3"`, 1),
		"wrong members link":   strings.Replace(good, `"membersSeq":"1"`, `"membersSeq":"2"`, 1),
		"wrong count":          strings.Replace(good, `"memberCount":"2"`, `"memberCount":"3"`, 1),
		"user with a dot":      strings.Replace(good, `"alice"`, `"al.ice"`, 1),
	} {
		if bad == good {
			t.Fatalf("%s: the alteration did not apply", name)
		}
		if err := check(strings.NewReader(bad), io.Discard, MaxLine); err == nil {
			t.Errorf("%s: check accepted\n%s", name, bad)
		}
	}
}
