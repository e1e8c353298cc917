package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

// The history's limits: a page of 100 changes unless asked, at most
// 1,000; a read of the journal bounded in time, and at most 8 at once
// (the others wait their turn).
const (
	historyPage    = 100
	historyMaxPage = 1000
	historyTimeout = 10 * time.Second
	historyReads   = 8
)

// decodeHistory decodes a history request.
func decodeHistory(f format, data []byte) (*messages.HistoryRequest, error) {
	var r requestFields
	var err error
	if f == formatProto {
		err = r.decodeProto(data, historyProto)
	} else {
		err = r.decodeJSON(data, historyJSON)
	}
	if err != nil {
		return nil, err
	}
	req := &messages.HistoryRequest{GroupId: r.group, FromSeq: r.fromSeq, Limit: r.limit32}
	r.keepUnknown(req)
	return req, nil
}

// checkHistory checks a decoded history request: its group ID and page.
func checkHistory(req *messages.HistoryRequest) error {
	if err := contract.CheckGroupID(req.GetGroupId()); err != nil {
		return err
	}
	if req.GetLimit() > historyMaxPage {
		return fmt.Errorf("%w: limit %d, want at most %d", actors.ErrInvalidParameter, req.GetLimit(), historyMaxPage)
	}
	return nil
}

// history answers tally.v1.admin.history on its own goroutine, holding one
// of the journal reads: it reads the journal, which takes a consumer's
// round trips.
func (g *Gateway) history(r *request, data []byte) {
	req, err := decodeHistory(r.format, data)
	if err == nil {
		err = checkHistory(req)
	}
	if err != nil {
		r.respond(nil, err)
		return
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = historyPage
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	reply, err := g.cfg.History(ctx, req.GetGroupId(), max(req.GetFromSeq(), 1), limit)
	if err == nil {
		reply, err = fitHistory(r.format, reply, int(r.nc.MaxPayload())-replyHeaderRoom)
	}
	if err != nil {
		r.respond(nil, err)
		return
	}
	r.respond(reply, nil)
}

// replyHeaderRoom is what a reply's headers may take of the connection's
// largest message: a protobuf reply's Content-Type.
const replyHeaderRoom = 128

// fitHistory returns the page of m whose encoding fits in limit bytes: as
// many of its first entries as fit, with nextSeq at the first left out,
// so that the caller pages on from there.
func fitHistory(f format, m *messages.HistoryReply, limit int) (*messages.HistoryReply, error) {
	all := m.GetEntries()
	// The page's size without entries, with the largest nextSeq it may
	// carry, then each entry's: its own encoding and what frames it.
	size := len(encode(f, &messages.HistoryReply{GroupId: m.GetGroupId(), NextSeq: math.MaxUint64}))
	n := 0
	for ; n < len(all); n++ {
		if size += entrySize(f, all[n]); size > limit {
			break
		}
	}
	switch {
	case n == len(all):
		return m, nil
	case n == 0:
		return nil, fmt.Errorf("%w: change %d of group %s does not fit in a message of %d bytes (the server's max_payload)",
			actors.ErrUnavailable, all[0].GetSeq(), m.GetGroupId(), limit+replyHeaderRoom)
	}
	return &messages.HistoryReply{GroupId: m.GetGroupId(), Entries: all[:n], NextSeq: all[n].GetSeq()}, nil
}

// entrySize is what an entry adds to an encoded history reply.
func entrySize(f format, e *messages.HistoryEntry) int {
	if f == formatProto {
		return 1 + protowire.SizeBytes(proto.Size(e)) // the field's tag, its length and the entry
	}
	b, err := marshalJSON(entryJSON(e))
	if err != nil {
		panic(fmt.Sprintf("gateway: marshal history entry: %v", err))
	}
	return len(b) + 1 // and a comma
}

// The JSON form of a history reply: int64 values as numbers, times in
// RFC 3339, absent values as null.
type (
	historyReplyJSON struct {
		GroupID string             `json:"groupID"`
		Entries []historyEntryJSON `json:"entries"`
		NextSeq uint64             `json:"nextSeq"`
	}
	historyEntryJSON struct {
		Seq           uint64          `json:"seq"`
		StreamSeq     uint64          `json:"streamSeq"`
		Time          time.Time       `json:"time"`
		Op            string          `json:"op"`
		User          string          `json:"user"`
		RequestID     string          `json:"requestID"`
		Changes       []keyChangeJSON `json:"changes"`
		Members       []string        `json:"members,omitempty"`
		BeforeUnknown bool            `json:"beforeUnknown,omitempty"`
	}
	keyChangeJSON struct {
		Key    string `json:"key"`
		Before *int64 `json:"before"`
		After  *int64 `json:"after"`
	}
)

func entryJSON(e *messages.HistoryEntry) historyEntryJSON {
	je := historyEntryJSON{Seq: e.GetSeq(), StreamSeq: e.GetStreamSeq(), Time: time.Unix(0, e.GetUnixNano()).UTC(),
		Op: e.GetOp(), User: e.GetUser(), RequestID: e.GetRequestId(), Changes: []keyChangeJSON{}, Members: e.GetMembers(), BeforeUnknown: e.GetBeforeUnknown()}
	for _, c := range e.GetChanges() {
		je.Changes = append(je.Changes, keyChangeJSON{Key: c.GetKey(), Before: c.Before, After: c.After})
	}
	return je
}

func appendHistory(b []byte, m *messages.HistoryReply) []byte {
	j := historyReplyJSON{GroupID: m.GetGroupId(), Entries: []historyEntryJSON{}, NextSeq: m.GetNextSeq()}
	for _, e := range m.GetEntries() {
		j.Entries = append(j.Entries, entryJSON(e))
	}
	out, err := marshalJSON(j)
	if err != nil {
		// Our own structs of strings and numbers always marshal.
		panic(fmt.Sprintf("gateway: marshal history: %v", err))
	}
	return append(b, out...)
}

// marshalJSON is json.Marshal without its HTML escapes: a key of 128 "<"
// would take six bytes per character, and one change of 20 such keys more
// than a NATS message.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
