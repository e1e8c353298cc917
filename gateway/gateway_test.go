package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/messages"
)

// TestSeedExamplesJSON runs the examples of Tencent's API over NATS with
// JSON payloads and checks the replies and the updates byte for byte.
func TestSeedExamplesJSON(t *testing.T) {
	e := newEnv(t)
	ups := e.updates(t)
	steps := []struct{ subject, payload, reply string }{
		{"tally.v1.user.alice.set", `{"groupID":"group1","counters":{"key1":0,"key2":0}}`, `{"groupID":"group1","counters":{"key1":0,"key2":0}}`},
		{"tally.v1.user.alice.set", `{"groupID":"group1","counters":{"key1":8}}`, `{"groupID":"group1","counters":{"key1":8}}`},
		{"tally.v1.user.alice.increase", `{"groupID":"group1","key":"key1","value":2}`, `{"groupID":"group1","key":"key1","value":10}`},
		{"tally.v1.user.alice.set", `{"groupID":"group1","counters":{"key1":8}}`, `{"groupID":"group1","counters":{"key1":8}}`},
		{"tally.v1.user.alice.decrease", `{"groupID":"group1","key":"key1","value":2}`, `{"groupID":"group1","key":"key1","value":6}`},
		{"tally.v1.user.alice.get", `{"groupID":"group1","keyList":["key1","key2"]}`, `{"groupID":"group1","counters":{"key1":6,"key2":0},"seq":5}`},
		{"tally.v1.user.alice.get", `{"groupID":"group1","keyList":["key1","nope"]}`, `{"groupID":"group1","counters":{"key1":6},"seq":5}`},
		{"tally.v1.user.alice.get", `{"groupID":"group1"}`, `{"groupID":"group1","counters":{"key1":6,"key2":0},"seq":5}`},
		{"tally.v1.user.alice.get", `{"groupID":"group1","keyList":[]}`, `{"groupID":"group1","counters":{"key1":6,"key2":0},"seq":5}`},
		{"tally.v1.user.alice.get", `{"groupID":"empty"}`, `{"groupID":"empty","counters":{},"seq":0}`},
	}
	for _, s := range steps {
		reply := e.request(t, s.subject, []byte(s.payload), false)
		if got := string(reply.Data); got != s.reply {
			t.Errorf("%s %s = %s, want %s", s.subject, s.payload, got, s.reply)
		}
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Errorf("%s %s: error code %s", s.subject, s.payload, code)
		}
	}
	want := []string{
		`{"groupID":"group1","key":"key1","value":0,"seq":1}`,
		`{"groupID":"group1","key":"key2","value":0,"seq":1}`,
		`{"groupID":"group1","key":"key1","value":8,"seq":2}`,
		`{"groupID":"group1","key":"key1","value":10,"seq":3}`,
		`{"groupID":"group1","key":"key1","value":8,"seq":4}`,
		`{"groupID":"group1","key":"key1","value":6,"seq":5}`,
	}
	for i, w := range want {
		m := next(t, ups)
		if m.Subject != "tally.v1.updates.group1" || string(m.Data) != w {
			t.Errorf("update %d = %s %s, want tally.v1.updates.group1 %s", i, m.Subject, m.Data, w)
		}
	}
}

