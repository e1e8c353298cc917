package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
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

// The JSON shapes of the requests. Values are JSON numbers; a string, a
// fraction or an out-of-range number is refused.
type (
	setJSON struct {
		GroupID   string           `json:"groupID"`
		Counters  map[string]int64 `json:"counters"`
		RequestID string           `json:"requestID"`
	}
	changeJSON struct {
		GroupID   string `json:"groupID"`
		Key       string `json:"key"`
		Value     *int64 `json:"value"`
		RequestID string `json:"requestID"`
	}
	keysJSON struct {
		GroupID   string   `json:"groupID"`
		KeyList   []string `json:"keyList"`
		RequestID string   `json:"requestID"`
	}
	membersJSON struct {
		GroupID   string   `json:"groupID"`
		UserIDs   []string `json:"userIDs"`
		RequestID string   `json:"requestID"`
	}
	listJSON struct {
		GroupID string `json:"groupID"`
		After   string `json:"after"`
		Limit   *int64 `json:"limit"`
	}
)

func decodeJSON(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("%w: payload is not a JSON object", actors.ErrInvalidParameter)
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD, so that different
	// invalid keys became one counter; protobuf refuses it, and so does this.
	if err := checkText(data); err != nil {
		return err
	}
	err := json.Unmarshal(data, v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return checkMembers(data, fieldNames(reflect.TypeOf(v).Elem()))
	case errors.As(err, &typeErr):
		if typeErr.Field == "counters" && typeErr.Type.Kind() == reflect.Int64 {
			return fmt.Errorf("%w: every counter must be %s, not a JSON %s", actors.ErrInvalidParameter, jsonKind(typeErr.Type), jsonValue(typeErr.Value))
		}
		return fmt.Errorf("%w: %s must be %s, not a JSON %s", actors.ErrInvalidParameter, typeErr.Field, jsonKind(typeErr.Type), jsonValue(typeErr.Value))
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: malformed JSON at byte %d: %w", actors.ErrInvalidParameter, syntaxErr.Offset, err)
	default:
		return fmt.Errorf("%w: malformed JSON: %w", actors.ErrInvalidParameter, err)
	}
}

// checkText refuses a JSON text that is not valid UTF-8 or escapes half of
// a surrogate pair (\ud800 alone), which no UTF-8 string holds.
func checkText(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: payload is not valid UTF-8", actors.ErrInvalidParameter)
	}
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		i++ // the escaped character
		if data[i] != 'u' {
			continue
		}
		r, ok := hex4(data[i+1:])
		if !ok || r < 0xd800 || r > 0xdfff {
			continue
		}
		// A high surrogate must be followed by an escaped low one.
		if low, ok := hex4(data[min(i+7, len(data)):]); r >= 0xdc00 || !ok || i+6 >= len(data) ||
			data[i+5] != '\\' || data[i+6] != 'u' || low < 0xdc00 || low > 0xdfff {
			return fmt.Errorf("%w: payload escapes half of a UTF-16 surrogate pair at byte %d", actors.ErrInvalidParameter, i-1)
		}
		i += 10 // both escapes
	}
	return nil
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// jsonValue shortens the value an UnmarshalTypeError names, which holds
// a number's whole literal: a refusal goes out in a reply's header and
// body, and must fit whatever the payload's size.
func jsonValue(v string) string {
	const most = 40 // "number " and a number of any int64 or uint64
	if len(v) <= most {
		return v
	}
	return v[:most] + "... (" + strconv.Itoa(len(v)) + " bytes)"
}

// jsonKind names the JSON a Go type wants, for error messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int64:
		return "an integer from -9223372036854775808 to 9223372036854775807"
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	}
	return t.String()
}

func decodeProto(data []byte, m proto.Message) error {
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: protobuf payload: %w", actors.ErrInvalidParameter, err)
	}
	return nil
}

func decodeSet(f format, data []byte) (*messages.SetRequest, error) {
	req := new(messages.SetRequest)
	if f == formatProto {
		return req, decodeProto(data, req)
	}
	var j setJSON
	if err := decodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.Counters, req.RequestId = j.GroupID, j.Counters, j.RequestID
	return req, nil
}

func decodeChange(f format, data []byte) (*messages.ChangeRequest, error) {
	req := new(messages.ChangeRequest)
	if f == formatProto {
		return req, decodeProto(data, req)
	}
	var j changeJSON
	if err := decodeJSON(data, &j); err != nil {
		return nil, err
	}
	if j.Value == nil {
		return nil, fmt.Errorf("%w: value is required", actors.ErrInvalidParameter)
	}
	req.GroupId, req.Key, req.Value, req.RequestId = j.GroupID, j.Key, *j.Value, j.RequestID
	return req, nil
}

func decodeGet(f format, data []byte) (*messages.GetRequest, error) {
	req := new(messages.GetRequest)
	if f == formatProto {
		return req, decodeProto(data, req)
	}
	var j keysJSON
	if err := decodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.KeyList = j.GroupID, j.KeyList
	return req, nil
}

func decodeDelete(f format, data []byte) (*messages.DeleteRequest, error) {
	req := new(messages.DeleteRequest)
	if f == formatProto {
		return req, decodeProto(data, req)
	}
	var j keysJSON
	if err := decodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.KeyList, req.RequestId = j.GroupID, j.KeyList, j.RequestID
	return req, nil
}

func decodeMembers(f format, data []byte) (*messages.MembersRequest, error) {
	req := new(messages.MembersRequest)
	if f == formatProto {
		return req, decodeProto(data, req)
	}
	var j membersJSON
	if err := decodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.UserIds, req.RequestId = j.GroupID, j.UserIDs, j.RequestID
	return req, nil
}

func decodeList(f format, data []byte) (*messages.ListMembersRequest, error) {
	req := new(messages.ListMembersRequest)
	if f == formatProto {
		return req, decodeProto(data, req)
	}
	var j listJSON
	if err := decodeJSON(data, &j); err != nil {
		return nil, err
	}
	if j.Limit != nil && (*j.Limit < 1 || *j.Limit > actors.MaxListMembers) {
		return nil, fmt.Errorf("%w: limit %d, want 1..%d", actors.ErrInvalidParameter, *j.Limit, actors.MaxListMembers)
	}
	req.GroupId, req.After = j.GroupID, j.After
	if j.Limit != nil {
		req.Limit = uint32(*j.Limit)
	}
	return req, nil
}

// encode marshals a reply, an error body or an update. The JSON is written
// by hand: protojson would write int64 values as strings.
func encode(f format, m proto.Message) []byte { return appendEncoded(nil, f, m) }

// appendEncoded appends the encoding of m to b.
func appendEncoded(b []byte, f format, m proto.Message) []byte {
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
