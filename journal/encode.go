package journal

import (
	"errors"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tallyhq/tally/messages"
)

// errInvalidUTF8 is what proto.Marshal refuses too: a proto3 string must be
// valid UTF-8.
var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// Field numbers of messages/tally.proto.
const (
	eventPrevSeq  protowire.Number = 1
	eventUnixNano protowire.Number = 2
	eventChanges  protowire.Number = 3
	eventState    protowire.Number = 4
	eventMembers  protowire.Number = 5

	changeSeq         protowire.Number = 1
	changeOp          protowire.Number = 2
	changeRequestID   protowire.Number = 3
	changeCounters    protowire.Number = 4
	changeKey         protowire.Number = 5
	changeAmount      protowire.Number = 6
	changeValue       protowire.Number = 7
	changeKeys        protowire.Number = 8
	changeRequestHash protowire.Number = 9
	changeUser        protowire.Number = 10
	changeMembers     protowire.Number = 11

	stateCounters    protowire.Number = 1
	stateVersion     protowire.Number = 2
	stateMembersOnly protowire.Number = 3
	stateMemberCount protowire.Number = 4
	stateDigest      protowire.Number = 5

	entryKey   protowire.Number = 1
	entryValue protowire.Number = 2
)

// encodeEvent returns the protobuf encoding of ev, as proto.Marshal would
// write it (map entries in Go's map order, as there), in one allocation and
// without reflection: on the hot path proto.Marshal spent most of its time
// walking the state's map through package reflect. encode_test.go checks
// that proto.Unmarshal reads back every field of every message involved,
// so a field added to the schema and not here fails the tests.
func encodeEvent(ev *messages.Event) ([]byte, error) { return appendEvent(nil, ev) }

// appendEvent appends the encoding of ev to b, growing it at most once.
func appendEvent(b []byte, ev *messages.Event) ([]byte, error) {
	n := varintSize(eventPrevSeq, ev.GetPrevSeq()) + varintSize(eventUnixNano, uint64(ev.GetUnixNano()))
	for _, c := range ev.GetChanges() {
		if !validChange(c) {
			return nil, errInvalidUTF8
		}
		n += protowire.SizeTag(eventChanges) + protowire.SizeBytes(changeSize(c))
	}
	s := ev.GetState()
	sn, valid := countersSize(stateCounters, s.GetCounters())
	if !valid {
		return nil, errInvalidUTF8
	}
	sn += varintSize(stateVersion, s.GetVersion()) + membersSize(s)
	if s != nil {
		n += protowire.SizeTag(eventState) + protowire.SizeBytes(sn)
	}
	n += varintSize(eventMembers, ev.GetMembersSeq())

	if b == nil {
		b = make([]byte, 0, n) // exactly: encode_test.go checks n
	} else {
		b = slices.Grow(b, n)
	}
	b = appendVarint(b, eventPrevSeq, ev.GetPrevSeq())
	b = appendVarint(b, eventUnixNano, uint64(ev.GetUnixNano()))
	for _, c := range ev.GetChanges() {
		b = protowire.AppendTag(b, eventChanges, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(changeSize(c)))
		b = appendChange(b, c)
	}
	if s != nil {
		b = protowire.AppendTag(b, eventState, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sn))
		b = appendCounters(b, stateCounters, s.GetCounters())
		b = appendVarint(b, stateVersion, s.GetVersion())
		b = appendMembers(b, s)
	}
	return appendVarint(b, eventMembers, ev.GetMembersSeq()), nil
}

// membersSize and appendMembers write a state's members fields.
func membersSize(s *messages.GroupState) int {
	n := varintSize(stateMemberCount, s.GetMemberCount())
	if s.GetMembersOnly() {
		n += varintSize(stateMembersOnly, 1)
	}
	if s.GetMembersDigest() != 0 {
		n += protowire.SizeTag(stateDigest) + protowire.SizeFixed64()
	}
	return n
}