// TestErrors sends every kind of bad request: each gets its contract code
// in the headers and the body, changes nothing and publishes nothing.
func TestErrors(t *testing.T) {
	e := newEnv(t)
	full := map[string]int64{"max": 1<<63 - 1, "min": -1 << 63}
	for i := range 18 {
		full[fmt.Sprintf("k%d", i)] = int64(i)
	}
	body, _ := json.Marshal(map[string]any{"groupID": "g", "counters": full})
	ups := e.updates(t)
	e.request(t, "tally.v1.admin.set", body, false)
	for range full {
		next(t, ups)
	}

	long := strings.Repeat("k", 129)
	tests := []struct {
		name, subject, payload string
		code                   int
	}{
		{"malformed JSON", "increase", `{"groupID":"g",`, 10004},
		{"not an object", "increase", `[1,2]`, 10004},
		{"null", "increase", `null`, 10004},
		{"empty payload", "increase", ``, 10004},
		{"value as string", "increase", `{"groupID":"g","key":"k1","value":"2"}`, 10004},
		{"value as fraction", "increase", `{"groupID":"g","key":"k1","value":2.5}`, 10004},
		{"value past int64", "increase", `{"groupID":"g","key":"k1","value":9223372036854775808}`, 10004},
		// The refusal quotes the start of the number: quoted whole, it made a
		// reply too big to send for a literal of half the max_payload.
		{"value of 5,000 digits", "increase", `{"groupID":"g","key":"k1","value":` + strings.Repeat("9", 5000) + `}`, 10004},
		{"missing value", "increase", `{"groupID":"g","key":"k1"}`, 10004},
		{"negative value", "decrease", `{"groupID":"g","key":"k1","value":-1}`, 10004},
		{"group ID as number", "increase", `{"groupID":5,"key":"k1","value":1}`, 10004},
		{"counters as array", "set", `{"groupID":"g","counters":[1]}`, 10004},
		{"counter as string", "set", `{"groupID":"g","counters":{"k1":"1"}}`, 10004},
		{"counter as null", "set", `{"groupID":"g","counters":{"k1":null}}`, 10004},
		{"empty set", "set", `{"groupID":"g","counters":{}}`, 10004},
		{"set without counters", "set", `{"groupID":"g"}`, 10004},
		{"21st key by set", "set", `{"groupID":"g","counters":{"new":1}}`, 10004},
		{"21st key by increase", "increase", `{"groupID":"g","key":"new","value":1}`, 10004},
		{"129-byte key", "increase", `{"groupID":"g","key":"` + long + `","value":1}`, 10004},
		{"129-byte key in get", "get", `{"groupID":"g","keyList":["` + long + `"]}`, 10004},
		{"increase past MaxInt64", "increase", `{"groupID":"g","key":"max","value":1}`, 10004},
		{"decrease below MinInt64", "decrease", `{"groupID":"g","key":"min","value":1}`, 10004},
		{"keyList as string", "get", `{"groupID":"g","keyList":"k1"}`, 10004},
		{"65-byte request ID", "increase", `{"groupID":"g","key":"k1","value":1,"requestID":"` + strings.Repeat("r", 65) + `"}`, 10004},
		{"missing group ID", "increase", `{"key":"k1","value":1}`, 10015},
		{"49-byte group ID", "increase", `{"groupID":"` + strings.Repeat("g", 49) + `","key":"k1","value":1}`, 10015},
		{"group ID with a dot", "get", `{"groupID":"a.b"}`, 10015},
		{"group ID with a space", "set", `{"groupID":"a b","counters":{"k":1}}`, 10015},
		{"group ID with a wildcard", "decrease", `{"groupID":"a>","key":"k1","value":1}`, 10015},
		{"group ID with a non-ASCII byte", "get", `{"groupID":"gé"}`, 10015},
		{"15 KB group ID", "get", `{"groupID":"` + strings.Repeat("g", 15_000) + `"}`, 10015},
		// encoding/json would read these as U+FFFD, so different invalid
		// keys would become one counter; group u8 is empty, so they would
		// be stored.
		{"raw 0xff in a key", "set", "{\"groupID\":\"u8\",\"counters\":{\"k\xff\":1}}", 10004},
		{"raw 0xfe in a key", "increase", "{\"groupID\":\"u8\",\"key\":\"k\xfe\",\"value\":1}", 10004},
		{"lone high surrogate", "set", `{"groupID":"u8","counters":{"k\ud800":1}}`, 10004},
		{"lone low surrogate", "increase", `{"groupID":"u8","key":"\udc00k","value":1}`, 10004},
		{"high surrogate then a letter", "increase", `{"groupID":"u8","key":"\ud83dx","value":1}`, 10004},
		// Field names are exact: a proxy that reads JSON otherwise must
		// not be shown one request while tally acts on another.
		{"field names in capitals", "increase", `{"GROUPID":"u8","KEY":"k","VALUE":3}`, 10004},
		{"one field name in another case", "increase", `{"groupID":"u8","key":"k","Value":3}`, 10004},
		{"field name folded by Unicode", "increase", `{"groupID":"u8","key":"k","value":1,"requeſtID":"r"}`, 10004},
		{"group ID twice", "increase", `{"groupID":"g","groupID":"u8","key":"k","value":1}`, 10004},
		{"group ID twice, once escaped", "increase", `{"groupID":"g","group\u0049D":"u8","key":"k","value":1}`, 10004},
		{"counters twice", "set", `{"groupID":"u8","counters":{"a":1},"counters":{"b":2}}`, 10004},
		{"a counter twice", "set", `{"groupID":"u8","counters":{"a":1,"a":2}}`, 10004},
		{"a counter twice, once escaped", "set", `{"groupID":"u8","counters":{"a":1,"\u0061":2}}`, 10004},
		{"key list twice", "get", `{"groupID":"u8","keyList":["a"],"keyList":["b"]}`, 10004},
		{"invalid UTF-8 in a request ID", "increase", "{\"groupID\":\"u8\",\"key\":\"k\",\"value\":1,\"requestID\":\"\xff\"}", 10004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := e.request(t, "tally.v1.user.bob."+tt.subject, []byte(tt.payload), false)
			checkError(t, reply, tt.code)
			if len(reply.Data) > 1024 {
				t.Errorf("error reply of %d bytes", len(reply.Data))
			}
			// The admin subjects validate the same way.
			admin := e.request(t, "tally.v1.admin."+tt.subject, []byte(tt.payload), false)
			checkError(t, admin, tt.code)
			e.clock.Advance(time.Second) // keep bob's calls under the rate limit
		})
	}
	t.Run("bad user ID", func(t *testing.T) {
		for _, user := range []string{strings.Repeat("u", 33), "ü"} {
			reply := e.request(t, "tally.v1.user."+user+".get", []byte(`{"groupID":"g"}`), false)
			checkError(t, reply, 10004)
		}
	})

	got := e.request(t, "tally.v1.admin.get", []byte(`{"groupID":"g"}`), false)
	var state struct{ Counters map[string]int64 }
	if err := json.Unmarshal(got.Data, &state); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(full, state.Counters); diff != "" {
		t.Errorf("refused requests changed g (-want +got):\n%s", diff)
	}
	if got := e.request(t, "tally.v1.admin.get", []byte(`{"groupID":"u8"}`), false); string(got.Data) != `{"groupID":"u8","counters":{},"seq":0}` {
		t.Errorf("refused requests changed u8: %s", got.Data)
	}
	// A valid surrogate pair is a character like any other.
	if got := e.request(t, "tally.v1.admin.increase", []byte(`{"groupID":"u8","key":"\ud83d\ude00 \\ud800","value":1}`), false); string(got.Data) != `{"groupID":"u8","key":"😀 \\ud800","value":1}` {
		t.Errorf("increase of a key with a surrogate pair and an escaped backslash = %s", got.Data)
	}
	next(t, ups) // u8's
	// Unknown fields stay ignored, whatever they hold.
	if got := e.request(t, "tally.v1.admin.increase", []byte(`{"groupID":"u8","key":"k","value":1,"extra":{"a":1,"a":2,"GROUPID":3},"more":[{"x":"\u00e9"},[],"]}"]}`), false); string(got.Data) != `{"groupID":"u8","key":"k","value":1}` {
		t.Errorf("increase with unknown fields = %s", got.Data)
	}
	next(t, ups)
	// The first update after the refused requests is this write's.
	e.request(t, "tally.v1.admin.increase", []byte(`{"groupID":"g","key":"k1","value":1}`), false)
	if m := next(t, ups); string(m.Data) != `{"groupID":"g","key":"k1","value":2,"seq":2}` {
		t.Errorf("first update after refused requests = %s", m.Data)
	}
}

