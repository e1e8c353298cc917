package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/tallyhq/tally/messages"
)

// ErrTimeout means no acknowledgement came in time: the append may or may
// not be stored.
var ErrTimeout = errors.New("journal: no acknowledgement in time")

// ErrClosed means the journal no longer takes appends: it was closed, or
// its connection was.
var ErrClosed = errors.New("journal: closed")

// acks receives the acknowledgements of AppendAsync on one subscription, so
// an append costs one published message: no goroutine, no channel, no
// timer and no reply subscription of its own. One sweeper goroutine times
// out the appends whose acknowledgement is late.
type acks struct {
	nc      *nats.Conn
	id      string // this journal's, unique
	prefix  string // reply subject prefix, ending in "."
	timeout time.Duration
	resend  time.Duration // 0: never
	syncer  *Syncer       // nil: JetStream's own sync setting decides
	clock   Clock         // its Mono times deadlines, resends and lastStored

	sub *nats.Subscription // set once, before any append

	lastStored atomic.Int64 // clock.Mono of the last write acknowledged; 0: none

	mu      sync.Mutex
	closed  bool   // no acknowledgement will come any more
	next    uint64 // the last append's id
	swept   uint64 // every append up to this id is answered
	pending map[uint64]pendingAck
}

type pendingAck struct {
	done     func(seq uint64, err error)
	subj     string
	expected uint64
	deadline int64 // clock.Mono
	// When the journal resends: what a resend is made of, and when it is
	// due (clock.Mono).
	data     []byte
	reply    string
	resendAt int64
}

func (p pendingAck) timeout(closed bool) {
	why := ""
	if closed {
		why = "journal closed: "
	}
	p.done(0, fmt.Errorf("append %s after %d: %s%w", p.subj, p.expected, why, ErrTimeout))
}

// startAcks subscribes to the acknowledgements of AppendAsync and starts
// their sweeper.
func startAcks(nc *nats.Conn, timeout, resend time.Duration, syncer *Syncer, clock Clock) (*acks, error) {
	a := &acks{nc: nc, timeout: timeout, resend: resend, syncer: syncer, clock: clock}
	a.id = nuid.Next()
	a.prefix = nats.InboxPrefix + "tally." + a.id + "."
	a.pending = map[uint64]pendingAck{}
	sub, err := a.nc.Subscribe(a.prefix+"*", a.onAck)
	if err != nil {
		return nil, fmt.Errorf("journal: subscribe to acknowledgements: %w", err)
	}
	sub.SetPendingLimits(-1, -1) // appends are bounded by the actors, not here
	a.sub = sub
	tick := min(max(a.timeout/10, time.Millisecond), 100*time.Millisecond)
	if resend > 0 {
		tick = min(tick, max(resend/4, time.Millisecond))
	}
	go a.sweep(tick)
	return a, nil
}

// take removes the append id from the pending ones; ok is false when it
// was answered already (timed out).
func (a *acks) take(id uint64) (p pendingAck, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok = a.pending[id]; ok {
		delete(a.pending, id)
	}
	return p, ok
}

func (a *acks) onAck(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[len(a.prefix):], 10, 64)
	if err != nil {
		return
	}
	seq, err := parseAck(m)
	if errors.Is(err, errInProcess) {
		return // a resend while the first copy is being stored: its ack comes
	}
	if a.resend > 0 && errors.Is(err, nats.ErrNoResponders) {
		return // no leader for a moment (it is changing): the resend goes on
	}
	p, ok := a.take(id)
	if !ok {
		return // timed out already, or answered by another copy's ack
	}
	if err != nil {
		p.done(0, fmt.Errorf("append %s: %w", p.subj, err))
		return
	}
	if a.syncer == nil {
		a.stored()
		p.done(seq, nil)
		return
	}
	a.syncer.after(func(err error) {
		if err != nil {
			p.done(0, fmt.Errorf("append %s: %w", p.subj, err))
			return
		}
		a.stored()
		p.done(seq, nil)
	})
}

// stored notes that the journal took a write now.
func (a *acks) stored() { a.lastStored.Store(max(a.clock.Mono(), 1)) }

var seqField = []byte(`"seq":`)

// jsErrDuplicateInProcess is JetStream's answer to a message whose ID is
// that of a message it is still storing.
const jsErrDuplicateInProcess = 10158

var errInProcess = errors.New("journal: a copy of the append is being stored")

// parseAck reads a JetStream publish acknowledgement. The common case,
// {"stream":"X","seq":N}, is read without encoding/json.
func parseAck(m *nats.Msg) (uint64, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return 0, fmt.Errorf("journal: %w", nats.ErrNoResponders)
	}
	if !bytes.Contains(m.Data, []byte(`"error"`)) {
		if i := bytes.Index(m.Data, seqField); i >= 0 {
			rest := m.Data[i+len(seqField):]
			end := 0
			for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
				end++
			}
			if seq, err := strconv.ParseUint(string(rest[:end]), 10, 64); err == nil {
				return seq, nil
			}
		}
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Seq   uint64              `json:"seq"`
	}
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return 0, fmt.Errorf("journal: acknowledgement %q: %w", m.Data, err)
	}
	if ack.Error != nil {
		if WrongLastSequence(ack.Error) {
			return 0, ErrConflict
		}
		if ack.Error.ErrorCode == jsErrDuplicateInProcess {
			return 0, errInProcess
		}
		return 0, fmt.Errorf("journal: %w", ack.Error)
	}
	return ack.Seq, nil
}

