package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Headers of a JetStream atomic batch (ADR-50) and of the per-subject
// check tally's journal sends.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	hdrExpectedSeq = "Nats-Expected-Last-Subject-Sequence"
)

// appendAtomic appends the calls q gathers until ctx ends, each gathering
// as one JetStream atomic batch: every call's payload on its group's
// subject with the subject's expected last sequence, as tally's journal
// sends it, at most one call of a group per batch (a second waits for the
// next) and maxBatch calls; without fenced, with no expected sequences and
// any calls of a group. The server checks every expected sequence at
// the commit and stores all the batch or none: a stale one refuses the
// whole batch, and each of its calls is answered with the error. The
// commit's acknowledgement (the batch's last sequence and its count)
// answers every call of the batch. One batch is in flight at a time.
// Without fenced, it sends no expected sequence.
func appendAtomic(ctx context.Context, jc *nats.Conn, q *queue, subjectOf func(group string) string, fenced bool) {
	// last holds each group's last sequence as this loop stored it, the
	// expected sequence of its next append; only this loop touches it.
	var last map[string]uint64
	if fenced {
		last = map[string]uint64{}
	}
	for {
		// Fenced, a group's second call waits for the next batch: it
		// must expect the first's sequence, not yet known.
		calls := q.take(ctx, fenced)
		if calls == nil {
			return
		}
		// Unique among every server's batches on the stream.
		body, ack, err := commitBatch(ctx, jc, nuid.Next(), calls, subjectOf, last)
		if err == nil && ack.Count != len(calls) {
			err = fmt.Errorf("batch of %d committed with count %d", len(calls), ack.Count)
		}
		if err == nil && last != nil {
			// A batch's messages are stored together, in order, ending
			// at the acknowledged sequence.
			first := ack.Sequence - uint64(len(calls)) + 1
			for i, c := range calls {
				last[c.group] = first + uint64(i)
			}
		}
		answerAll(calls, body, err)
	}
}

// commitBatch publishes calls as the atomic batch id: the messages before
// the last without a reply (the server stages them and answers only the
// commit), the last with the commit header, and waits for the commit's
// acknowledgement. Each message expects its subject's sequence in last,
// unless last is nil.
func commitBatch(ctx context.Context, jc *nats.Conn, id string, calls []call, subjectOf func(string) string, last map[string]uint64) ([]byte, pubAck, error) {
	for i, c := range calls {
		m := &nats.Msg{Subject: subjectOf(c.group), Data: c.msg.Data, Header: nats.Header{
			hdrBatchID:  []string{id},
			hdrBatchSeq: []string{strconv.Itoa(i + 1)},
		}}
		if last != nil {
			m.Header[hdrExpectedSeq] = []string{strconv.FormatUint(last[c.group], 10)}
		}
		if i < len(calls)-1 {
			if err := jc.PublishMsg(m); err != nil {
				return nil, pubAck{}, fmt.Errorf("batch %s: %w", id, err)
			}
			continue
		}
		m.Header[hdrBatchCommit] = []string{"1"}
		return publish(ctx, jc, m)
	}
	return nil, pubAck{}, fmt.Errorf("batch %s: no calls", id)
}
