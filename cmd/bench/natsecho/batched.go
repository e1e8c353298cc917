package main

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/nats-io/nats.go"
)

// batchSubject is the subject of the batched journal's messages.
const batchSubject = "echo.batch"

// appendBatched appends the calls q gathers until ctx ends: those that
// arrived while the previous append was in flight (up to maxBatch) become
// ONE message on batchSubject (encodeBatch), and each of them is answered
// with that message's acknowledgement. One append is in flight at a time.
func appendBatched(ctx context.Context, jc *nats.Conn, q *queue) {
	for {
		calls := q.take(ctx, false)
		if calls == nil {
			return
		}
		payloads := make([][]byte, len(calls))
		for i, c := range calls {
			payloads[i] = c.msg.Data
		}
		body, _, err := publish(ctx, jc, &nats.Msg{Subject: batchSubject, Data: encodeBatch(payloads)})
		answerAll(calls, body, err)
	}
}

// encodeBatch lays out payloads one after the other, each preceded by its
// length as a uvarint.
func encodeBatch(payloads [][]byte) []byte {
	size := 0
	for _, p := range payloads {
		size += binary.MaxVarintLen32 + len(p)
	}
	data := make([]byte, 0, size)
	for _, p := range payloads {
		data = binary.AppendUvarint(data, uint64(len(p)))
		data = append(data, p...)
	}
	return data
}

var errBadBatch = errors.New("malformed batch")

// decodeBatch reads what encodeBatch wrote.
func decodeBatch(data []byte) ([][]byte, error) {
	var payloads [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, errBadBatch
		}
		payloads = append(payloads, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return payloads, nil
}
