package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/messages"
)

// The differential fuzz targets below feed any bytes to the request
// decoders and to the reference decoders of reference_test.go, for each
// operation of a request kind, and require the same decision, the same
// code, and equal commands: equal under protocmp (unknown fields
// included), and nil in the same places (a list or counters absent or
// null, against one given empty). A refusal must also fit in a reply.
// Each starts from the hostile seeds of the kind's FuzzDecode target, and
// from its own in testdata/fuzz, whose outcomes are in seedOutcomes.

// FuzzDiffSetJSON compares the JSON set decoders.
func FuzzDiffSetJSON(f *testing.F) { fuzzDiff(f, formatJSON, opSet) }

// FuzzDiffChangeJSON compares the JSON increase and decrease decoders.
func FuzzDiffChangeJSON(f *testing.F) { fuzzDiff(f, formatJSON, opIncrease, opDecrease) }

// FuzzDiffGetJSON compares the JSON get decoders.
func FuzzDiffGetJSON(f *testing.F) { fuzzDiff(f, formatJSON, opGet) }

// FuzzDiffDeleteJSON compares the JSON delete decoders.
func FuzzDiffDeleteJSON(f *testing.F) { fuzzDiff(f, formatJSON, opDelete) }

// FuzzDiffMembersJSON compares the JSON members.add and members.remove
// decoders.
func FuzzDiffMembersJSON(f *testing.F) { fuzzDiff(f, formatJSON, opMembersAdd, opMembersRemove) }

// FuzzDiffListJSON compares the JSON members.list decoders.
func FuzzDiffListJSON(f *testing.F) { fuzzDiff(f, formatJSON, opMembersList) }

// FuzzDiffHistoryJSON compares the JSON history decoders.
func FuzzDiffHistoryJSON(f *testing.F) { fuzzDiff(f, formatJSON, opHistory) }

// FuzzDiffSetProto compares the protobuf set decoders.
func FuzzDiffSetProto(f *testing.F) { fuzzDiff(f, formatProto, opSet) }

// FuzzDiffChangeProto compares the protobuf increase and decrease
// decoders.
func FuzzDiffChangeProto(f *testing.F) { fuzzDiff(f, formatProto, opIncrease, opDecrease) }

// FuzzDiffGetProto compares the protobuf get decoders.
func FuzzDiffGetProto(f *testing.F) { fuzzDiff(f, formatProto, opGet) }

// FuzzDiffDeleteProto compares the protobuf delete decoders.
func FuzzDiffDeleteProto(f *testing.F) { fuzzDiff(f, formatProto, opDelete) }

// FuzzDiffMembersProto compares the protobuf members.add and
// members.remove decoders.
func FuzzDiffMembersProto(f *testing.F) { fuzzDiff(f, formatProto, opMembersAdd, opMembersRemove) }

// FuzzDiffListProto compares the protobuf members.list decoders.
func FuzzDiffListProto(f *testing.F) { fuzzDiff(f, formatProto, opMembersList) }

// FuzzDiffHistoryProto compares the protobuf history decoders.
func FuzzDiffHistoryProto(f *testing.F) { fuzzDiff(f, formatProto, opHistory) }

func fuzzDiff(f *testing.F, fm format, ops ...op) {
	for name, target := range seedTargets {
		if target.o != ops[0] || target.f != fm || !strings.HasPrefix(name, "FuzzDecode") {
			continue
		}
		dir := filepath.Join("testdata", "fuzz", name)
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			f.Add(readSeed(f, filepath.Join(dir, e.Name())))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range ops {
			checkSameDecoding(t, o, fm, data)
		}
	})
}

