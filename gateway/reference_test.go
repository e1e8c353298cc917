package gateway

// The request decoders that preceded the single-pass JSON decoder and the
// protobuf decoder of decodejson.go and decodeproto.go, kept unchanged
// but for their names as the reference the differential fuzz targets of
// reference_fuzz_test.go compare them with: encoding/json into a struct,
// then a second walk for the exact field names, repeats and null
// counters, a UTF-8 check before; proto.Unmarshal into the request
// message; then a copy into the command.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

// The JSON shapes of the requests. Values are JSON numbers; a string, a
// fraction or an out-of-range number is refused.
type (
	refSetJSON struct {
		GroupID   string           `json:"groupID"`
		Counters  map[string]int64 `json:"counters"`
		RequestID string           `json:"requestID"`
	}
	refChangeJSON struct {
		GroupID   string `json:"groupID"`
		Key       string `json:"key"`
		Value     *int64 `json:"value"`
		RequestID string `json:"requestID"`
	}
	refKeysJSON struct {
		GroupID   string   `json:"groupID"`
		KeyList   []string `json:"keyList"`
		RequestID string   `json:"requestID"`
	}
	refMembersJSON struct {
		GroupID   string   `json:"groupID"`
		UserIDs   []string `json:"userIDs"`
		RequestID string   `json:"requestID"`
	}
	refListJSON struct {
		GroupID string `json:"groupID"`
		After   string `json:"after"`
		Limit   *int64 `json:"limit"`
	}
)

func refDecodeJSON(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("%w: payload is not a JSON object", actors.ErrInvalidParameter)
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD, so that different
	// invalid keys became one counter; protobuf refuses it, and so does this.
	if err := refCheckText(data); err != nil {
		return err
	}
	err := json.Unmarshal(data, v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return refCheckMembers(data, refFieldNames(reflect.TypeOf(v).Elem()))
	case errors.As(err, &typeErr):
		if typeErr.Field == "counters" && typeErr.Type.Kind() == reflect.Int64 {
			return fmt.Errorf("%w: every counter must be %s, not a JSON %s", actors.ErrInvalidParameter, refJSONKind(typeErr.Type), refJSONValue(typeErr.Value))
		}
		return fmt.Errorf("%w: %s must be %s, not a JSON %s", actors.ErrInvalidParameter, typeErr.Field, refJSONKind(typeErr.Type), refJSONValue(typeErr.Value))
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: malformed JSON at byte %d: %w", actors.ErrInvalidParameter, syntaxErr.Offset, err)
	default:
		return fmt.Errorf("%w: malformed JSON: %w", actors.ErrInvalidParameter, err)
	}
}

// refCheckText refuses a JSON text that is not valid UTF-8 or escapes half of
// a surrogate pair (\ud800 alone), which no UTF-8 string holds.
func refCheckText(data []byte) error {
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
		r, ok := refHex4(data[i+1:])
		if !ok || r < 0xd800 || r > 0xdfff {
			continue
		}
		// A high surrogate must be followed by an escaped low one.
		if low, ok := refHex4(data[min(i+7, len(data)):]); r >= 0xdc00 || !ok || i+6 >= len(data) ||
			data[i+5] != '\\' || data[i+6] != 'u' || low < 0xdc00 || low > 0xdfff {
			return fmt.Errorf("%w: payload escapes half of a UTF-16 surrogate pair at byte %d", actors.ErrInvalidParameter, i-1)
		}
		i += 10 // both escapes
	}
	return nil
}

