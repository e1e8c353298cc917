package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

// The fuzz targets below feed any bytes to a request decoder and to the
// checks the node makes before it runs the request (decodeAsNode). For
// every input:
//
//   - a refusal maps to 10004 or 10015 and its message is short enough
//     for a reply's header and body, whatever the payload;
//   - a JSON request that is accepted passes strictMembers, a reference
//     walk with encoding/json's tokenizer: no member named like one of the
//     request's contract fields in another case, no member given twice, no
//     counter given twice or given as anything but a number; its fields,
//     read one by one, are the values decoded; they pass the contract's
//     checks; and encoded again by encoding/json, the request decodes to
//     the same values;
//   - a protobuf request that is accepted passes the contract's checks,
//     and marshalled again decodes to an equal message.
//
// testdata/fuzz/<target> holds the hostile seeds, each with the outcome
// TestFuzzSeeds wants in seedOutcomes.

// contractFields are the field names of each kind's JSON request in
// CONTRACT.md and docs/API.md, written out here rather than read from the
// decoder's structs.
var contractFields = map[op][]string{
	opSet:      {"groupID", "counters", "requestID"},
	opIncrease: {"groupID", "key", "value", "requestID"},
	opGet:      {"groupID", "keyList"},
	opDelete:   {"groupID", "keyList", "requestID"},
	opHistory:  {"groupID", "fromSeq", "limit"},
	// members.remove has members.add's decoder and checks.
	opMembersAdd:  {"groupID", "userIDs", "requestID"},
	opMembersList: {"groupID", "after", "limit"},
}

// maxRefusal bounds a refusal's message: it goes out in a header and in
// the body of the reply.
const maxRefusal = 1024

// FuzzDecodeSetJSON checks the JSON set request.
func FuzzDecodeSetJSON(f *testing.F) { fuzzJSON(f, opSet) }

// FuzzDecodeChangeJSON checks the JSON increase request; a decrease has
// the same decoder and checks.
func FuzzDecodeChangeJSON(f *testing.F) { fuzzJSON(f, opIncrease) }

// FuzzDecodeGetJSON checks the JSON get request.
func FuzzDecodeGetJSON(f *testing.F) { fuzzJSON(f, opGet) }

// FuzzDecodeDeleteJSON checks the JSON delete request.
func FuzzDecodeDeleteJSON(f *testing.F) { fuzzJSON(f, opDelete) }

// FuzzDecodeHistoryJSON checks the JSON history request.
func FuzzDecodeHistoryJSON(f *testing.F) { fuzzJSON(f, opHistory) }

// FuzzDecodeMembersJSON checks the JSON members.add request; a
// members.remove has the same decoder and checks.
func FuzzDecodeMembersJSON(f *testing.F) {
	f.Add([]byte(`{"groupID":"g","userIDs":["alice","bob","alice"],"requestID":"r"}`))
	f.Add([]byte(`{"groupID":"g","userids":["alice"]}`))
	fuzzJSON(f, opMembersAdd)
}

// FuzzDecodeListJSON checks the JSON members.list request.
func FuzzDecodeListJSON(f *testing.F) {
	f.Add([]byte(`{"groupID":"g","after":"alice","limit":1000}`))
	f.Add([]byte(`{"groupID":"g","limit":1000000000000}`))
	fuzzJSON(f, opMembersList)
}

// FuzzDecodeMembersProto checks the protobuf members.add request.
func FuzzDecodeMembersProto(f *testing.F) {
	b, _ := proto.Marshal(&messages.MembersRequest{GroupId: "g", UserIds: []string{"alice", "bob"}, RequestId: "r"})
	f.Add(b)
	fuzzProto(f, opMembersAdd)
}

// FuzzDecodeListProto checks the protobuf members.list request.
func FuzzDecodeListProto(f *testing.F) {
	b, _ := proto.Marshal(&messages.ListMembersRequest{GroupId: "g", After: "alice", Limit: 1000})
	f.Add(b)
	fuzzProto(f, opMembersList)
}