// checkSameDecoding checks that data, a request of kind o in format fm,
// decodes as the reference decodes it.
func checkSameDecoding(t *testing.T, o op, fm format, data []byte) {
	t.Helper()
	var got, want any
	var err, wantErr error
	if o == opHistory {
		got, err = decodeHistory(fm, data)
		want, wantErr = refDecodeHistory(fm, data)
	} else {
		got, err = decode(o, fm, "u", data)
		want, wantErr = refDecode(o, fm, "u", data)
	}
	switch {
	case err != nil && wantErr != nil:
		checkRefusal(t, err)
		if code, wantCode := actorsCode(err), actorsCode(wantErr); code != wantCode {
			t.Fatalf("%s %q: refused with code %d (%v), the reference with %d (%v)", opNames[o], data, code, err, wantCode, wantErr)
		}
	case err != nil:
		t.Fatalf("%s %q: refused (%v), the reference accepts it as %v", opNames[o], data, err, want)
	case wantErr != nil:
		t.Fatalf("%s %q: accepted as %v, the reference refuses it (%v)", opNames[o], data, got, wantErr)
	default:
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(command{}), protocmp.Transform()); diff != "" {
			t.Fatalf("%s %q decodes otherwise than the reference (-reference +decoded):\n%s", opNames[o], data, diff)
		}
		if n, wantN := nils(got), nils(want); n != wantN {
			t.Fatalf("%s %q: nil lists and counters %s, the reference's %s", opNames[o], data, n, wantN)
		}
	}
}

// nils names which lists and counters of a decoded command or request
// are nil.
func nils(v any) string {
	var ms []proto.Message
	switch v := v.(type) {
	case command:
		ms = append(ms, v.change, v.get, v.list)
	case proto.Message:
		ms = append(ms, v)
	}
	s := ""
	for _, m := range ms {
		switch m := m.(type) {
		case *messages.Change:
			s += nilMark("counters", m.GetCounters() == nil) + nilMark("keys", m.GetKeys() == nil) + nilMark("members", m.GetMembers() == nil)
		case *messages.GetRequest:
			s += nilMark("keyList", m.GetKeyList() == nil)
		}
	}
	return s
}

func nilMark(name string, isNil bool) string {
	if isNil {
		return name + " nil "
	}
	return name + " set "
}

// BenchmarkDecode decodes a typical request of each kind in each format,
// with the reference decoders and with the decoders in use.
func BenchmarkDecode(b *testing.B) {
	const group, requestID = "room-12345", "req-abcdef-123"
	cases := []struct {
		name string
		o    op
		json string
		msg  proto.Message
	}{
		{"set", opSet, `{"groupID":"room-12345","counters":{"likes":1,"views":20},"requestID":"req-abcdef-123"}`,
			&messages.SetRequest{GroupId: group, Counters: map[string]int64{"likes": 1, "views": 20}, RequestId: requestID}},
		{"increase", opIncrease, `{"groupID":"room-12345","key":"likes","value":1,"requestID":"req-abcdef-123"}`,
			&messages.ChangeRequest{GroupId: group, Key: "likes", Value: 1, RequestId: requestID}},
		{"get", opGet, `{"groupID":"room-12345","keyList":["likes","views"]}`,
			&messages.GetRequest{GroupId: group, KeyList: []string{"likes", "views"}}},
		{"delete", opDelete, `{"groupID":"room-12345","keyList":["likes"],"requestID":"req-abcdef-123"}`,
			&messages.DeleteRequest{GroupId: group, KeyList: []string{"likes"}, RequestId: requestID}},
		{"members.add", opMembersAdd, `{"groupID":"room-12345","userIDs":["alice","bob"],"requestID":"req-abcdef-123"}`,
			&messages.MembersRequest{GroupId: group, UserIds: []string{"alice", "bob"}, RequestId: requestID}},
		{"members.list", opMembersList, `{"groupID":"room-12345","after":"alice","limit":100}`,
			&messages.ListMembersRequest{GroupId: group, After: "alice", Limit: 100}},
		{"history", opHistory, `{"groupID":"room-12345","fromSeq":2,"limit":100}`,
			&messages.HistoryRequest{GroupId: group, FromSeq: 2, Limit: 100}},
	}
	decoders := []struct {
		name   string
		decode func(op, format, string, []byte) (command, error)
		hist   func(format, []byte) (*messages.HistoryRequest, error)
	}{
		{"reference", refDecode, refDecodeHistory},
		{"single-pass", decode, decodeHistory},
	}
	for _, c := range cases {
		pb, err := proto.Marshal(c.msg)
		if err != nil {
			b.Fatal(err)
		}
		for _, fm := range []struct {
			name string
			f    format
			data []byte
		}{{"json", formatJSON, []byte(c.json)}, {"proto", formatProto, pb}} {
			for _, d := range decoders {
				b.Run(c.name+"/"+fm.name+"/"+d.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						var err error
						if c.o == opHistory {
							_, err = d.hist(fm.f, fm.data)
						} else {
							_, err = d.decode(c.o, fm.f, "alice", fm.data)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