// refHex4 reads four hex digits.
func refHex4(b []byte) (rune, bool) {
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

// refJSONValue shortens the value an UnmarshalTypeError names, which holds
// a number's whole literal: a refusal goes out in a reply's header and
// body, and must fit whatever the payload's size.
func refJSONValue(v string) string {
	const most = 40 // "number " and a number of any int64 or uint64
	if len(v) <= most {
		return v
	}
	return v[:most] + "... (" + strconv.Itoa(len(v)) + " bytes)"
}

// refJSONKind names the JSON a Go type wants, for error messages.
func refJSONKind(t reflect.Type) string {
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

func refDecodeProto(data []byte, m proto.Message) error {
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: protobuf payload: %w", actors.ErrInvalidParameter, err)
	}
	return nil
}

func refDecodeSet(f format, data []byte) (*messages.SetRequest, error) {
	req := new(messages.SetRequest)
	if f == formatProto {
		return req, refDecodeProto(data, req)
	}
	var j refSetJSON
	if err := refDecodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.Counters, req.RequestId = j.GroupID, j.Counters, j.RequestID
	return req, nil
}

func refDecodeChange(f format, data []byte) (*messages.ChangeRequest, error) {
	req := new(messages.ChangeRequest)
	if f == formatProto {
		return req, refDecodeProto(data, req)
	}
	var j refChangeJSON
	if err := refDecodeJSON(data, &j); err != nil {
		return nil, err
	}
	if j.Value == nil {
		return nil, fmt.Errorf("%w: value is required", actors.ErrInvalidParameter)
	}
	req.GroupId, req.Key, req.Value, req.RequestId = j.GroupID, j.Key, *j.Value, j.RequestID
	return req, nil
}

func refDecodeGet(f format, data []byte) (*messages.GetRequest, error) {
	req := new(messages.GetRequest)
	if f == formatProto {
		return req, refDecodeProto(data, req)
	}
	var j refKeysJSON
	if err := refDecodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.KeyList = j.GroupID, j.KeyList
	return req, nil
}

func refDecodeDelete(f format, data []byte) (*messages.DeleteRequest, error) {
	req := new(messages.DeleteRequest)
	if f == formatProto {
		return req, refDecodeProto(data, req)
	}
	var j refKeysJSON
	if err := refDecodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.KeyList, req.RequestId = j.GroupID, j.KeyList, j.RequestID
	return req, nil
}

func refDecodeMembers(f format, data []byte) (*messages.MembersRequest, error) {
	req := new(messages.MembersRequest)
	if f == formatProto {
		return req, refDecodeProto(data, req)
	}
	var j refMembersJSON
	if err := refDecodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId, req.UserIds, req.RequestId = j.GroupID, j.UserIDs, j.RequestID
	return req, nil
}

func refDecodeList(f format, data []byte) (*messages.ListMembersRequest, error) {
	req := new(messages.ListMembersRequest)
	if f == formatProto {
		return req, refDecodeProto(data, req)
	}
	var j refListJSON
	if err := refDecodeJSON(data, &j); err != nil {
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

type refHistoryJSON struct {
	GroupID string  `json:"groupID"`
	FromSeq *uint64 `json:"fromSeq"`
	Limit   *uint32 `json:"limit"`
}

func refDecodeHistory(f format, data []byte) (*messages.HistoryRequest, error) {
	req := new(messages.HistoryRequest)
	if f == formatProto {
		return req, refDecodeProto(data, req)
	}
	var j refHistoryJSON
	if err := refDecodeJSON(data, &j); err != nil {
		return nil, err
	}
	req.GroupId = j.GroupID
	if j.FromSeq != nil {
		req.FromSeq = *j.FromSeq
	}
	if j.Limit != nil {
		req.Limit = *j.Limit
	}
	return req, nil
}

// The contract's field names are exact. encoding/json matches them without
// regard to case, merges a repeated object and keeps the last of a repeated
// value, so that a proxy that parses JSON otherwise could be shown one
// request and tally act on another. refCheckMembers refuses what it would
// have read differently: a member named like a field in another case, a
// member given twice, and a key given twice in the counters object. It
// also refuses a null counter, which encoding/json reads as 0.

// refFieldNames returns the JSON names of a request struct's fields.
func refFieldNames(t reflect.Type) []string {
	if names, ok := refFieldCache.Load(t); ok {
		return names.([]string)
	}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	refFieldCache.Store(t, names)
	return names
}

var refFieldCache sync.Map // reflect.Type -> []string

// refCountersField is the one object member whose own members are checked,
// in the requests that have it: two values of one counter would be
// ambiguous, and a null is no value.
const refCountersField = "counters"

// refCheckMembers checks the members of the JSON object data, which
// encoding/json has already parsed without error, against the struct's
// field names.
func refCheckMembers(data []byte, names []string) error {
	s := refScanner{data: data}
	return s.object("field", func(name string) error {
		for _, n := range names {
			if name != n && strings.EqualFold(name, n) {
				return fmt.Errorf("%w: unknown field %s: field names are case-sensitive, want %q", actors.ErrInvalidParameter, contract.Quote(name), n)
			}
		}
		if name == refCountersField && s.peek() == '{' && slices.Contains(names, refCountersField) {
			return s.object("counter", func(key string) error {
				if s.peek() == 'n' {
					return fmt.Errorf("%w: counter %s is null, want an integer", actors.ErrInvalidParameter, contract.Quote(key))
				}
				s.skip()
				return nil
			})
		}
		s.skip()
		return nil
	})
}

// refScanner walks a JSON text that is known to be valid.
type refScanner struct {
	data []byte
	pos  int
}

func (s *refScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

func (s *refScanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// object reads an object, calling member with each member's name with the
// refScanner at the member's value, which member must consume. Unless what
// is empty, a name given twice is refused as a repeated what.
func (s *refScanner) object(what string, member func(name string) error) error {
	s.ws()
	s.pos++ // {
	var seen []string
	for s.peek() != '}' {
		if s.data[s.pos] == ',' {
			s.pos++
			s.ws()
		}
		name := s.str()
		if what != "" {
			for _, n := range seen {
				if n == name {
					return fmt.Errorf("%w: %s %s given twice", actors.ErrInvalidParameter, what, contract.Quote(name))
				}
			}
			seen = append(seen, name)
		}
		s.ws()
		s.pos++ // :
		if err := member(name); err != nil {
			return err
		}
	}
	s.pos++ // }
	return nil
}

// str reads a string, decoding its escapes.
func (s *refScanner) str() string {
	s.pos++ // opening quote
	start := s.pos
	for s.data[s.pos] != '"' && s.data[s.pos] != '\\' {
		s.pos++
	}
	if s.data[s.pos] == '"' {
		s.pos++
		return string(s.data[start : s.pos-1])
	}
	b := append([]byte(nil), s.data[start:s.pos]...)
	for {
		switch c := s.data[s.pos]; c {
		case '"':
			s.pos++
			return string(b)
		case '\\':
			s.pos++
			e := s.data[s.pos]
			s.pos++
			switch e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, _ := refHex4(s.data[s.pos:])
				s.pos += 4
				if utf16.IsSurrogate(r) {
					if low, ok := refHex4(s.data[min(s.pos+2, len(s.data)):]); ok && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
						if d := utf16.DecodeRune(r, low); d != utf8.RuneError {
							r = d
							s.pos += 6
						}
					}
				}
				b = utf8.AppendRune(b, r)
			default: // " \ /
				b = append(b, e)
			}
		default:
			b = append(b, c)
			s.pos++
		}
	}
}

// skip consumes one value.
func (s *refScanner) skip() {
	switch s.peek() {
	case '"':
		s.str()
	case '{':
		s.object("", func(string) error { s.skip(); return nil })
	case '[':
		s.pos++
		for s.peek() != ']' {
			if s.data[s.pos] == ',' {
				s.pos++
			}
			s.skip()
		}
		s.pos++
	default: // a number, true, false or null
		for s.pos < len(s.data) && !strings.ContainsRune(",]} \t\r\n", rune(s.data[s.pos])) {
			s.pos++
		}
	}
}

// refDecode decodes a request of user ("" on the admin subjects) into the
// command it asks for and its group.
func refDecode(o op, f format, user string, data []byte) (command, error) {
	switch o {
	case opSet:
		req, err := refDecodeSet(f, data)
		if err != nil {
			return command{}, err
		}
		return command{group: req.GetGroupId(), change: &messages.Change{Op: messages.Op_OP_SET, Counters: req.GetCounters(), RequestId: req.GetRequestId(), User: user}}, nil
	case opIncrease, opDecrease:
		req, err := refDecodeChange(f, data)
		if err != nil {
			return command{}, err
		}
		kind := messages.Op_OP_INCREASE
		if o == opDecrease {
			kind = messages.Op_OP_DECREASE
		}
		return command{group: req.GetGroupId(), change: &messages.Change{Op: kind, Key: req.GetKey(), Amount: req.GetValue(), RequestId: req.GetRequestId(), User: user}}, nil
	case opGet:
		req, err := refDecodeGet(f, data)
		if err != nil {
			return command{}, err
		}
		return command{group: req.GetGroupId(), get: req}, nil
	case opMembersAdd, opMembersRemove:
		req, err := refDecodeMembers(f, data)
		if err != nil {
			return command{}, err
		}
		kind := messages.Op_OP_MEMBERS_ADD
		if o == opMembersRemove {
			kind = messages.Op_OP_MEMBERS_REMOVE
		}
		return command{group: req.GetGroupId(), change: &messages.Change{Op: kind, Members: req.GetUserIds(), RequestId: req.GetRequestId()}}, nil
	case opMembersList:
		req, err := refDecodeList(f, data)
		if err != nil {
			return command{}, err
		}
		return command{group: req.GetGroupId(), list: req}, nil
	default:
		req, err := refDecodeDelete(f, data)
		if err != nil {
			return command{}, err
		}
		return command{group: req.GetGroupId(), change: &messages.Change{Op: messages.Op_OP_DELETE, Keys: req.GetKeyList(), RequestId: req.GetRequestId(), User: user}}, nil
	}
}