// FuzzDecodeSetProto checks the protobuf set request.
func FuzzDecodeSetProto(f *testing.F) { fuzzProto(f, opSet) }

// FuzzDecodeChangeProto checks the protobuf increase request; a decrease
// has the same decoder and checks.
func FuzzDecodeChangeProto(f *testing.F) { fuzzProto(f, opIncrease) }

// FuzzDecodeGetProto checks the protobuf get request.
func FuzzDecodeGetProto(f *testing.F) { fuzzProto(f, opGet) }

// FuzzDecodeDeleteProto checks the protobuf delete request.
func FuzzDecodeDeleteProto(f *testing.F) { fuzzProto(f, opDelete) }

// FuzzDecodeHistoryProto checks the protobuf history request.
func FuzzDecodeHistoryProto(f *testing.F) { fuzzProto(f, opHistory) }

func fuzzJSON(f *testing.F, o op) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeAsNode(o, formatJSON, data)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		members, err := strictMembers(data, contractFields[o])
		if err != nil {
			t.Fatalf("accepted %s request %q: %v", opNames[o], data, err)
		}
		want, err := referenceRequest(o, members)
		if err != nil {
			t.Fatalf("accepted %s request %q does not read field by field: %v", opNames[o], data, err)
		}
		if diff := cmp.Diff(want, req, protocmp.Transform()); diff != "" {
			t.Fatalf("%s request %q decodes otherwise than field by field (-fields +decoded):\n%s", opNames[o], data, diff)
		}
		if err := checkContract(req); err != nil {
			t.Fatalf("accepted %s request %q: %v", opNames[o], data, err)
		}
		again := encodeRequest(t, req)
		req2, err := decodeAsNode(o, formatJSON, again)
		if err != nil {
			t.Fatalf("%s request %q, encoded again as %s, is refused: %v", opNames[o], data, again, err)
		}
		if diff := cmp.Diff(req, req2, protocmp.Transform()); diff != "" {
			t.Fatalf("%s request %q, encoded again as %s, decodes otherwise (-first +again):\n%s", opNames[o], data, again, diff)
		}
	})
}

func fuzzProto(f *testing.F, o op) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeAsNode(o, formatProto, data)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if err := checkContract(req); err != nil {
			t.Fatalf("accepted %s request %x: %v", opNames[o], data, err)
		}
		again, err := proto.Marshal(req)
		if err != nil {
			t.Fatalf("accepted %s request %x does not marshal: %v", opNames[o], data, err)
		}
		req2, err := decodeAsNode(o, formatProto, again)
		if err != nil {
			t.Fatalf("%s request %x, marshalled again as %x, is refused: %v", opNames[o], data, again, err)
		}
		if !proto.Equal(req, req2) {
			t.Fatalf("%s request %x, marshalled again as %x, decodes to %v, want %v", opNames[o], data, again, req2, req)
		}
	})
}

// decodeAsNode decodes a request of kind o and checks it as the node does
// before it runs it: Gateway.decodeAndPlace for the four operations,
// Gateway.history for a history. It returns the request the command was
// decoded from.
func decodeAsNode(o op, f format, data []byte) (proto.Message, error) {
	if o == opHistory {
		h, err := decodeHistory(f, data)
		if err != nil {
			return nil, err
		}
		return h, checkHistory(h)
	}
	cmd, err := decode(o, f, "", data)
	switch {
	case err != nil:
		return nil, err
	case cmd.change != nil:
		err = actors.ValidateChange(cmd.group, cmd.change)
	case cmd.list != nil:
		err = actors.ValidateList(cmd.list)
	default:
		err = actors.ValidateGet(cmd.get)
	}
	return requestOf(o, cmd), err
}