// AppendAsync is Append without waiting: done gets the outcome, on the
// journal's acknowledgement goroutine or after the timeout, and must not
// block. A stale expected sequence gives ErrConflict, no acknowledgement in
// time ErrTimeout (the append may or may not be stored).
func (j *Journal) AppendAsync(group string, expected uint64, ev *messages.Event, done func(seq uint64, err error)) {
	subj := j.Subject(group)
	a := j.acks
	if a.resend > 0 {
		// A resent append keeps its bytes until it is acknowledged.
		data, err := encodeEvent(ev)
		if err != nil {
			done(0, fmt.Errorf("journal: encode event of %s: %w", group, err))
			return
		}
		a.appendKept(subj, expected, data, done)
		return
	}
	s := scratches.Get().(*scratch)
	defer s.put()
	data, err := appendEvent(s.data[:0], ev)
	if err != nil {
		done(0, fmt.Errorf("journal: encode event of %s: %w", group, err))
		return
	}
	s.data = data
	id, _, ok := a.add(pendingAck{done: done, subj: subj, expected: expected}, nil)
	if !ok {
		return
	}
	// The message and its header are the scratch's; the connection copies
	// what it sends before PublishMsg returns.
	s.expected[0] = strconv.FormatUint(expected, 10)
	msg := &nats.Msg{
		Subject: subj,
		Reply:   string(strconv.AppendUint(append(s.reply[:0], a.prefix...), id, 10)),
		Data:    data,
		Header:  s.header,
	}
	if err := a.nc.PublishMsg(msg); err != nil {
		if _, ok := a.take(id); ok {
			done(0, fmt.Errorf("journal: append %s: %w", subj, err))
		}
	}
}

// scratch is what one append without resends is built in.
type scratch struct {
	data     []byte
	reply    []byte
	header   nats.Header
	expected []string // the header's one value
}

// put returns s to the pool, unless an event of a large members change
// grew it.
func (s *scratch) put() {
	if cap(s.data) <= 1<<16 {
		scratches.Put(s)
	}
}

var scratches = sync.Pool{New: func() any {
	s := &scratch{data: make([]byte, 0, 256), reply: make([]byte, 0, 64), expected: make([]string, 1)}
	s.header = nats.Header{jetstream.ExpectedLastSubjSeqHeader: s.expected}
	return s
}}

// appendKept sends an append that may be resent, keeping its bytes.
func (a *acks) appendKept(subj string, expected uint64, data []byte, done func(seq uint64, err error)) {
	id, p, ok := a.add(pendingAck{done: done, subj: subj, expected: expected, data: data}, func(id uint64, p *pendingAck) {
		p.resendAt = a.clock.Mono() + int64(a.resend)
		p.reply = string(strconv.AppendUint([]byte(a.prefix), id, 10))
	})
	if ok {
		a.publish(id, p)
	}
}

// add registers an append awaiting its acknowledgement under the next id,
// with its deadline, completed by fill (under the lock) when given, and
// returns what it registered; once the journal is closed it fails the
// append instead and reports false.
func (a *acks) add(p pendingAck, fill func(id uint64, p *pendingAck)) (uint64, pendingAck, bool) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		p.done(0, fmt.Errorf("journal: append %s: %w", p.subj, ErrClosed))
		return 0, p, false
	}
	a.next++
	id := a.next
	p.deadline = a.clock.Mono() + int64(a.timeout)
	if fill != nil {
		fill(id, &p)
	}
	a.pending[id] = p
	a.mu.Unlock()
	return id, p, true
}

// publish sends an append that may be resent, with its message ID (its
// reply subject's unique tail). A first send (id > 0) that fails fails the
// append; a resend that fails leaves it to its deadline.
func (a *acks) publish(id uint64, p pendingAck) {
	err := a.nc.PublishMsg(&nats.Msg{
		Subject: p.subj,
		Reply:   p.reply,
		Data:    p.data,
		Header: nats.Header{
			jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(p.expected, 10)},
			jetstream.MsgIDHeader:               []string{p.reply[len(a.prefix)-len(a.id)-1:]},
		},
	})
	if err != nil && id > 0 {
		if _, ok := a.take(id); ok {
			p.done(0, fmt.Errorf("journal: append %s: %w", p.subj, err))
		}
	}
}

// sweep times out, every tick, the appends past their deadline; ids and
// deadlines grow together (deadlines are on the monotonic clock, which a
// wall clock set back does not turn back), so it walks from the oldest
// unanswered append.
// Once the acknowledgements' subscription is gone (Close, or the connection
// closed) it answers every pending append and stops.
func (a *acks) sweep(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for range t.C {
		closed := !a.sub.IsValid()
		now := a.clock.Mono()
		var late []pendingAck
		var again []pendingAck
		a.mu.Lock()
		if a.resend > 0 && !closed {
			for id, p := range a.pending {
				if p.resendAt <= now && p.deadline > now {
					p.resendAt = now + int64(a.resend)
					a.pending[id] = p
					again = append(again, p)
				}
			}
		}
		for ; a.swept < a.next; a.swept++ {
			p, ok := a.pending[a.swept+1]
			if ok && !closed && p.deadline > now {
				break
			}
			if ok {
				delete(a.pending, a.swept+1)
				late = append(late, p)
			}
		}
		a.closed = closed
		a.mu.Unlock()
		for _, p := range again {
			a.publish(0, p) // a failure leaves the append to its deadline
		}
		for _, p := range late {
			p.timeout(closed)
		}
		if closed {
			return
		}
	}
}

// Close stops receiving acknowledgements: appends still pending fail with
// ErrTimeout, later ones with ErrClosed.
func (j *Journal) Close() error { return j.acks.sub.Unsubscribe() }
