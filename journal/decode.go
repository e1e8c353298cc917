package journal

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/messages"
)

// errNotCanonical makes decodeEvent hand an encoding over to
// proto.Unmarshal.
var errNotCanonical = errors.New("not an encoding decodeEvent reads itself")

// decodeEvent decodes an event as proto.Unmarshal does. It reads what
// encodeEvent writes without reflection (replay and activation spent half
// their time in proto.Unmarshal's map decoding) and leaves anything else
// (unknown fields, a state given twice, wrong wire types, invalid UTF-8,
// truncated data) to proto.Unmarshal, so its result is proto.Unmarshal's
// for every input; decode_test.go fuzzes that.
func decodeEvent(data []byte) (*messages.Event, error) {
	ev := new(messages.Event)
	if readEvent(data, ev) == nil {
		return ev, nil
	}
	ev = new(messages.Event)
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// reader consumes protobuf fields; the first malformed or unexpected one
// sets bad, after which every read returns zero values and ends the loops.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) more() bool { return len(r.b) > 0 && !r.bad }

// fail marks the input as one for proto.Unmarshal.
func (r *reader) fail() { r.bad, r.b = true, nil }

func (r *reader) tag() (protowire.Number, protowire.Type) {
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		r.fail()
		return 0, 0
	}
	r.b = r.b[n:]
	return num, typ
}

func (r *reader) varint() uint64 {
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) fixed64() uint64 {
	v, n := protowire.ConsumeFixed64(r.b)
	if n < 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		r.fail()
		return nil
	}
	r.b = r.b[n:]
	return v
}

// text reads a string field, which proto3 requires to be UTF-8.
func (r *reader) text() string {
	v := r.bytes()
	if !utf8.Valid(v) {
		r.fail()
		return ""
	}
	return string(v)
}

// readEvent reads b into ev, or gives errNotCanonical.
func readEvent(b []byte, ev *messages.Event) error {
	r := &reader{b: b}
	for r.more() {
		switch num, typ := r.tag(); {
		case num == eventPrevSeq && typ == protowire.VarintType:
			ev.PrevSeq = r.varint()
		case num == eventUnixNano && typ == protowire.VarintType:
			ev.UnixNano = int64(r.varint())
		case num == eventChanges && typ == protowire.BytesType:
			c := new(messages.Change)
			if !readChange(r.bytes(), c) {
				r.fail()
			}
			ev.Changes = append(ev.Changes, c)
		case num == eventState && typ == protowire.BytesType && ev.State == nil:
			ev.State = new(messages.GroupState)
			if !readState(r.bytes(), ev.State) {
				r.fail()
			}
		case num == eventMembers && typ == protowire.VarintType:
			ev.MembersSeq = r.varint()
		default:
			r.fail()
		}
	}
	if r.bad {
		return errNotCanonical
	}
	return nil
}

// readChange, readState and readEntry report whether they could read b.
func readChange(b []byte, c *messages.Change) bool {
	r := &reader{b: b}
	for r.more() {
		switch num, typ := r.tag(); {
		case num == changeSeq && typ == protowire.VarintType:
			c.Seq = r.varint()
		case num == changeOp && typ == protowire.VarintType:
			c.Op = messages.Op(int32(r.varint()))
		case num == changeRequestID && typ == protowire.BytesType:
			c.RequestId = r.text()
		case num == changeCounters && typ == protowire.BytesType:
			if c.Counters == nil {
				c.Counters = map[string]int64{}
			}
			if !readEntry(r.bytes(), c.Counters) {
				r.fail()
			}
		case num == changeKey && typ == protowire.BytesType:
			c.Key = r.text()
		case num == changeAmount && typ == protowire.VarintType:
			c.Amount = int64(r.varint())
		case num == changeValue && typ == protowire.VarintType:
			c.Value = int64(r.varint())
		case num == changeKeys && typ == protowire.BytesType:
			c.Keys = append(c.Keys, r.text())
		case num == changeRequestHash && typ == protowire.Fixed64Type:
			c.RequestHash = r.fixed64()
		case num == changeUser && typ == protowire.BytesType:
			c.User = r.text()
		case num == changeMembers && typ == protowire.BytesType:
			c.Members = append(c.Members, r.text())
		default:
			r.fail()
		}
	}
	return !r.bad
}

func readState(b []byte, s *messages.GroupState) bool {
	r := &reader{b: b}
	for r.more() {
		switch num, typ := r.tag(); {
		case num == stateCounters && typ == protowire.BytesType:
			if s.Counters == nil {
				s.Counters = map[string]int64{}
			}
			if !readEntry(r.bytes(), s.Counters) {
				r.fail()
			}
		case num == stateVersion && typ == protowire.VarintType:
			s.Version = r.varint()
		case num == stateMembersOnly && typ == protowire.VarintType:
			s.MembersOnly = r.varint() != 0
		case num == stateMemberCount && typ == protowire.VarintType:
			s.MemberCount = r.varint()
		case num == stateDigest && typ == protowire.Fixed64Type:
			s.MembersDigest = r.fixed64()
		default:
			r.fail()
		}
	}
	return !r.bad
}

// readEntry reads one map<string, int64> entry into m; a missing key or
// value is the zero value, as in proto.Unmarshal.
func readEntry(b []byte, m map[string]int64) bool {
	r := &reader{b: b}
	var key string
	var value int64
	for r.more() {
		switch num, typ := r.tag(); {
		case num == entryKey && typ == protowire.BytesType:
			key = r.text()
		case num == entryValue && typ == protowire.VarintType:
			value = int64(r.varint())
		default:
			r.fail()
		}
	}
	if !r.bad {
		m[key] = value
	}
	return !r.bad
}
