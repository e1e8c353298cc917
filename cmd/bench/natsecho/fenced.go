package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
)

// fencer is the fenced journal: each group's changes appended in order on
// the group's subject with the subject's expected last sequence, one
// append of a group in flight at a time, and the changes of the group that
// arrive meanwhile gathered into its next append (each append's payloads
// laid out by encodeBatch) and all
// answered on its acknowledgement: the journal's work tally's promises
// need (a fenced, ordered history per group, group commit), without
// tally's own; it stores the requests, not events with the group's state,
// and a lost acknowledgement would stop its group (it has no timeout: the
// server answers every append on the same machine).
type fencer struct {
	jc       *nats.Conn
	mu       sync.Mutex
	groups   map[string]*fencedGroup
	next     uint64
	inflight map[uint64]*fencedGroup // by the append's ID in its reply subject
}

// fencedGroup is one group's place in the fenced journal.
type fencedGroup struct {
	name    string
	last    uint64      // the stream sequence of its last append, 0 before the first
	sending []*nats.Msg // the calls of the append in flight, nil when none is
	waiting []*nats.Msg // the calls for its next append
}

const fencedAckPrefix = "echo.fenced."

// fencedAppender returns the fenced journal's handler.
func fencedAppender(jc *nats.Conn) (func(*nats.Msg), error) {
	f := &fencer{jc: jc, groups: map[string]*fencedGroup{}, inflight: map[uint64]*fencedGroup{}}
	sub, err := jc.Subscribe(fencedAckPrefix+"*", f.acknowledged)
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(-1, -1)
	return f.take, nil
}

// take queues a change for its group's next append, or appends it now when
// none of the group's is in flight.
func (f *fencer) take(m *nats.Msg) {
	group, ok := groupOf(m)
	if !ok {
		fail(m, "not a change request with a group")
		return
	}
	f.mu.Lock()
	g := f.groups[group]
	if g == nil {
		g = &fencedGroup{name: group}
		f.groups[group] = g
	}
	if g.sending != nil {
		g.waiting = append(g.waiting, m)
		f.mu.Unlock()
		return
	}
	g.sending = []*nats.Msg{m}
	f.send(g) // unlocks
}

// send appends g's sending calls as one message expecting g's last
// sequence. f.mu is held, and send releases it.
func (f *fencer) send(g *fencedGroup) {
	f.next++
	id := f.next
	f.inflight[id] = g
	calls, last := g.sending, g.last
	f.mu.Unlock()
	payloads := make([][]byte, len(calls))
	for i, c := range calls {
		payloads[i] = c.Data
	}
	err := f.jc.PublishMsg(&nats.Msg{
		Subject: journalSubject(g.name), Reply: fencedAckPrefix + strconv.FormatUint(id, 10), Data: encodeBatch(payloads),
		Header: nats.Header{hdrExpectedSeq: []string{strconv.FormatUint(last, 10)}},
	})
	if err != nil {
		f.mu.Lock()
		delete(f.inflight, id)
		f.mu.Unlock()
		f.done(g, nil, 0, "append failed: "+err.Error())
	}
}

// acknowledged answers the calls of the append a names and sends the
// group's next append, if any.
func (f *fencer) acknowledged(a *nats.Msg) {
	id, err := strconv.ParseUint(a.Subject[len(fencedAckPrefix):], 10, 64)
	if err != nil {
		return
	}
	f.mu.Lock()
	g := f.inflight[id]
	delete(f.inflight, id)
	f.mu.Unlock()
	if g == nil {
		return
	}
	seq, ok := ackSequence(a.Data)
	if !ok {
		why := string(a.Data)
		var ack pubAck
		if json.Unmarshal(a.Data, &ack) == nil && ack.Error != nil {
			why = ack.Error.Error()
		}
		f.done(g, nil, 0, "append failed: "+why)
		return
	}
	f.done(g, a.Data, seq, "")
}

// done sends the calls that waited for g's append in flight, if any, then
// answers that append's calls with body, or fails them with why. On
// success it records the append's sequence, seq.
func (f *fencer) done(g *fencedGroup, body []byte, seq uint64, why string) {
	f.mu.Lock()
	calls := g.sending
	if why == "" {
		g.last = seq
	}
	switch n := len(g.waiting); {
	case n == 0:
		g.sending = nil
		f.mu.Unlock()
	case n <= maxBatch:
		g.sending, g.waiting = g.waiting, nil
		f.send(g) // unlocks
	default:
		g.sending, g.waiting = g.waiting[:maxBatch:maxBatch], g.waiting[maxBatch:]
		f.send(g) // unlocks
	}
	for _, c := range calls {
		if why != "" {
			fail(c, why)
		} else {
			answer(c, body)
		}
	}
}

// ackSequence reads the stream sequence of a JetStream acknowledgement
// without decoding the rest; false for an error or anything else.
func ackSequence(ack []byte) (uint64, bool) {
	if bytes.Contains(ack, []byte(`"error"`)) {
		return 0, false
	}
	_, rest, ok := bytes.Cut(ack, []byte(`"seq":`))
	if !ok {
		return 0, false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	return seq, err == nil && seq > 0
}
