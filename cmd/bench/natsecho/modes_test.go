package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/messages"
)

const (
	callers        = 16
	callsPerCaller = 40
	testGroups     = 25 // fewer than the calls in flight: batches meet a group twice
)

// sent is one request of callMany and the replies it got.
type sent struct {
	group   string
	payload []byte
	replies []*nats.Msg
}

// callMany sends callers×callsPerCaller increases at once from callers
// goroutines sharing nc, as a back-end service does, each request with a
// reply subject of its own, and collects every reply. Once each request has
// one, it sends one more request and reads up to its reply: natsecho sends
// its replies in order on one connection, so a second reply to any earlier
// request would have arrived by then.
func callMany(t *testing.T, nc *nats.Conn) []sent {
	t.Helper()
	const prefix = "_INBOX.callmany."
	sub, err := nc.SubscribeSync(prefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	calls := make([]sent, callers*callsPerCaller+1) // the last: the closing request
	for i := range calls {
		g := fmt.Sprintf("g%d", i%testGroups)
		if i == len(calls)-1 {
			g = "closing"
		}
		data, err := proto.Marshal(&messages.ChangeRequest{GroupId: g, Key: "likes", Value: int64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = sent{group: g, payload: data}
	}
	send := func(i int) error {
		return nc.PublishMsg(&nats.Msg{Subject: "tally.v1.user.alice.increase", Reply: prefix + strconv.Itoa(i),
			Data: calls[i].payload, Header: protoHeader})
	}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := c * callsPerCaller; i < (c+1)*callsPerCaller; i++ {
				if err := send(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	answered, closing := 0, len(calls)-1
	for len(calls[closing].replies) == 0 {
		res, err := sub.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("%d of %d requests answered: %v", answered, closing, err)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(res.Subject, prefix))
		if err != nil || i < 0 || i >= len(calls) {
			t.Fatalf("reply on %s: not one of the requests", res.Subject)
		}
		if len(calls[i].replies) == 0 && i != closing {
			answered++
		}
		calls[i].replies = append(calls[i].replies, res)
		if answered == closing && i != closing && len(calls[i].replies) == 1 {
			if err := send(closing); err != nil {
				t.Fatal(err)
			}
		}
	}
	return calls[:closing]
}

// TestEveryCallAnsweredOnce checks, in every mode, that many concurrent
// callers on one connection each get exactly one reply, and not an error:
// the payload back from nats-echo, an acknowledgement from the journals.
func TestEveryCallAnsweredOnce(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			calls := callMany(t, serve(t, mode))
			for i, c := range calls {
				if len(c.replies) != 1 {
					t.Errorf("request %d: %d replies, want 1", i, len(c.replies))
					continue
				}
				res := c.replies[0]
				if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
					t.Errorf("request %d answered with error %s: %s", i, code, res.Header.Get(micro.ErrorHeader))
					continue
				}
				if mode == modeEcho {
					if !bytes.Equal(res.Data, c.payload) {
						t.Errorf("request %d: reply %x, want its payload %x", i, res.Data, c.payload)
					}
					continue
				}
				if ack := ackOf(t, res); ack.Stream != streamName || ack.Sequence == 0 {
					t.Errorf("request %d: reply %s, want an acknowledgement from %s", i, res.Data, streamName)
				}
			}
		})
	}
}

func ackOf(t *testing.T, res *nats.Msg) pubAck {
	t.Helper()
	var ack pubAck
	if err := json.Unmarshal(res.Data, &ack); err != nil {
		t.Fatalf("reply %q is not an acknowledgement: %v", res.Data, err)
	}
	return ack
}

// storedMsgs reads every message of the journal's stream, by sequence.
func storedMsgs(t *testing.T, nc *nats.Conn) map[uint64]*jetstream.RawStreamMsg {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[uint64]*jetstream.RawStreamMsg{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		msgs[seq] = m
	}
	return msgs
}