func checkError(t *testing.T, reply *nats.Msg, code int) {
	t.Helper()
	if got := reply.Header.Get(micro.ErrorCodeHeader); got != fmt.Sprint(code) {
		t.Errorf("%s = %s, want error code %d", micro.ErrorCodeHeader, got, code)
	}
	if reply.Header.Get(micro.ErrorHeader) == "" {
		t.Errorf("no %s header", micro.ErrorHeader)
	}
	var body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(reply.Data, &body); err != nil {
		t.Fatalf("error body %q: %v", reply.Data, err)
	}
	if body.Code != code || body.Message == "" {
		t.Errorf("error body = %s, want code %d and a message", reply.Data, code)
	}
}

// TestProtobuf runs every endpoint with protobuf payloads.
func TestProtobuf(t *testing.T) {
	e := newEnv(t)
	call := func(subject string, req, reply proto.Message) *messages.Error {
		t.Helper()
		data, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		m := e.request(t, subject, data, true)
		if m.Header.Get("Content-Type") != gateway.ContentTypeProtobuf {
			t.Errorf("%s: reply Content-Type = %q", subject, m.Header.Get("Content-Type"))
		}
		if m.Header.Get(micro.ErrorCodeHeader) != "" {
			var e messages.Error
			if err := proto.Unmarshal(m.Data, &e); err != nil {
				t.Fatal(err)
			}
			return &e
		}
		if err := proto.Unmarshal(m.Data, reply); err != nil {
			t.Fatalf("%s reply: %v", subject, err)
		}
		return nil
	}
	check := func(name string, want, got proto.Message) {
		t.Helper()
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	for round, prefix := range []string{"tally.v1.user.carol.", "tally.v1.admin."} {
		var set messages.SetReply
		call(prefix+"set", &messages.SetRequest{GroupId: "p", Counters: map[string]int64{"a": 8, "b": 0}}, &set)
		check("set", &messages.SetReply{GroupId: "p", Counters: map[string]int64{"a": 8, "b": 0}}, &set)
		var inc, dec messages.ChangeReply
		call(prefix+"increase", &messages.ChangeRequest{GroupId: "p", Key: "a", Value: 2}, &inc)
		check("increase", &messages.ChangeReply{GroupId: "p", Key: "a", Value: 10}, &inc)
		call(prefix+"decrease", &messages.ChangeRequest{GroupId: "p", Key: "a", Value: 4}, &dec)
		check("decrease", &messages.ChangeReply{GroupId: "p", Key: "a", Value: 6}, &dec)
		var got messages.GetReply
		call(prefix+"get", &messages.GetRequest{GroupId: "p"}, &got)
		check("get", &messages.GetReply{GroupId: "p", Counters: map[string]int64{"a": 6, "b": 0}, Seq: uint64(3 * (round + 1))}, &got)
		errBody := call(prefix+"increase", &messages.ChangeRequest{GroupId: "p", Key: "a", Value: -1}, &inc)
		if errBody.GetCode() != 10004 || errBody.GetMessage() == "" {
			t.Errorf("negative increase error = %v, want code 10004 with a message", errBody)
		}
		if e := call(prefix+"get", &messages.GetRequest{}, &got); e.GetCode() != 10015 {
			t.Errorf("get without group = %v, want 10015", e)
		}
	}
	var del messages.DeleteReply
	call("tally.v1.admin.delete", &messages.DeleteRequest{GroupId: "p", KeyList: []string{"b"}}, &del)
	check("delete", &messages.DeleteReply{GroupId: "p"}, &del)
	var after messages.GetReply
	call("tally.v1.admin.get", &messages.GetRequest{GroupId: "p"}, &after)
	check("get after delete", &messages.GetReply{GroupId: "p", Counters: map[string]int64{"a": 6}, Seq: 7}, &after)
	if e := call("tally.v1.admin.set", &messages.SetRequest{GroupId: "p"}, &messages.SetReply{}); e.GetCode() != 10004 {
		t.Errorf("empty set = %v, want 10004", e)
	}
	m := e.request(t, "tally.v1.admin.get", []byte{0xff, 0xff}, true)
	if m.Header.Get(micro.ErrorCodeHeader) != "10004" {
		t.Errorf("malformed protobuf: code %q, want 10004", m.Header.Get(micro.ErrorCodeHeader))
	}
}

// TestDeleteJSON deletes keys and then the whole group over the admin
// subject; the user subjects have no delete.
func TestDeleteJSON(t *testing.T) {
	e := newEnv(t)
	ups := e.updates(t)
	e.request(t, "tally.v1.admin.set", []byte(`{"groupID":"d","counters":{"a":1,"b":2}}`), false)
	next(t, ups)
	next(t, ups)
	for _, s := range []struct{ payload, update string }{
		{`{"groupID":"d","keyList":["a"]}`, `{"groupID":"d","key":"a","value":0,"seq":2,"deleted":true}`},
		{`{"groupID":"d"}`, `{"groupID":"d","key":"b","value":0,"seq":3,"deleted":true}`},
	} {
		reply := e.request(t, "tally.v1.admin.delete", []byte(s.payload), false)
		if string(reply.Data) != `{"groupID":"d"}` {
			t.Errorf("delete %s = %s", s.payload, reply.Data)
		}
		if m := next(t, ups); string(m.Data) != s.update {
			t.Errorf("update of delete %s = %s, want %s", s.payload, m.Data, s.update)
		}
	}
	if _, err := e.nc.Request("tally.v1.user.alice.delete", []byte(`{"groupID":"d"}`), 200*time.Millisecond); err == nil {
		t.Errorf("a user delete was answered; only admins may delete")
	}
}

// TestRequestIDOfAnotherUser sends bob's write under the request ID of
// alice's, body and all: it is bob's own write, applied.
func TestRequestIDOfAnotherUser(t *testing.T) {
	e := newEnv(t)
	inc := []byte(`{"groupID":"g","key":"k","value":1,"requestID":"r1"}`)
	for _, step := range []struct{ subject, want string }{
		{"tally.v1.user.alice.increase", `{"groupID":"g","key":"k","value":1}`},
		{"tally.v1.user.bob.increase", `{"groupID":"g","key":"k","value":2}`},
		{"tally.v1.admin.increase", `{"groupID":"g","key":"k","value":3}`},
		{"tally.v1.user.bob.increase", `{"groupID":"g","key":"k","value":2}`}, // bob's retry
	} {
		if m := e.request(t, step.subject, inc, false); string(m.Data) != step.want {
			t.Errorf("%s = %s, want %s", step.subject, m.Data, step.want)
		}
	}
}

func TestRateLimitOverNATS(t *testing.T) {
	e := newEnv(t)
	inc := []byte(`{"groupID":"g","key":"k","value":1}`)
	for i := range 20 {
		if m := e.request(t, "tally.v1.user.dave.increase", inc, false); m.Header.Get(micro.ErrorCodeHeader) != "" {
			t.Fatalf("write %d refused: %s", i+1, m.Data)
		}
	}
	checkError(t, e.request(t, "tally.v1.user.dave.set", []byte(`{"groupID":"g","counters":{"k":0}}`), false), 2996)
	// Once refused, dave's writes are refused where they enter, before
	// they are decoded: a malformed one too (it would not count anyway).
	checkError(t, e.request(t, "tally.v1.user.dave.increase", []byte(`{"groupID":`), false), 2996)
	checkError(t, e.request(t, "tally.v1.user.dave.increase", inc, false), 2996)
	if m := e.request(t, "tally.v1.user.dave.get", []byte(`{"groupID":"g"}`), false); string(m.Data) != `{"groupID":"g","counters":{"k":20},"seq":20}` {
		t.Errorf("get while writes are limited = %s", m.Data)
	}
	// Other users are not refused.
	if m := e.request(t, "tally.v1.user.erin.increase", inc, false); string(m.Data) != `{"groupID":"g","key":"k","value":21}` {
		t.Errorf("another user's write = %s", m.Data)
	}
	e.clock.Advance(5 * time.Second)
	if m := e.request(t, "tally.v1.user.dave.decrease", inc, false); string(m.Data) != `{"groupID":"g","key":"k","value":20}` {
		t.Errorf("write after the window slid = %s", m.Data)
	}
}

// TestConcurrentIncrementsOverNATS: 20 clients x 100 increments on one key
// end at 2,000, and so do the updates a subscriber sees.
func TestConcurrentIncrementsOverNATS(t *testing.T) {
	e := newEnv(t)
	ups := e.updates(t)
	const clients, each = 20, 100
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				m, err := e.nc.Request("tally.v1.admin.increase", []byte(`{"groupID":"live","key":"likes","value":1}`), 5*time.Second)
				if err != nil || m.Header.Get(micro.ErrorCodeHeader) != "" {
					t.Errorf("increase: %v %s", err, m.Data)
					return
				}
			}
		})
	}
	wg.Wait()
	m := e.request(t, "tally.v1.admin.get", []byte(`{"groupID":"live"}`), false)
	if string(m.Data) != `{"groupID":"live","counters":{"likes":2000},"seq":2000}` {
		t.Errorf("after %d increments: %s", clients*each, m.Data)
	}
	type update struct {
		Value int64  `json:"value"`
		Seq   uint64 `json:"seq"`
	}
	var last update
	for i := range clients * each {
		var u update
		if err := json.Unmarshal(next(t, ups).Data, &u); err != nil {
			t.Fatal(err)
		}
		if u.Seq != uint64(i+1) {
			t.Fatalf("update %d has seq %d", i+1, u.Seq)
		}
		last = u
	}
	if last.Value != clients*each {
		t.Errorf("last update = %d, want %d", last.Value, clients*each)
	}
}

