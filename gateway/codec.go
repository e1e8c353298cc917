package gateway

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/messages"
)

// ContentTypeProtobuf in a request's Content-Type header selects protobuf
// payloads for the request and its reply.
const ContentTypeProtobuf = "application/protobuf"

// format is a payload encoding.
type format int

const (
	formatJSON format = iota
	formatProto
)

// requestFields are the fields of any request, as decoded from either
// format, before they become a command.
type requestFields struct {
	group, key, requestID, after string
	value                        int64
	hasValue                     bool // JSON: value was given, and not null
	counters                     map[string]int64
	list                         []string // keyList or userIDs
	fromSeq                      uint64
	limit32                      uint32
	unknown                      []byte // protobuf: the fields kept as unknown
}

// A slot is the field of requestFields a request's field goes to.
type slot uint8

const (
	slotNone slot = iota
	slotGroup
	slotKey
	slotValue // an int64, required in JSON
	slotRequestID
	slotCounters
	slotList
	slotAfter
	slotListLimit // members.list's limit in JSON: an int64 of 1..MaxListMembers
	slotLimit32
	slotFromSeq
)

// command returns the command of operation o of user that r asks for.
func (r *requestFields) command(o op, user string) command {
	c := command{group: r.group}
	switch o {
	case opSet:
		c.change = &messages.Change{Op: messages.Op_OP_SET, Counters: r.counters, RequestId: r.requestID, User: user}
	case opIncrease:
		c.change = &messages.Change{Op: messages.Op_OP_INCREASE, Key: r.key, Amount: r.value, RequestId: r.requestID, User: user}
	case opDecrease:
		c.change = &messages.Change{Op: messages.Op_OP_DECREASE, Key: r.key, Amount: r.value, RequestId: r.requestID, User: user}
	case opGet:
		c.get = &messages.GetRequest{GroupId: r.group, KeyList: r.list}
		r.keepUnknown(c.get)
	case opMembersAdd:
		c.change = &messages.Change{Op: messages.Op_OP_MEMBERS_ADD, Members: r.list, RequestId: r.requestID}
	case opMembersRemove:
		c.change = &messages.Change{Op: messages.Op_OP_MEMBERS_REMOVE, Members: r.list, RequestId: r.requestID}
	case opMembersList:
		c.list = &messages.ListMembersRequest{GroupId: r.group, After: r.after, Limit: r.limit32}
		r.keepUnknown(c.list)
	default:
		c.change = &messages.Change{Op: messages.Op_OP_DELETE, Keys: r.list, RequestId: r.requestID, User: user}
	}
	return c
}

// keepUnknown gives m the unknown fields of its protobuf payload, as
// proto.Unmarshal would have.
func (r *requestFields) keepUnknown(m proto.Message) {
	if len(r.unknown) > 0 {
		m.ProtoReflect().SetUnknown(r.unknown)
	}
}

// encode marshals a reply, an error body or an update. The JSON is written
// by hand: protojson would write int64 values as strings.
func encode(f format, m proto.Message) []byte { return appendEncoded(nil, f, m) }

// appendEncoded appends the encoding of m to b.
func appendEncoded(b []byte, f format, m proto.Message) []byte {
	if c, ok := m.(*messages.ChangeReply); ok && f == formatProto {
		return appendChangeReply(b, c) // the commonest reply, without reflection
	}
	if f == formatProto {
		b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
		if err != nil {
			// Marshalling our own well-formed messages cannot fail.
			panic(fmt.Sprintf("gateway: marshal %T: %v", m, err))
		}
		return b
	}
	if b == nil {
		b = make([]byte, 0, 128)
	}
	return AppendJSON(b, m)
}

// replyBufs hold replies while they are published: the connection copies
// a message before PublishMsg returns.
var replyBufs = sync.Pool{New: func() any { return new([]byte) }}

// AppendJSON appends the contract's JSON form of a reply, error body or
// update to b.
func AppendJSON(b []byte, m proto.Message) []byte {
	switch m := m.(type) {
	case *messages.HistoryReply:
		return appendHistory(b, m) // whole: it is not built by hand
	case *messages.SetReply:
		b = appendField(b, '{', "groupID")
		b = appendString(b, m.GetGroupId())
		b = appendCounters(b, m.GetCounters())
	case *messages.GetReply:
		b = appendField(b, '{', "groupID")
		b = appendString(b, m.GetGroupId())
		b = appendCounters(b, m.GetCounters())
		b = appendField(b, ',', "seq")
		b = strconv.AppendUint(b, m.GetSeq(), 10)
		if m.GetMembers() {
			b = append(b, `,"members":true`...)
		}
	case *messages.MembersReply:
		b = appendField(b, '{', "groupID")
		b = appendString(b, m.GetGroupId())
		b = appendStrings(b, "userIDs", m.GetUserIds())
	case *messages.ListMembersReply:
		b = appendField(b, '{', "groupID")
		b = appendString(b, m.GetGroupId())
		b = appendStrings(b, "userIDs", m.GetUserIds())
		if m.GetNext() != "" {
			b = appendField(b, ',', "next")
			b = appendString(b, m.GetNext())
		}
	case *messages.ChangeReply:
		b = appendField(b, '{', "groupID")
		b = appendString(b, m.GetGroupId())
		b = appendField(b, ',', "key")
		b = appendString(b, m.GetKey())
		b = appendField(b, ',', "value")
		b = strconv.AppendInt(b, m.GetValue(), 10)
	case *messages.DeleteReply:
		b = appendField(b, '{', "groupID")
		b = appendString(b, m.GetGroupId())
	case *messages.Error:
		b = appendField(b, '{', "code")
		b = strconv.AppendInt(b, int64(m.GetCode()), 10)
		b = appendField(b, ',', "message")
		b = appendString(b, m.GetMessage())
	case *messages.Update:
		b = appendField(b, '{', "groupID")
		b = appendString(b, m.GetGroupId())
		b = appendField(b, ',', "key")
		b = appendString(b, m.GetKey())
		b = appendField(b, ',', "value")
		b = strconv.AppendInt(b, m.GetValue(), 10)
		b = appendField(b, ',', "seq")
		b = strconv.AppendUint(b, m.GetSeq(), 10)
		if m.GetDeleted() {
			b = append(b, `,"deleted":true`...)
		}
	default:
		panic(fmt.Sprintf("gateway: no JSON form for %T", m))
	}
	return append(b, '}')
}

func appendField(b []byte, sep byte, name string) []byte {
	b = append(b, sep, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendStrings appends a field holding a list of strings, [] when empty.
func appendStrings(b []byte, name string, list []string) []byte {
	b = appendField(b, ',', name)
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

func appendCounters(b []byte, counters map[string]int64) []byte {
	b = appendField(b, ',', "counters")
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(counters)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, counters[k], 10)
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
