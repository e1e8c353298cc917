package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
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

// TestHistoryPagesFit writes changes as large as the contract allows (20
// keys of 128 bytes of characters that JSON may escape, values of 20
// digits) and reads them with every page size, in JSON and protobuf: each
// page holds what fits in a NATS message, and nextSeq leads through every
// change exactly once.
func TestHistoryPagesFit(t *testing.T) {
	e := newEnv(t)
	const changes = 60
	for i := range changes {
		counters := map[string]int64{}
		for k := range 20 {
			// Keys of "<" and a quote, which encoding/json escapes to six
			// bytes by default and JSON to two.
			counters[fmt.Sprintf("%02d", k)+strings.Repeat("<", 125)+`"`] = -1<<63 + int64(i)
		}
		body, _ := json.Marshal(map[string]any{"groupID": "big", "counters": counters})
		if m := e.request(t, "tally.v1.admin.set", body, false); m.Header.Get(micro.ErrorCodeHeader) != "" {
			t.Fatalf("set %d: %s", i, m.Data)
		}
	}
	// And an ordinary group: 100 changes of one key with 3-digit values.
	for i := range 100 {
		e.request(t, "tally.v1.admin.increase", []byte(fmt.Sprintf(`{"groupID":"plain","key":"likes","value":%d}`, 100+i)), false)
	}
	max := int(e.nc.MaxPayload())
	for _, c := range []struct {
		group    string
		changes  int
		limit    uint32
		protobuf bool
	}{
		{"big", changes, 0, false}, {"big", changes, 1000, false}, {"big", changes, 1, false}, {"big", changes, 1000, true},
		{"plain", 100, 0, false}, {"plain", 100, 0, true},
	} {
		t.Run(fmt.Sprintf("%s limit %d protobuf %v", c.group, c.limit, c.protobuf), func(t *testing.T) {
			var seqs []uint64
			from, pages := uint64(1), 0
			for from != 0 && pages <= c.changes {
				pages++
				var m *nats.Msg
				var h messages.HistoryReply
				if c.protobuf {
					data, _ := proto.Marshal(&messages.HistoryRequest{GroupId: c.group, FromSeq: from, Limit: c.limit})
					m = e.request(t, "tally.v1.admin.history", data, true)
					if err := proto.Unmarshal(m.Data, &h); err != nil {
						t.Fatalf("page from %d: %v", from, err)
					}
				} else {
					m = e.request(t, "tally.v1.admin.history", []byte(fmt.Sprintf(`{"groupID":%q,"fromSeq":%d,"limit":%d}`, c.group, from, c.limit)), false)
					var j historyReply
					if err := json.Unmarshal(m.Data, &j); err != nil {
						t.Fatalf("page from %d: %v: %.200s", from, err, m.Data)
					}
					h.NextSeq = j.NextSeq
					for _, en := range j.Entries {
						h.Entries = append(h.Entries, &messages.HistoryEntry{Seq: en.Seq})
					}
				}
				if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
					t.Fatalf("page from %d: error %s %s", from, code, m.Data)
				}
				if size := len(m.Data); size > max || len(h.GetEntries()) == 0 {
					t.Fatalf("page from %d: %d bytes and %d entries, want at most %d bytes and at least one entry", from, size, len(h.GetEntries()), max)
				}
				for _, en := range h.GetEntries() {
					seqs = append(seqs, en.GetSeq())
				}
				from = h.GetNextSeq()
			}
			for i, s := range seqs {
				if s != uint64(i+1) {
					t.Fatalf("pages gave changes %v, want 1..%d once each", seqs, c.changes)
				}
			}
			if len(seqs) != c.changes {
				t.Errorf("pages gave %d changes, want %d", len(seqs), c.changes)
			}
			t.Logf("%d changes in %d pages", len(seqs), pages)
		})
	}
}

// TestSlowHistoriesDoNotHoldUpCalls starts a gateway whose journal reads
// for histories hang, sends more histories than the gateway takes
// requests at once, then writes: every write is answered while the
// histories still wait.
func TestSlowHistoriesDoNotHoldUpCalls(t *testing.T) {
	s := journaltest.StartServer(t)
	js := journaltest.JetStream(t, journaltest.Connect(t, s))
	j, err := journal.Open(context.Background(), js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	acfg := actors.DefaultConfig()
	acfg.Journal, acfg.Logger = j, slog.New(slog.DiscardHandler)
	an, err := actors.Start(acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(an.Stop)

	release := make(chan struct{})
	var reading atomic.Int64
	cfg := gateway.DefaultConfig()
	cfg.MaxInFlight, cfg.Logger = 16, slog.New(slog.DiscardHandler)
	cfg.History = func(ctx context.Context, group string, _ uint64, _ int) (*messages.HistoryReply, error) {
		reading.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &messages.HistoryReply{GroupId: group}, nil
	}
	g, err := gateway.Start(journaltest.Connect(t, s), an, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Stop(ctx)
	})

	nc := journaltest.Connect(t, s)
	histories := make(chan *nats.Msg, 100)
	inbox := nats.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, histories)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for range 4 * cfg.MaxInFlight {
		if err := nc.PublishRequest("tally.v1.admin.history", inbox, []byte(`{"groupID":"g"}`)); err != nil {
			t.Fatal(err)
		}
	}
	journaltest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := reading.Load(); n < 8 {
			return fmt.Errorf("%d histories reading, want 8", n)
		}
		return nil
	})
	for i := range 2 * cfg.MaxInFlight {
		m, err := nc.Request("tally.v1.admin.increase", []byte(`{"groupID":"g","key":"k","value":1}`), 5*time.Second)
		if err != nil {
			t.Fatalf("write %d while histories wait: %v", i+1, err)
		}
		if want := fmt.Sprintf(`{"groupID":"g","key":"k","value":%d}`, i+1); string(m.Data) != want {
			t.Fatalf("write %d = %s, want %s", i+1, m.Data, want)
		}
	}
	if len(histories) != 0 {
		t.Errorf("%d histories answered before their reads ended", len(histories))
	}
	close(release)
	for i := range 4 * cfg.MaxInFlight {
		select {
		case <-histories:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d histories answered once their reads ended", i, 4*cfg.MaxInFlight)
		}
	}
}
