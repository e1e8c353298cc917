package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/messages"
)

type historyReply struct {
	GroupID string `json:"groupID"`
	Entries []struct {
		Seq       uint64    `json:"seq"`
		StreamSeq uint64    `json:"streamSeq"`
		Time      time.Time `json:"time"`
		Op        string    `json:"op"`
		User      string    `json:"user"`
		RequestID string    `json:"requestID"`
		Changes   []struct {
			Key    string `json:"key"`
			Before *int64 `json:"before"`
			After  *int64 `json:"after"`
		} `json:"changes"`
	} `json:"entries"`
	NextSeq uint64 `json:"nextSeq"`
}

// summary renders a history reply's entries in one line each.
func (h historyReply) summary() []string {
	var out []string
	for _, e := range h.Entries {
		var cs []string
		for _, c := range e.Changes {
			show := func(v *int64) string {
				if v == nil {
					return "-"
				}
				return fmt.Sprint(*v)
			}
			cs = append(cs, c.Key+":"+show(c.Before)+">"+show(c.After))
		}
		out = append(out, fmt.Sprintf("%d %s %s %s %s", e.Seq, e.Op, e.User, e.RequestID, strings.Join(cs, ",")))
	}
	return out
}

// TestHistoryOverNATS reads a group's changes on tally.v1.admin.history,
// in JSON and protobuf, page by page; bad requests get their contract
// codes, and users cannot reach it.
func TestHistoryOverNATS(t *testing.T) {
	e := newEnv(t)
	writes := []struct{ subject, payload string }{
		{"tally.v1.user.alice.set", `{"groupID":"g1","counters":{"a":1,"b":2},"requestID":"r1"}`},
		{"tally.v1.user.bob.increase", `{"groupID":"g1","key":"a","value":5,"requestID":"r2"}`},
		{"tally.v1.admin.decrease", `{"groupID":"g1","key":"b","value":3,"requestID":"r3"}`},
		{"tally.v1.admin.delete", `{"groupID":"g1","keyList":["a"],"requestID":"r4"}`},
	}
	var made []time.Time // the node's clock at each write
	for _, w := range writes {
		made = append(made, e.clock.Now())
		if code := e.request(t, w.subject, []byte(w.payload), false).Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("%s: error %s", w.subject, code)
		}
		e.clock.Advance(time.Second)
	}
	read := func(payload string) historyReply {
		t.Helper()
		m := e.request(t, "tally.v1.admin.history", []byte(payload), false)
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("history %s: error %s %s", payload, code, m.Data)
		}
		var h historyReply
		if err := json.Unmarshal(m.Data, &h); err != nil {
			t.Fatalf("history %s: %v: %s", payload, err, m.Data)
		}
		return h
	}
	all := read(`{"groupID":"g1"}`)
	want := []string{"1 set alice r1 a:->1,b:->2", "2 increase bob r2 a:1>6", "3 decrease  r3 b:2>-1", "4 delete  r4 a:6>-"}
	if got := all.summary(); !cmp.Equal(got, want) || all.GroupID != "g1" || all.NextSeq != 0 {
		t.Errorf("history g1 = %v (next %d), want %v", got, all.NextSeq, want)
	}
	for i, en := range all.Entries {
		if i >= len(made) || !en.Time.Equal(made[i]) || en.StreamSeq != uint64(i+1) {
			t.Errorf("entry %d: time %v, stream sequence %d; want %v and %d", en.Seq, en.Time, en.StreamSeq, made[min(i, len(made)-1)], i+1)
		}
	}
	page := read(`{"groupID":"g1","fromSeq":2,"limit":2}`)
	if got := page.summary(); !cmp.Equal(got, want[1:3]) || page.NextSeq != 4 {
		t.Errorf("history from 2, limit 2 = %v, next %d; want %v, next 4", got, page.NextSeq, want[1:3])
	}
	if none := read(`{"groupID":"never"}`); len(none.Entries) != 0 || none.NextSeq != 0 {
		t.Errorf("history of a group never written = %+v", none)
	}

	// The same over protobuf.
	data, _ := proto.Marshal(&messages.HistoryRequest{GroupId: "g1", FromSeq: 4})
	m := e.request(t, "tally.v1.admin.history", data, true)
	var pr messages.HistoryReply
	if err := proto.Unmarshal(m.Data, &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.GetEntries()) != 1 || pr.GetEntries()[0].GetOp() != "delete" || pr.GetEntries()[0].GetChanges()[0].GetBefore() != 6 ||
		pr.GetEntries()[0].GetChanges()[0].After != nil || pr.GetEntries()[0].GetRequestId() != "r4" {
		t.Errorf("protobuf history from 4 = %v", &pr)
	}

	// What a careless or hostile back end may send.
	for _, c := range []struct{ payload, code string }{
		{`not json`, "10004"},
		{`{"groupID":"g1","limit":1001}`, "10004"},
		{`{"groupID":"g1","limit":-1}`, "10004"},
		{`{"groupID":"g1","fromSeq":"2"}`, "10004"},
		{`{"groupID":"a.b"}`, "10015"},
		{`{"groupID":""}`, "10015"},
		{`{"groupID":"` + strings.Repeat("g", 49) + `"}`, "10015"},
	} {
		m := e.request(t, "tally.v1.admin.history", []byte(c.payload), false)
		if got := m.Header.Get(micro.ErrorCodeHeader); got != c.code {
			t.Errorf("history %s: code %q, want %s (%s)", c.payload, got, c.code, m.Data)
		}
	}
	// History is for back ends: no user subject serves it.
	if _, err := e.nc.Request("tally.v1.user.alice.history", []byte(`{"groupID":"g1"}`), 200*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("a user's history request: %v, want no responders", err)
	}
}