// TestServiceDiscovery checks the micro service's $SRV endpoints.
func TestServiceDiscovery(t *testing.T) {
	e := newEnv(t)
	m := e.request(t, "$SRV.INFO.tally", nil, false)
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, ep := range info.Endpoints {
		subjects = append(subjects, ep.Subject)
		if ep.QueueGroup != "tally" {
			t.Errorf("endpoint %s in queue group %q, want tally", ep.Subject, ep.QueueGroup)
		}
	}
	want := []string{
		"tally.v1.user.*.set", "tally.v1.admin.set",
		"tally.v1.user.*.increase", "tally.v1.admin.increase",
		"tally.v1.user.*.decrease", "tally.v1.admin.decrease",
		"tally.v1.user.*.get", "tally.v1.admin.get",
		"tally.v1.admin.delete", "tally.v1.admin.members.add", "tally.v1.admin.members.remove",
		"tally.v1.admin.members.list", "tally.v1.admin.history",
	}
	if info.Name != "tally" || !cmp.Equal(want, subjects) {
		t.Errorf("service %q serves %v, want tally serving %v", info.Name, subjects, want)
	}
	if m := e.request(t, "$SRV.PING.tally", nil, false); !strings.Contains(string(m.Data), `"name":"tally"`) {
		t.Errorf("$SRV.PING.tally = %s", m.Data)
	}

	// Statistics count the replies sent from the actors, errors included.
	e.request(t, "tally.v1.admin.increase", []byte(`{"groupID":"s","key":"k","value":1}`), false)
	e.request(t, "tally.v1.admin.increase", []byte(`{"groupID":"s","key":"k","value":-1}`), false)
	e.request(t, "tally.v1.admin.increase", []byte(`{"groupID":"s","key":"k","value":2}`), false)
	var stats micro.Stats
	if err := json.Unmarshal(e.request(t, "$SRV.STATS.tally."+info.ID, nil, false).Data, &stats); err != nil {
		t.Fatal(err)
	}
	for _, ep := range stats.Endpoints {
		want := [2]int{0, 0}
		if ep.Subject == "tally.v1.admin.increase" {
			want = [2]int{3, 1}
		}
		if got := [2]int{ep.NumRequests, ep.NumErrors}; got != want {
			t.Errorf("%s: %d requests, %d errors; want %d, %d", ep.Subject, got[0], got[1], want[0], want[1])
		}
		if ep.NumRequests > 0 && (ep.ProcessingTime <= 0 || !strings.Contains(ep.LastError, "negative")) {
			t.Errorf("%s: processing time %v, last error %q", ep.Subject, ep.ProcessingTime, ep.LastError)
		}
	}
}

// TestJournalRecordsTheUser checks that each journaled change names the
// user of the subject it came on, and none for an admin's call.
func TestJournalRecordsTheUser(t *testing.T) {
	e := newEnv(t)
	for _, subject := range []string{"tally.v1.user.alice.increase", "tally.v1.admin.increase", "tally.v1.user.bob.set"} {
		payload := `{"groupID":"g1","key":"k","value":1}`
		if strings.HasSuffix(subject, ".set") {
			payload = `{"groupID":"g1","counters":{"k":5}}`
		}
		if code := e.request(t, subject, []byte(payload), false).Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("%s: error %s", subject, code)
		}
	}
	nc, err := e.node.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream, err := js.Stream(ctx, "TALLY_JOURNAL")
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var ev messages.Event
		if err := proto.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		for _, c := range ev.GetChanges() {
			users = append(users, c.GetUser())
		}
	}
	if want := []string{"alice", "", "bob"}; !slices.Equal(users, want) {
		t.Errorf("the journal's changes name users %q, want %q", users, want)
	}
}
