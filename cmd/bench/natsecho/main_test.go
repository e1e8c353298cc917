package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/messages"
)

// serve runs natsecho in the test and returns a connection to it.
func serve(t *testing.T, mode string) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, mode, func(url string) { urls <- url }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("natsecho not serving after 30 s")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func increase(t *testing.T, nc *nats.Conn, group string) *nats.Msg {
	t.Helper()
	data, err := proto.Marshal(&messages.ChangeRequest{GroupId: group, Key: "likes", Value: 1})
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "tally.v1.user.alice.increase", Data: data, Header: protoHeader}
	res, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("answered with error %s: %s", code, res.Header.Get(micro.ErrorHeader))
	}
	if got := res.Header.Get("Content-Type"); got != gateway.ContentTypeProtobuf {
		t.Errorf("reply Content-Type = %q, want %q", got, gateway.ContentTypeProtobuf)
	}
	return res
}

func TestEchoAnswersWithThePayload(t *testing.T) {
	nc := serve(t, modeEcho)
	res := increase(t, nc, "g1")
	var got messages.ChangeRequest
	if err := proto.Unmarshal(res.Data, &got); err != nil || got.GetGroupId() != "g1" || got.GetValue() != 1 {
		t.Errorf("reply %x decodes to %v, %v; want the request back", res.Data, &got, err)
	}
}

// TestJournalAppendsBeforeAnswering checks that the journaled ceiling does
// the work it stands for: each answer is the acknowledgement of an append
// of the request to its group's subject.
func TestJournalAppendsBeforeAnswering(t *testing.T) {
	nc := serve(t, modeJournal)
	groups := []string{"g1", "g2", "g1"}
	for i, g := range groups {
		res := increase(t, nc, g)
		var ack jetstream.PubAck
		if err := json.Unmarshal(res.Data, &ack); err != nil {
			t.Fatalf("reply %q is not an acknowledgement: %v", res.Data, err)
		}
		if ack.Stream != "ECHO_JOURNAL" || ack.Sequence != uint64(i+1) {
			t.Errorf("append %d acknowledged as %+v, want stream ECHO_JOURNAL seq %d", i+1, ack, i+1)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "ECHO_JOURNAL")
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range groups {
		m, err := stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		var req messages.ChangeRequest
		if m.Subject != "echo.journal."+g || proto.Unmarshal(m.Data, &req) != nil || req.GetGroupId() != g {
			t.Errorf("message %d on %s holds %x, want the request of %s on echo.journal.%s", i+1, m.Subject, m.Data, g, g)
		}
	}
}

func TestJournalsRefuseAnUnreadableRequest(t *testing.T) {
	for _, mode := range []string{modeJournal, modeBatched, modeAtomic} {
		t.Run(mode, func(t *testing.T) {
			nc := serve(t, mode)
			res, err := nc.Request("tally.v1.user.alice.increase", []byte("not protobuf"), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code := res.Header.Get(micro.ErrorCodeHeader); code != "10002" {
				t.Errorf("error code = %q, want 10002 (the benchmark counts it as failed)", code)
			}
		})
	}
}