func appendMembers(b []byte, s *messages.GroupState) []byte {
	if s.GetMembersOnly() {
		b = appendVarint(b, stateMembersOnly, 1)
	}
	b = appendVarint(b, stateMemberCount, s.GetMemberCount())
	if d := s.GetMembersDigest(); d != 0 {
		b = protowire.AppendTag(b, stateDigest, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, d)
	}
	return b
}

// validChange reports whether every string of c is valid UTF-8, which
// proto3 requires and proto.Marshal checks.
func validChange(c *messages.Change) bool {
	if _, ok := countersSize(changeCounters, c.GetCounters()); !ok {
		return false
	}
	if !utf8.ValidString(c.GetRequestId()) || !utf8.ValidString(c.GetKey()) || !utf8.ValidString(c.GetUser()) {
		return false
	}
	for _, k := range c.GetKeys() {
		if !utf8.ValidString(k) {
			return false
		}
	}
	for _, u := range c.GetMembers() {
		if !utf8.ValidString(u) {
			return false
		}
	}
	return true
}

func appendChange(b []byte, c *messages.Change) []byte {
	b = appendVarint(b, changeSeq, c.GetSeq())
	b = appendVarint(b, changeOp, uint64(c.GetOp()))
	b = appendString(b, changeRequestID, c.GetRequestId())
	b = appendCounters(b, changeCounters, c.GetCounters())
	b = appendString(b, changeKey, c.GetKey())
	b = appendVarint(b, changeAmount, uint64(c.GetAmount()))
	b = appendVarint(b, changeValue, uint64(c.GetValue()))
	for _, k := range c.GetKeys() {
		b = protowire.AppendTag(b, changeKeys, protowire.BytesType)
		b = protowire.AppendString(b, k)
	}
	if h := c.GetRequestHash(); h != 0 {
		b = protowire.AppendTag(b, changeRequestHash, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, h)
	}
	b = appendString(b, changeUser, c.GetUser())
	for _, u := range c.GetMembers() {
		b = protowire.AppendTag(b, changeMembers, protowire.BytesType)
		b = protowire.AppendString(b, u)
	}
	return b
}

func changeSize(c *messages.Change) int {
	n, _ := countersSize(changeCounters, c.GetCounters())
	n += varintSize(changeSeq, c.GetSeq()) +
		varintSize(changeOp, uint64(c.GetOp())) +
		stringSize(changeRequestID, c.GetRequestId()) +
		stringSize(changeKey, c.GetKey()) +
		varintSize(changeAmount, uint64(c.GetAmount())) +
		varintSize(changeValue, uint64(c.GetValue()))
	for _, k := range c.GetKeys() {
		n += protowire.SizeTag(changeKeys) + protowire.SizeBytes(len(k))
	}
	if c.GetRequestHash() != 0 {
		n += protowire.SizeTag(changeRequestHash) + protowire.SizeFixed64()
	}
	for _, u := range c.GetMembers() {
		n += protowire.SizeTag(changeMembers) + protowire.SizeBytes(len(u))
	}
	return n + stringSize(changeUser, c.GetUser())
}

// A map<string, int64> is a repeated message of key (1) and value (2);
// proto.Marshal writes both fields of every entry, zero or not.
func appendCounters(b []byte, num protowire.Number, m map[string]int64) []byte {
	for k, v := range m {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entrySize(k, v)))
		b = protowire.AppendTag(b, entryKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, entryValue, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v))
	}
	return b
}

// countersSize also reports whether every key is valid UTF-8.
func countersSize(num protowire.Number, m map[string]int64) (n int, valid bool) {
	valid = true
	for k, v := range m {
		n += protowire.SizeTag(num) + protowire.SizeBytes(entrySize(k, v))
		valid = valid && utf8.ValidString(k)
	}
	return n, valid
}

func entrySize(k string, v int64) int {
	return protowire.SizeTag(entryKey) + protowire.SizeBytes(len(k)) +
		protowire.SizeTag(entryValue) + protowire.SizeVarint(uint64(v))
}

// appendVarint and appendString leave out zero values, as proto3 does for
// fields without presence.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func varintSize(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func stringSize(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}
