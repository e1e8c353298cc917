package journal

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/tallyhq/tally/messages"
)

// TestEncodeEventEveryField sets every field of an Event and of the
// messages in it, through the schema, so that a field added to
// tally.proto and not to encodeEvent fails here.
func TestEncodeEventEveryField(t *testing.T) {
	ev := &messages.Event{}
	populate(t, ev.ProtoReflect())
	if len(ev.GetChanges()) == 0 || len(ev.GetState().GetCounters()) == 0 || len(ev.GetChanges()[0].GetKeys()) == 0 {
		t.Fatalf("populate left fields empty: %v", ev)
	}
	roundTrip(t, ev)
}

// TestEncodeEventRandom compares encodeEvent with proto.Marshal on random
// events, zero values, negative numbers and empty maps included.
func TestEncodeEventRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { roundTrip(t, randomEvent(rng)) })
	}
	roundTrip(t, &messages.Event{})
}

func TestEncodeEventInvalidUTF8(t *testing.T) {
	bad := "k\xff"
	for name, ev := range map[string]*messages.Event{
		"state key":  {State: &messages.GroupState{Counters: map[string]int64{bad: 1}}},
		"set key":    {Changes: []*messages.Change{{Counters: map[string]int64{bad: 1}}}},
		"key":        {Changes: []*messages.Change{{Key: bad}}},
		"request ID": {Changes: []*messages.Change{{RequestId: bad}}},
		"keys":       {Changes: []*messages.Change{{Keys: []string{"ok", bad}}}},
		"members":    {Changes: []*messages.Change{{Members: []string{"ok", bad}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := proto.Marshal(ev); err == nil {
				t.Fatal("proto.Marshal took invalid UTF-8; this test's premise is wrong")
			}
			if b, err := encodeEvent(ev); !errors.Is(err, errInvalidUTF8) {
				t.Fatalf("encodeEvent = %x, %v; want errInvalidUTF8", b, err)
			}
		})
	}
}

func roundTrip(t *testing.T, ev *messages.Event) {
	t.Helper()
	b, err := encodeEvent(ev)
	if err != nil {
		t.Fatalf("encodeEvent: %v", err)
	}
	if len(b) != proto.Size(ev) || cap(b) != len(b) {
		t.Errorf("encoding is %d bytes (capacity %d), proto.Size says %d", len(b), cap(b), proto.Size(ev))
	}
	got := new(messages.Event)
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	if diff := cmp.Diff(ev, got, protocmp.Transform()); diff != "" {
		t.Fatalf("decoded event differs (-sent +decoded):\n%s", diff)
	}
}

// populate sets every field of m, two entries in maps and lists, with
// values that need long varints.
func populate(t testing.TB, m protoreflect.Message) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for j := range 2 {
				mp.Set(protoreflect.ValueOfString(fmt.Sprintf("key-%d-é", j)).MapKey(), scalar(t, fd.MapValue(), j))
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := range 2 {
				if fd.Message() != nil {
					v := l.NewElement()
					populate(t, v.Message())
					l.Append(v)
				} else {
					l.Append(scalar(t, fd, j+1))
				}
			}
		case fd.Message() != nil:
			populate(t, m.Mutable(fd).Message())
		default:
			m.Set(fd, scalar(t, fd, i+1))
		}
	}
}

// scalar is a value of fd's kind; n = 0 gives a zero number.
func scalar(t testing.TB, fd protoreflect.FieldDescriptor, n int) protoreflect.Value {
	t.Helper()
	switch fd.Kind() {
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(n) * math.MaxUint64 / 7)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(-int64(n) * math.MaxInt64 / 5)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-ü", fd.Name(), n))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(n != 0)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
	}
	t.Fatalf("field %s is a %v, which encodeEvent and this test do not know", fd.FullName(), fd.Kind())
	return protoreflect.Value{}
}

func randomEvent(rng *rand.Rand) *messages.Event {
	num := func() int64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return rng.Int64N(100) - 50
		default:
			return int64(rng.Uint64())
		}
	}
	str := func() string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return fmt.Sprintf("k%d", rng.IntN(1000))
	}
	counters := func() map[string]int64 {
		m := map[string]int64{}
		for range rng.IntN(6) {
			m[str()] = num()
		}
		return m
	}
	ev := &messages.Event{PrevSeq: uint64(num()), UnixNano: num(), MembersSeq: uint64(num())}
	for range rng.IntN(4) {
		c := &messages.Change{
			Seq: uint64(num()), Op: messages.Op(rng.IntN(7)), RequestId: str(),
			Key: str(), Amount: num(), Value: num(), RequestHash: uint64(num()), User: str(),
		}
		if rng.IntN(2) == 0 {
			c.Counters = counters()
		}
		for range rng.IntN(3) {
			c.Keys = append(c.Keys, str())
		}
		for range rng.IntN(3) {
			c.Members = append(c.Members, str())
		}
		ev.Changes = append(ev.Changes, c)
	}
	if rng.IntN(5) > 0 {
		ev.State = &messages.GroupState{Counters: counters(), Version: uint64(num()),
			MembersOnly: rng.IntN(2) == 0, MemberCount: uint64(num()), MembersDigest: uint64(num())}
	}
	return ev
}

// benchEvent is an increase's event in a group of five counters.
var benchEvent = &messages.Event{
	PrevSeq: 123_456, UnixNano: 1_780_000_000_000_000_000,
	Changes: []*messages.Change{{Seq: 42, Op: messages.Op_OP_INCREASE, Key: "likes", Amount: 1, Value: 1_234}},
	State: &messages.GroupState{Version: 42, Counters: map[string]int64{
		"likes": 1_234, "online": 56, "unread": 7, "gifts": 89, "shares": 10,
	}},
}

// BenchmarkEncodeEvent: proto.Marshal against encodeEvent.
func BenchmarkEncodeEvent(b *testing.B) {
	ev := benchEvent
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encodeEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeEvent(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