// requestOf returns the request message of kind o that holds what cmd
// does.
func requestOf(o op, cmd command) proto.Message {
	c := cmd.change
	switch o {
	case opSet:
		return &messages.SetRequest{GroupId: cmd.group, Counters: c.GetCounters(), RequestId: c.GetRequestId()}
	case opIncrease, opDecrease:
		return &messages.ChangeRequest{GroupId: cmd.group, Key: c.GetKey(), Value: c.GetAmount(), RequestId: c.GetRequestId()}
	case opGet:
		return cmd.get
	case opMembersAdd, opMembersRemove:
		return &messages.MembersRequest{GroupId: cmd.group, UserIds: c.GetMembers(), RequestId: c.GetRequestId()}
	case opMembersList:
		return cmd.list
	default:
		return &messages.DeleteRequest{GroupId: cmd.group, KeyList: c.GetKeys(), RequestId: c.GetRequestId()}
	}
}

// checkRefusal checks that a refused request gets one of the codes of a
// bad request, with a message that fits in a reply.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if code := actorsCode(err); code != messages.Code_CODE_INVALID_PARAMETER && code != messages.Code_CODE_INVALID_GROUP_ID {
		t.Fatalf("refused with code %d (%v), want 10004 or 10015", code, err)
	}
	if n := len(err.Error()); n > maxRefusal {
		t.Fatalf("refused with a message of %d bytes, want at most %d: %.200s...", n, maxRefusal, err)
	}
}

// strictMembers reads data, a JSON object, with encoding/json's tokenizer
// and returns its members' values. It refuses a member named like one of
// fields in another case (folding as Unicode's simple case folding does),
// a member given twice, and in a counters field a counter given twice or
// given as anything but a number.
func strictMembers(data []byte, fields []string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %v %v", tok, err)
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		if _, ok := members[name]; ok {
			return nil, fmt.Errorf("member %q given twice", name)
		}
		for _, field := range fields {
			if name != field && sameFold(name, field) {
				return nil, fmt.Errorf("member %q is field %q in another case", name, field)
			}
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		members[name] = value
		if name == "counters" && slices.Contains(fields, name) {
			if err := strictCounters(value); err != nil {
				return nil, err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if tok, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%v after the object: %v", tok, err)
	}
	return members, nil
}

// strictCounters refuses a counters object with a counter given twice or
// given as anything but a number.
func strictCounters(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil // not an object: the type is the decoder's to refuse
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if seen[key] {
			return fmt.Errorf("counter %q given twice", key)
		}
		seen[key] = true
		value, err := dec.Token()
		if err != nil {
			return err
		}
		if _, ok := value.(json.Number); !ok {
			return fmt.Errorf("counter %q is %v, not a number", key, value)
		}
	}
	return nil
}

// sameFold reports whether a and b are equal under simple case folding:
// each rune stands for the least rune of its folding orbit.
func sameFold(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		if leastFold(ra[i]) != leastFold(rb[i]) {
			return false
		}
	}
	return true
}

