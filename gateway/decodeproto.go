package gateway

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tallyhq/tally/actors"
)

// A protobuf request is decoded with protowire straight into the fields of
// the command, with what proto.Unmarshal accepts and refuses into the
// request messages of package messages (proto3): a field of an unknown
// number, or of a known number with another wire type, is skipped as
// unknown (and kept in the unknown fields of a request the command holds
// itself); a string must be valid UTF-8; a scalar given twice keeps the
// last; a map entry without its key or value has "" or 0, and a key given
// twice keeps the last entry.

// A protoShape is where the fields of a request message go, by number.
type protoShape struct {
	slots []slot
	// keep: the command holds the request message itself, which keeps the
	// unknown fields as proto.Unmarshal does.
	keep bool
}

// The protobuf shapes of the requests (messages/tally.proto).
var (
	setProto     = protoShape{slots: []slot{1: slotGroup, 2: slotCounters, 3: slotRequestID}}
	changeProto  = protoShape{slots: []slot{1: slotGroup, 2: slotKey, 3: slotValue, 4: slotRequestID}}
	getProto     = protoShape{slots: []slot{1: slotGroup, 2: slotList}, keep: true}
	deleteProto  = protoShape{slots: []slot{1: slotGroup, 2: slotList, 3: slotRequestID}}
	membersProto = protoShape{slots: []slot{1: slotGroup, 2: slotList, 3: slotRequestID}}
	listProto    = protoShape{slots: []slot{1: slotGroup, 2: slotAfter, 3: slotLimit32}, keep: true}
	historyProto = protoShape{slots: []slot{1: slotGroup, 2: slotFromSeq, 3: slotLimit32}, keep: true}
)

// protoShapeOf returns the protobuf shape of operation o's request.
func protoShapeOf(o op) protoShape {
	switch o {
	case opSet:
		return setProto
	case opIncrease, opDecrease:
		return changeProto
	case opGet:
		return getProto
	case opMembersAdd, opMembersRemove:
		return membersProto
	case opMembersList:
		return listProto
	case opHistory:
		return historyProto
	default:
		return deleteProto
	}
}

// What is wrong with a protobuf payload that is refused.
const (
	protoMalformed = "malformed"
	protoUTF8      = "a string field holds invalid UTF-8"
)

// decodeProto decodes the protobuf request data of the given shape into r.
func (r *requestFields) decodeProto(data []byte, shape protoShape) error {
	for b := data; len(b) > 0; {
		num, typ, n := protoTag(b)
		if n < 0 || typ == protowire.EndGroupType {
			return protoError(data, b, protoMalformed)
		}
		b = b[n:]
		s, want := slotNone, protowire.BytesType
		if int(num) < len(shape.slots) {
			s = shape.slots[num]
		}
		switch s {
		case slotValue, slotLimit32, slotFromSeq:
			want = protowire.VarintType
		case slotCounters:
			if r.counters == nil {
				r.counters = make(map[string]int64) // even when the field turns out unknown
			}
		}
		problem := ""
		switch {
		case s == slotNone || typ != want:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 && shape.keep {
				r.unknown = protowire.AppendTag(r.unknown, num, typ)
				r.unknown = append(r.unknown, b[:n]...)
			}
		case want == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			switch s {
			case slotValue:
				r.value = int64(v)
			case slotLimit32:
				r.limit32 = uint32(v)
			default:
				r.fromSeq = v
			}
		default:
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n >= 0 {
				problem = r.bytesField(s, v)
			}
		}
		if n < 0 {
			problem = protoMalformed
		}
		if problem != "" {
			return protoError(data, b, problem)
		}
		b = b[n:]
	}
	return nil
}

// protoTag reads a field's tag as proto.Unmarshal does: a field number
// of 1..2^29-1 and a wire type, or n < 0.
func protoTag(b []byte) (protowire.Number, protowire.Type, int) {
	tag, n := protowire.ConsumeVarint(b)
	if n < 0 || tag>>3 < uint64(protowire.MinValidNumber) || tag>>3 > uint64(protowire.MaxValidNumber) {
		return 0, 0, -1
	}
	return protowire.Number(tag >> 3), protowire.Type(tag & 7), n
}

// protoError refuses data, which went wrong where rest begins.
func protoError(data, rest []byte, problem string) error {
	return fmt.Errorf("%w: protobuf payload: %s at byte %d", actors.ErrInvalidParameter, problem, len(data)-len(rest))
}

// bytesField sets the field of slot s, of wire type bytes, to v, or
// returns what is wrong with it.
func (r *requestFields) bytesField(s slot, v []byte) string {
	if s == slotCounters {
		return r.counterEntry(v)
	}
	if !utf8.Valid(v) {
		return protoUTF8
	}
	switch s {
	case slotGroup:
		r.group = string(v)
	case slotKey:
		r.key = string(v)
	case slotRequestID:
		r.requestID = string(v)
	case slotAfter:
		r.after = string(v)
	case slotList:
		r.list = append(r.list, string(v))
	}
	return ""
}

// counterEntry reads an entry of the counters map (key 1, value 2), or
// returns what is wrong with it.
func (r *requestFields) counterEntry(b []byte) string {
	var key []byte
	var value int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return protoMalformed
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			if key, n = protowire.ConsumeBytes(b); n >= 0 && !utf8.Valid(key) {
				return protoUTF8
			}
		case num == 2 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			value = int64(v)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protoMalformed
		}
		b = b[n:]
	}
	r.counters[string(key)] = value
	return ""
}
