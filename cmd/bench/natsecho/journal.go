package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	// streamName is the stream every journaled mode appends to.
	streamName = "ECHO_JOURNAL"
	// appendTimeout bounds the wait for an append's acknowledgement.
	appendTimeout = 10 * time.Second
)

// createStream creates the journal's stream: file storage, on
// echo.journal.<group> (one subject per group, as tally's journal) and
// batchSubject, allowing atomic batches when atomic is set.
func createStream(ctx context.Context, jc *nats.Conn, atomic bool) error {
	js, err := jetstream.New(jc)
	if err != nil {
		return err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Subjects: []string{"echo.journal.>", batchSubject}, Storage: jetstream.FileStorage,
		AllowAtomicPublish: atomic,
	}); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	return nil
}

// journalSubject is the subject of a group's appends.
func journalSubject(group string) string { return "echo.journal." + group }

// groupOf reads the group of a change or set request (group_id is field
// 1 of both), which must be usable as a subject token.
func groupOf(m *nats.Msg) (string, bool) {
	var g string
	for b := m.Data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", false
			}
			g = string(v)
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return "", false
		}
		b = b[n:]
	}
	return g, g != "" && !strings.ContainsAny(g, ".*> \t\r\n")
}

// appender returns a handler that appends each request to the journal on
// its group's subject (subjectOf) and answers the request when the append is
// acknowledged, with the acknowledgement's body: one subscription takes
// every acknowledgement, and the reply subject of an append names its
// request.
func appender(jc *nats.Conn, subjectOf func(group string) string) (func(*nats.Msg), error) {
	var (
		mu      sync.Mutex
		next    uint64
		waiting = map[uint64]*nats.Msg{}
	)
	// The prefix is this appender's own: in a cluster every server's
	// appender numbers its appends from 1, and a prefix they shared would
	// hand each acknowledgement to every server, which answered its own
	// call of that number with another server's.
	ackPrefix := "echo.ack." + nuid.Next() + "."
	ack, err := jc.Subscribe(ackPrefix+"*", func(a *nats.Msg) {
		id, err := strconv.ParseUint(a.Subject[len(ackPrefix):], 10, 64)
		if err != nil {
			return
		}
		mu.Lock()
		req := waiting[id]
		delete(waiting, id)
		mu.Unlock()
		switch {
		case req == nil:
		case bytes.Contains(a.Data, []byte(`"error"`)) || len(a.Data) == 0:
			fail(req, "append failed: "+string(a.Data))
		default:
			answer(req, a.Data)
		}
	})
	if err != nil {
		return nil, err
	}
	ack.SetPendingLimits(-1, -1)
	return func(m *nats.Msg) {
		group, ok := groupOf(m)
		if !ok {
			fail(m, "not a change request with a group")
			return
		}
		mu.Lock()
		next++
		id := next
		waiting[id] = m
		mu.Unlock()
		if err := jc.PublishMsg(&nats.Msg{
			Subject: subjectOf(group), Reply: ackPrefix + strconv.FormatUint(id, 10), Data: m.Data,
		}); err != nil {
			mu.Lock()
			delete(waiting, id)
			mu.Unlock()
			fail(m, err.Error())
		}
	}, nil
}

// pubAck is JetStream's answer to a publish, with the fields of an atomic
// batch's commit (nats.go's jetstream.PubAck has no batch fields).
type pubAck struct {
	Stream   string    `json:"stream"`
	Sequence uint64    `json:"seq"`
	Batch    string    `json:"batch,omitempty"`
	Count    int       `json:"count,omitempty"`
	Error    *apiError `json:"error,omitempty"`
}

// apiError is JetStream's error in an acknowledgement.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d)", e.Description, e.ErrCode) }

// publish sends m to the stream and waits for its acknowledgement,
// returning the acknowledgement's body and what it says.
func publish(ctx context.Context, jc *nats.Conn, m *nats.Msg) ([]byte, pubAck, error) {
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	res, err := jc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return nil, pubAck{}, fmt.Errorf("append to %s: %w", m.Subject, err)
	}
	var ack pubAck
	if err := json.Unmarshal(res.Data, &ack); err != nil {
		return nil, pubAck{}, fmt.Errorf("append to %s: acknowledgement %q: %w", m.Subject, res.Data, err)
	}
	if ack.Error != nil {
		return nil, ack, fmt.Errorf("append to %s: %w", m.Subject, ack.Error)
	}
	return res.Data, ack, nil
}

// answerAll answers every call of one append: with the acknowledgement's
// body, or with err.
func answerAll(calls []call, body []byte, err error) {
	for _, c := range calls {
		if err != nil {
			fail(c.msg, "append failed: "+err.Error())
		} else {
			answer(c.msg, body)
		}
	}
}