// TestBatchedJournalStoresEachCallOnce checks that each call's
// acknowledgement names one message of the batched journal that holds the
// call's payload, and that the stream holds every payload once.
func TestBatchedJournalStoresEachCallOnce(t *testing.T) {
	nc := serve(t, modeBatched)
	calls := callMany(t, nc)
	msgs := storedMsgs(t, nc)
	stored := map[string]int{}
	for seq, m := range msgs {
		if m.Subject != batchSubject {
			t.Errorf("message %d on %s, want %s", seq, m.Subject, batchSubject)
		}
		payloads, err := decodeBatch(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		for _, p := range payloads {
			stored[string(p)]++
		}
	}
	for i, c := range calls {
		if n := stored[string(c.payload)]; n != 1 {
			t.Errorf("request %d stored %d times, want once", i, n)
		}
		m := msgs[ackOf(t, c.replies[0]).Sequence]
		if m == nil {
			t.Errorf("request %d: acknowledged with a sequence the stream does not hold", i)
			continue
		}
		payloads, _ := decodeBatch(m.Data)
		if !containsPayload(payloads, c.payload) {
			t.Errorf("request %d: the acknowledged message %d does not hold its payload", i, m.Sequence)
		}
	}
	if len(stored) < len(calls) || len(msgs) >= len(calls) {
		t.Errorf("%d payloads in %d messages, want at least %d payloads in fewer messages", len(stored), len(msgs), len(calls))
	}
}

func containsPayload(payloads [][]byte, p []byte) bool {
	for _, q := range payloads {
		if bytes.Equal(q, p) {
			return true
		}
	}
	return false
}

// stored is where a payload is stored.
type stored struct {
	seq     uint64
	subject string
}

// walkFenced walks msgs in stream order, checks that each was appended
// expecting its subject's real last sequence, and returns where each
// payload is stored, the payloads of a message read by payloadsOf; each,
// when set, sees every message.
func walkFenced(t *testing.T, msgs map[uint64]*jetstream.RawStreamMsg, payloadsOf func([]byte) ([][]byte, error), each func(*jetstream.RawStreamMsg)) map[string][]stored {
	t.Helper()
	places := map[string][]stored{}
	last := map[string]uint64{} // subject -> its last sequence so far
	for seq := uint64(1); seq <= uint64(len(msgs)); seq++ {
		m := msgs[seq]
		if m == nil {
			t.Fatalf("message %d missing", seq)
		}
		if got, want := m.Header.Get(hdrExpectedSeq), strconv.FormatUint(last[m.Subject], 10); got != want {
			t.Errorf("message %d on %s expected last sequence %q, want %s", seq, m.Subject, got, want)
		}
		last[m.Subject] = seq
		payloads, err := payloadsOf(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		for _, p := range payloads {
			places[string(p)] = append(places[string(p)], stored{seq, m.Subject})
		}
		if each != nil {
			each(m)
		}
	}
	return places
}

// storedOnce checks that each call's payload is stored once, on its
// group's subject, and returns where, or false.
func storedOnce(t *testing.T, i int, c sent, places map[string][]stored) (stored, bool) {
	t.Helper()
	ws := places[string(c.payload)]
	if len(ws) != 1 {
		t.Errorf("request %d stored %d times, want once", i, len(ws))
		return stored{}, false
	}
	if want := journalSubject(c.group); ws[0].subject != want {
		t.Errorf("request %d stored on %s, want %s", i, ws[0].subject, want)
	}
	return ws[0], true
}

// TestAtomicJournalStoresEachCallOnItsSubject checks that each call's
// payload is stored once, on its group's subject, inside the batch its
// acknowledgement names; that no batch holds a group twice; and that each
// message was checked against its subject's real last sequence.
func TestAtomicJournalStoresEachCallOnItsSubject(t *testing.T) {
	nc := serve(t, modeAtomic)
	calls := callMany(t, nc)
	inBatch := map[string]map[string]bool{} // batch ID -> its subjects
	whole := func(data []byte) ([][]byte, error) { return [][]byte{data}, nil }
	places := walkFenced(t, storedMsgs(t, nc), whole, func(m *jetstream.RawStreamMsg) {
		id := m.Header.Get(hdrBatchID)
		if inBatch[id] == nil {
			inBatch[id] = map[string]bool{}
		}
		if inBatch[id][m.Subject] {
			t.Errorf("batch %q holds %s twice", id, m.Subject)
		}
		inBatch[id][m.Subject] = true
	})
	for i, c := range calls {
		w, ok := storedOnce(t, i, c, places)
		if !ok {
			continue
		}
		ack := ackOf(t, c.replies[0])
		if first := ack.Sequence - uint64(ack.Count) + 1; w.seq < first || w.seq > ack.Sequence {
			t.Errorf("request %d stored at %d, outside its acknowledged batch %d-%d", i, w.seq, first, ack.Sequence)
		}
	}
	if len(inBatch) >= len(calls) {
		t.Errorf("%d calls in %d batches, want fewer batches than calls", len(calls), len(inBatch))
	}
}

// TestFencedJournalKeepsEachGroupsHistory checks that each call's payload
// is stored once, on its group's subject, in the message its
// acknowledgement names; that each message was checked against its
// subject's real last sequence; and that calls of a group that arrived
// during its append shared the next one.
func TestFencedJournalKeepsEachGroupsHistory(t *testing.T) {
	nc := serve(t, modeFenced)
	calls := callMany(t, nc)
	msgs := storedMsgs(t, nc)
	places := walkFenced(t, msgs, decodeBatch, nil)
	for i, c := range calls {
		w, ok := storedOnce(t, i, c, places)
		if ack := ackOf(t, c.replies[0]); ok && ack.Sequence != w.seq {
			t.Errorf("request %d stored at %d, acknowledged as %d", i, w.seq, ack.Sequence)
		}
	}
	if len(msgs) >= len(calls) {
		t.Errorf("%d calls in %d appends, want fewer appends than calls", len(calls), len(msgs))
	}
}

// TestFencedJournalsRefuseAStaleExpectedSequence writes to a group's
// subject behind natsecho's back, so that its next append of the group
// expects a sequence that is no longer the subject's last: the server must
// refuse the append (or batch), and the caller must get the error.
func TestFencedJournalsRefuseAStaleExpectedSequence(t *testing.T) {
	for _, mode := range []string{modeAtomic, modeFenced} {
		t.Run(mode, func(t *testing.T) { testRefusesAStaleExpectedSequence(t, mode) })
	}
}

func testRefusesAStaleExpectedSequence(t *testing.T, mode string) {
	nc := serve(t, mode)
	increase(t, nc, "g1")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, journalSubject("g1"), []byte("another writer")); err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(&messages.ChangeRequest{GroupId: "g1", Key: "likes", Value: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := nc.RequestMsg(&nats.Msg{Subject: "tally.v1.user.alice.increase", Data: data, Header: protoHeader}, 10*time.Second)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	// 10071: JetStream's wrong last sequence.
	if code, why := res.Header.Get(micro.ErrorCodeHeader), res.Header.Get(micro.ErrorHeader); code != "10002" || !strings.Contains(why, "(10071)") {
		t.Errorf("stale append answered with code %q, %q; want 10002 and JetStream's 10071", code, why)
	}
	if n := len(storedMsgs(t, nc)); n != 2 {
		t.Errorf("stream holds %d messages, want 2 (the refused append stored nothing)", n)
	}
	increase(t, nc, "g2") // the refused batch leaves other groups writable
}

// TestGetsAndSets checks, in every journaled mode, that a set is stored
// as a change is, on its group's subject but in the batched journal, and
// that a get is answered at once with its payload and stored nowhere, as
// tally answers it from memory.
func TestGetsAndSets(t *testing.T) {
	for _, mode := range modes[1:] {
		t.Run(mode, func(t *testing.T) {
			nc := serve(t, mode)
			set, err := proto.Marshal(&messages.SetRequest{GroupId: "w3-7", Counters: map[string]int64{"a": 1, "b": 2}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := nc.RequestMsg(&nats.Msg{Subject: "tally.v1.user.alice.set", Data: set, Header: protoHeader}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if ack := ackOf(t, res); ack.Sequence != 1 {
				t.Errorf("a set acknowledged at sequence %d, want 1", ack.Sequence)
			}
			get, err := proto.Marshal(&messages.GetRequest{GroupId: "w3-7"})
			if err != nil {
				t.Fatal(err)
			}
			res, err = nc.RequestMsg(&nats.Msg{Subject: "tally.v1.user.alice.get", Data: get, Header: protoHeader}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Data, get) || res.Header.Get(micro.ErrorCodeHeader) != "" {
				t.Errorf("a get answered %q (%v), want its payload", res.Data, res.Header)
			}
			msgs := storedMsgs(t, nc)
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored, want the set's alone", len(msgs))
			}
			if want := journalSubject("w3-7"); mode != modeBatched && msgs[1].Subject != want {
				t.Errorf("the set stored on %s, want %s", msgs[1].Subject, want)
			}
		})
	}
}
