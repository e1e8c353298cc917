package journal

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/messages"
)

// FuzzDecodeEvent checks that decodeEvent gives proto.Unmarshal's result
// for any bytes: the same event, or an error where it errs; and that an
// event it reads, encoded again by encodeEvent, reads back the same. The
// seeds are events as encodeEvent writes them, encodings the fast path
// must hand over, and in testdata/fuzz/FuzzDecodeEvent events the service
// never writes (a key with NUL, escapes, 21 keys, a bad user ID), which
// decode all the same: the tools must read them to report them. `go test
// -fuzz FuzzDecodeEvent ./journal` explores beyond them.
func FuzzDecodeEvent(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		b, err := encodeEvent(randomEvent(rng))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	full := &messages.Event{}
	populate(f, full.ProtoReflect())
	b, err := encodeEvent(full)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	state := protowire.AppendTag(nil, eventState, protowire.BytesType)
	state = protowire.AppendBytes(state, protowire.AppendVarint(protowire.AppendTag(nil, stateVersion, protowire.VarintType), 7))
	for _, seed := range [][]byte{
		nil,
		append(b, 0x78, 0x01), // unknown field 15
		append(append([]byte{}, state...), state...),                                            // a state twice: merged
		protowire.AppendVarint(protowire.AppendTag(nil, eventChanges, protowire.VarintType), 1), // wrong wire type
		{0x1a, 0x03, 0x2a, 0x01, 0xff},                                                          // a change's key not UTF-8
		{0x22, 0x04, 0x0a, 0x02, 0x12, 0x00},                                                    // an entry without key, value 0
		{0x22, 0x05, 0x0a, 0x03, 0x0a, 0x01, 'k'},                                               // an entry with a key only
		b[:len(b)-1], // truncated
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := new(messages.Event)
		wantErr := proto.Unmarshal(data, want)
		got, err := decodeEvent(data)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeEvent error %v, proto.Unmarshal error %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("decodeEvent differs from proto.Unmarshal (-proto +decodeEvent):\n%s", diff)
		}
		b, err := encodeEvent(got)
		if err != nil {
			t.Fatalf("encodeEvent of a decoded event: %v", err)
		}
		again, err := decodeEvent(b)
		if err != nil {
			t.Fatalf("decodeEvent of encodeEvent's %x: %v", b, err)
		}
		if diff := cmp.Diff(got, again, protocmp.Transform(), protocmp.IgnoreUnknown()); diff != "" {
			t.Fatalf("encoded again, the event differs (-decoded +again):\n%s", diff)
		}
	})
}

// TestDecodeEventFastPath checks that the events encodeEvent writes are
// read without proto.Unmarshal, which FuzzDecodeEvent alone would not see.
func TestDecodeEventFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		ev := randomEvent(rng)
		b, err := encodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got := new(messages.Event)
		if err := readEvent(b, got); err != nil {
			t.Fatalf("readEvent(%x) = %v; want the fast path to read encodeEvent's output", b, err)
		}
		if diff := cmp.Diff(ev, got, protocmp.Transform()); diff != "" {
			t.Fatalf("readEvent differs (-sent +read):\n%s", diff)
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	data, err := encodeEvent(benchEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(data, new(messages.Event)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEvent(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