func leastFold(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// referenceRequest builds the request of kind o from its members, reading
// each contract field by itself.
func referenceRequest(o op, members map[string]json.RawMessage) (proto.Message, error) {
	var errs []error
	read := func(name string, v any) {
		if raw, ok := members[name]; ok {
			errs = append(errs, json.Unmarshal(raw, v))
		}
	}
	var req proto.Message
	switch o {
	case opSet:
		r := new(messages.SetRequest)
		read("groupID", &r.GroupId)
		read("counters", &r.Counters)
		read("requestID", &r.RequestId)
		req = r
	case opIncrease, opDecrease:
		r := new(messages.ChangeRequest)
		read("groupID", &r.GroupId)
		read("key", &r.Key)
		read("value", &r.Value)
		read("requestID", &r.RequestId)
		req = r
	case opGet:
		r := new(messages.GetRequest)
		read("groupID", &r.GroupId)
		read("keyList", &r.KeyList)
		req = r
	case opDelete:
		r := new(messages.DeleteRequest)
		read("groupID", &r.GroupId)
		read("keyList", &r.KeyList)
		read("requestID", &r.RequestId)
		req = r
	case opHistory:
		r := new(messages.HistoryRequest)
		read("groupID", &r.GroupId)
		read("fromSeq", &r.FromSeq)
		read("limit", &r.Limit)
		req = r
	case opMembersAdd, opMembersRemove:
		r := new(messages.MembersRequest)
		read("groupID", &r.GroupId)
		read("userIDs", &r.UserIds)
		read("requestID", &r.RequestId)
		req = r
	case opMembersList:
		r := new(messages.ListMembersRequest)
		read("groupID", &r.GroupId)
		read("after", &r.After)
		read("limit", &r.Limit)
		req = r
	}
	return req, errors.Join(errs...)
}

// checkContract checks an accepted request's values with the contract's
// own checks and limits.
func checkContract(req proto.Message) error {
	keys := func(keys []string, min int) error {
		if len(keys) < min || len(keys) > contract.MaxKeys {
			return fmt.Errorf("%d keys, want %d..%d", len(keys), min, contract.MaxKeys)
		}
		for _, k := range keys {
			if err := contract.CheckKey(k); err != nil {
				return err
			}
		}
		return nil
	}
	var errs []error
	switch r := req.(type) {
	case *messages.SetRequest:
		counters := make([]string, 0, len(r.GetCounters()))
		for k := range r.GetCounters() {
			counters = append(counters, k)
		}
		errs = append(errs, contract.CheckGroupID(r.GetGroupId()), contract.CheckRequestID(r.GetRequestId()), keys(counters, 1))
	case *messages.ChangeRequest:
		errs = append(errs, contract.CheckGroupID(r.GetGroupId()), contract.CheckRequestID(r.GetRequestId()), keys([]string{r.GetKey()}, 1))
		if r.GetValue() < 0 {
			errs = append(errs, fmt.Errorf("value %d, want 0..2^63-1", r.GetValue()))
		}
	case *messages.GetRequest:
		errs = append(errs, contract.CheckGroupID(r.GetGroupId()), keys(r.GetKeyList(), 0))
	case *messages.DeleteRequest:
		errs = append(errs, contract.CheckGroupID(r.GetGroupId()), contract.CheckRequestID(r.GetRequestId()), keys(r.GetKeyList(), 0))
	case *messages.HistoryRequest:
		errs = append(errs, contract.CheckGroupID(r.GetGroupId()))
		if r.GetLimit() > historyMaxPage {
			errs = append(errs, fmt.Errorf("limit %d, want at most %d", r.GetLimit(), historyMaxPage))
		}
	case *messages.MembersRequest:
		errs = append(errs, contract.CheckGroupID(r.GetGroupId()), contract.CheckRequestID(r.GetRequestId()))
		if n := len(r.GetUserIds()); n < 1 || n > actors.MaxMembersPerCall {
			errs = append(errs, fmt.Errorf("%d users, want 1..%d", n, actors.MaxMembersPerCall))
		}
		for _, u := range r.GetUserIds() {
			errs = append(errs, contract.CheckUserID(u))
		}
	case *messages.ListMembersRequest:
		errs = append(errs, contract.CheckGroupID(r.GetGroupId()))
		if a := r.GetAfter(); a != "" {
			errs = append(errs, contract.CheckUserID(a))
		}
		if r.GetLimit() > actors.MaxListMembers {
			errs = append(errs, fmt.Errorf("limit %d, want at most %d", r.GetLimit(), actors.MaxListMembers))
		}
	default:
		errs = append(errs, fmt.Errorf("unexpected request %T", req))
	}
	return errors.Join(errs...)
}

// encodeRequest writes req in the contract's JSON form with encoding/json.
func encodeRequest(t *testing.T, req proto.Message) []byte {
	t.Helper()
	m := map[string]any{}
	switch r := req.(type) {
	case *messages.SetRequest:
		m["groupID"], m["counters"], m["requestID"] = r.GetGroupId(), r.GetCounters(), r.GetRequestId()
	case *messages.ChangeRequest:
		m["groupID"], m["key"], m["value"], m["requestID"] = r.GetGroupId(), r.GetKey(), r.GetValue(), r.GetRequestId()
	case *messages.GetRequest:
		m["groupID"], m["keyList"] = r.GetGroupId(), r.GetKeyList()
	case *messages.DeleteRequest:
		m["groupID"], m["keyList"], m["requestID"] = r.GetGroupId(), r.GetKeyList(), r.GetRequestId()
	case *messages.HistoryRequest:
		m["groupID"], m["fromSeq"], m["limit"] = r.GetGroupId(), r.GetFromSeq(), r.GetLimit()
	case *messages.MembersRequest:
		m["groupID"], m["userIDs"], m["requestID"] = r.GetGroupId(), r.GetUserIds(), r.GetRequestId()
	case *messages.ListMembersRequest:
		m["groupID"], m["after"] = r.GetGroupId(), r.GetAfter()
		if r.GetLimit() != 0 { // absent: the default; 0 is refused
			m["limit"] = r.GetLimit()
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode %v: %v", req, err)
	}
	return b
}

// seedOutcomes is what each seed in testdata/fuzz gets: 0 for accepted,
// or the code of its refusal.
var seedOutcomes = map[string]map[string]messages.Code{
	"FuzzDecodeSetJSON": {
		"valid":                     0,
		"capital-fields":            10004,
		"field-in-another-case":     10004,
		"long-s-requestID":          10004,
		"duplicate-groupID":         10004,
		"duplicate-groupID-escaped": 10004,
		"duplicate-counters":        10004,
		"duplicate-counter":         10004,
		"duplicate-counter-escaped": 10004,
		"escaped-field-names":       0,
		"unknown-field-duplicates":  0,
		"unknown-counters-nested":   0,
		"unknown-field-capitals":    0,
		"invalid-utf8-key":          10004,
		"invalid-utf8-unknown":      10004,
		"lone-high-surrogate":       10004,
		"lone-low-surrogate":        10004,
		"high-surrogate-letter":     10004,
		"surrogate-pair":            0,
		"escaped-backslash-u":       0,
		"huge-number":               10004,
		"huge-literal":              10004,
		"min-int64":                 0,
		"fraction":                  10004,
		"exponent":                  10004,
		"string-number":             10004,
		"null-counter":              10004,
		"true-counter":              10004,
		"null-counters":             10004,
		"null-groupID":              10015,
		"null-requestID":            0,
		"deep-nesting":              10004,
		"nesting-in-unknown":        0,
		"group-15KB":                10015,
		"group-dot":                 10015,
		"nul-key":                   10004,
		"raw-control-key":           10004,
		"c1-control-key":            10004,
		"key-128-bytes":             0,
		"key-129-bytes":             10004,
		"requestID-65-bytes":        10004,
		"20-counters":               0,
		"21-counters":               10004,
		"empty-counters":            10004,
		"counters-array":            10004,
		"whitespace":                0,
		"trailing-garbage":          10004,
		"byte-order-mark":           10004,
		"not-object":                10004,
		"empty":                     10004,
		"null":                      10004,
	},
	"FuzzDecodeChangeJSON": {
		"valid":                        0,
		"capital-fields":               10004,
		"field-in-another-case":        10004,
		"kelvin-key":                   10004,
		"long-s-requestID":             10004,
		"duplicate-key":                10004,
		"duplicate-value":              10004,
		"duplicate-value-escaped":      10004,
		"escaped-field-names":          0,
		"unknown-field-duplicates":     0,
		"unknown-counters-duplicates":  0,
		"missing-value":                10004,
		"null-value":                   10004,
		"negative-value":               10004,
		"negative-zero":                0,
		"max-int64":                    0,
		"huge-number":                  10004,
		"huge-literal":                 10004,
		"fraction":                     10004,
		"string-number":                10004,
		"nul-key":                      10004,
		"empty-key":                    10004,
		"invalid-utf8-key":             10004,
		"invalid-utf8-requestID":       10004,
		"lone-surrogate-key":           10004,
		"group-15KB":                   10015,
		"group-wildcard":               10015,
		"deep-nesting":                 10004,
		"requestID-64-bytes":           0,
		"requestID-65-bytes":           10004,
		"not-object":                   10004,
		"line-separator-key":           0,
		"escaped-key-of-html":          0,
		"group-number":                 10004,
		"unknown-field-escaped-quotes": 0,
	},
	"FuzzDecodeGetJSON": {
		"valid":                    0,
		"all-keys":                 0,
		"empty-keyList":            0,
		"null-keyList":             0,
		"capital-fields":           10004,
		"kelvin-keyList":           10004,
		"duplicate-keyList":        10004,
		"duplicate-groupID":        10004,
		"repeated-key-in-list":     0,
		"20-keys":                  0,
		"21-keys":                  10004,
		"null-in-keyList":          10004,
		"keyList-string":           10004,
		"requestID-ignored":        0,
		"unknown-field-duplicates": 0,
		"group-15KB":               10015,
		"group-empty":              10015,
		"nul-key":                  10004,
		"lone-surrogate-key":       10004,
		"invalid-utf8-key":         10004,
		"deep-nesting":             10004,
	},
	"FuzzDecodeDeleteJSON": {
		"valid":                    0,
		"all-keys":                 0,
		"capital-fields":           10004,
		"long-s-requestID":         10004,
		"duplicate-keyList":        10004,
		"duplicate-requestID":      10004,
		"21-keys":                  10004,
		"nul-key":                  10004,
		"unknown-field-duplicates": 0,
		"group-15KB":               10015,
		"requestID-65-bytes":       10004,
	},
	"FuzzDecodeHistoryJSON": {
		"valid":                    0,
		"group-only":               0,
		"limit-1000":               0,
		"limit-1001":               10004,
		"limit-negative":           10004,
		"limit-past-uint32":        10004,
		"fromSeq-max":              0,
		"fromSeq-past-uint64":      10004,
		"fromSeq-fraction":         10004,
		"fromSeq-string":           10004,
		"fromSeq-null":             0,
		"capital-fields":           10004,
		"duplicate-limit":          10004,
		"unknown-field-duplicates": 0,
		"group-15KB":               10015,
		"huge-literal":             10004,
	},
	"FuzzDecodeSetProto": {
		"valid":                   0,
		"repeated-counter":        0,
		"repeated-group":          0,
		"unknown-fields":          0,
		"invalid-utf8-key":        10004,
		"invalid-utf8-group":      10004,
		"nul-key":                 10004,
		"empty-key":               10004,
		"21-counters":             10004,
		"empty":                   10015,
		"truncated":               10004,
		"group-15KB":              10015,
		"overlong-varint":         10004,
		"wrong-wire-type":         10015,
		"map-entry-unknown-field": 0,
	},
	"FuzzDecodeChangeProto": {
		"valid":              0,
		"negative-value":     10004,
		"max-int64":          0,
		"repeated-value":     0,
		"invalid-utf8-key":   10004,
		"lone-surrogate-key": 10004,
		"requestID-65-bytes": 10004,
		"group-wildcard":     10015,
		"empty":              10015,
		"truncated":          10004,
	},
	"FuzzDecodeGetProto": {
		"valid":            0,
		"all-keys":         0,
		"21-keys":          10004,
		"invalid-utf8-key": 10004,
		"nul-key":          10004,
		"group-15KB":       10015,
		"unknown-group":    0,
	},
	"FuzzDecodeDeleteProto": {
		"valid":              0,
		"all-keys":           0,
		"21-keys":            10004,
		"requestID-65-bytes": 10004,
		"invalid-utf8-key":   10004,
	},
	"FuzzDecodeHistoryProto": {
		"valid":          0,
		"limit-1000":     0,
		"limit-1001":     10004,
		"fromSeq-max":    0,
		"group-empty":    10015,
		"unknown-fields": 0,
	},
	// The differential targets of reference_fuzz_test.go.
	"FuzzDiffChangeJSON": {
		"one-point-zero":              10004,
		"exponent":                    10004,
		"leading-zero":                10004,
		"min-int64":                   10004,
		"past-min-int64":              10004,
		"unknown-numbers":             0,
		"unknown-given-twice":         10004,
		"unknown-given-twice-escaped": 10004,
		"nesting-10000":               0,
		"nesting-10001":               10004,
		"nesting-10001-empty-objects": 10004,
		"null-groupID":                10015,
		"null-key":                    10004,
		"escaped-surrogate-pair-key":  0,
		"high-surrogate-twice":        10004,
		"lone-surrogate-in-unknown":   10004,
		"invalid-utf8-name":           10004,
		"raw-control-in-unknown":      10004,
		"raw-del-in-key":              10004,
		"dotted-capital-i-name":       0,
		"kelvin-in-unknown-name":      0,
		"trailing-comma":              10004,
		"trailing-null":               10004,
		"value-true":                  10004,
		"value-object":                10004,
		"value-string-of-json-number": 10004,
		"all-escapes-in-unknown":      0,
		"bad-escape-in-unknown":       10004,
		"empty-object":                10004,
		"whitespace-everywhere":       0,
	},
	"FuzzDiffGetJSON": {
		"requestID-number":     10004,
		"requestID-string":     0,
		"requestid-other-case": 10004,
		"value-other-case":     0,
		"keyList-nested-array": 10004,
		"keyList-object":       10004,
	},
	"FuzzDiffSetJSON": {
		"counter-minus-zero":         0,
		"counter-one-point-zero":     10004,
		"counter-string":             10004,
		"counter-array":              10004,
		"counter-keys-escaped-alike": 10004,
		"counters-null-then-given":   10004,
		"counters-empty-key":         10004,
	},
	"FuzzDiffDeleteJSON": {
		"keyList-empty":        0,
		"keyList-null":         0,
		"keyList-null-element": 10004,
	},
	"FuzzDiffMembersJSON": {
		"valid":               0,
		"repeated-user":       0,
		"null-user":           10004,
		"userIDs-null":        10004,
		"user-number":         10004,
		"userids-other-case":  10004,
		"userIDs-given-twice": 10004,
	},
	"FuzzDiffListJSON": {
		"valid":                0,
		"no-limit":             0,
		"limit-null":           0,
		"limit-zero":           10004,
		"limit-minus-zero":     10004,
		"limit-1000":           0,
		"limit-1001":           10004,
		"limit-one-point-zero": 10004,
		"limit-past-uint32":    10004,
		"after-null":           0,
		"after-bad-user":       10004,
	},
	"FuzzDiffHistoryJSON": {
		"fromSeq-minus-zero": 10004,
		"limit-minus-zero":   10004,
		"limit-null":         0,
		"limit-max-uint32":   10004,
		"fromSeq-exponent":   10004,
	},
	"FuzzDiffChangeProto": {
		"value-as-bytes":               0,
		"value-as-fixed64":             0,
		"group-as-varint":              10015,
		"non-minimal-tag":              0,
		"non-minimal-value":            0,
		"field-zero":                   10004,
		"field-past-max":               10004,
		"field-max":                    0,
		"unknown-group":                0,
		"end-group-mismatch":           10004,
		"end-group-alone":              10004,
		"reserved-wire-type":           10004,
		"known-field-as-group":         0,
		"overlong-varint":              10004,
		"ten-byte-varint-top-bit":      10004,
		"truncated-length":             10004,
		"invalid-utf8-key-overwritten": 10004,
		"invalid-utf8-unknown":         0,
	},
	"FuzzDiffSetProto": {
		"entry-without-key":                  10004,
		"entry-without-value":                0,
		"entry-key-twice":                    0,
		"entry-value-as-bytes":               0,
		"entry-unknown-group":                0,
		"entry-end-group":                    10004,
		"entry-field-zero":                   10004,
		"entry-field-past-max":               10004,
		"entry-invalid-utf8-key-overwritten": 10004,
		"counters-as-varint":                 10004,
		"counters-as-varint-then-entry":      0,
		"entry-truncated":                    10004,
		"same-key-two-entries":               0,
	},
	"FuzzDiffGetProto": {
		"unknown-kept":            0,
		"unknown-non-minimal-tag": 0,
		"requestID-is-unknown":    0,
	},
	"FuzzDiffListProto": {
		"valid":              0,
		"limit-past-uint32":  0,
		"limit-1001":         10004,
		"limit-zero":         0,
		"after-invalid-utf8": 10004,
	},
	"FuzzDiffHistoryProto": {
		"limit-past-uint32": 0,
		"fromSeq-as-bytes":  0,
	},
	"FuzzDiffMembersProto": {
		"valid":             0,
		"invalid-utf8-user": 10004,
		"no-users":          10004,
	},
	"FuzzDiffDeleteProto": {
		"requestID-as-fixed32":  0,
		"key-list-empty-string": 10004,
	},
}

// seedTargets are the targets with seeds in testdata/fuzz, with the kind
// and format each decodes.
var seedTargets = map[string]struct {
	o op
	f format
}{
	"FuzzDecodeSetJSON":      {opSet, formatJSON},
	"FuzzDecodeChangeJSON":   {opIncrease, formatJSON},
	"FuzzDecodeGetJSON":      {opGet, formatJSON},
	"FuzzDecodeDeleteJSON":   {opDelete, formatJSON},
	"FuzzDecodeHistoryJSON":  {opHistory, formatJSON},
	"FuzzDecodeSetProto":     {opSet, formatProto},
	"FuzzDecodeChangeProto":  {opIncrease, formatProto},
	"FuzzDecodeGetProto":     {opGet, formatProto},
	"FuzzDecodeDeleteProto":  {opDelete, formatProto},
	"FuzzDecodeHistoryProto": {opHistory, formatProto},
	"FuzzDiffSetJSON":        {opSet, formatJSON},
	"FuzzDiffChangeJSON":     {opIncrease, formatJSON},
	"FuzzDiffGetJSON":        {opGet, formatJSON},
	"FuzzDiffDeleteJSON":     {opDelete, formatJSON},
	"FuzzDiffMembersJSON":    {opMembersAdd, formatJSON},
	"FuzzDiffListJSON":       {opMembersList, formatJSON},
	"FuzzDiffHistoryJSON":    {opHistory, formatJSON},
	"FuzzDiffSetProto":       {opSet, formatProto},
	"FuzzDiffChangeProto":    {opIncrease, formatProto},
	"FuzzDiffGetProto":       {opGet, formatProto},
	"FuzzDiffDeleteProto":    {opDelete, formatProto},
	"FuzzDiffMembersProto":   {opMembersAdd, formatProto},
	"FuzzDiffListProto":      {opMembersList, formatProto},
	"FuzzDiffHistoryProto":   {opHistory, formatProto},
}

// TestFuzzSeeds checks that every seed in testdata/fuzz has its outcome
// in seedOutcomes and gets it: the seeds that must be refused are, and
// the ones that must stay accepted (unknown members holding repeats, a
// valid surrogate pair, escaped field names) are.
func TestFuzzSeeds(t *testing.T) {
	for name, target := range seedTargets {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "fuzz", name)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := seedOutcomes[name]
			seen := map[string]bool{}
			for _, e := range entries {
				seed := e.Name()
				w, ok := want[seed]
				if !ok {
					t.Errorf("seed %s has no outcome in seedOutcomes", seed)
					continue
				}
				seen[seed] = true
				_, err := decodeAsNode(target.o, target.f, readSeed(t, filepath.Join(dir, seed)))
				got := messages.Code(0)
				if err != nil {
					got = actorsCode(err)
				}
				if got != w {
					t.Errorf("seed %s: code %d (%v), want %d", seed, got, err, w)
				}
			}
			for seed := range want {
				if !seen[seed] {
					t.Errorf("seed %s in seedOutcomes is missing from %s", seed, dir)
				}
			}
		})
	}
}

// readSeed reads a seed file of the `go test fuzz v1` format holding one
// []byte.
func readSeed(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	lines.Buffer(nil, 1<<20)
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(got) != 2 || got[0] != "go test fuzz v1" || !strings.HasPrefix(got[1], "[]byte(") || !strings.HasSuffix(got[1], ")") {
		t.Fatalf("%s: not a seed of one []byte", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(got[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
