package node_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestClientsCannotTouchTheJournal attacks a node with the defaults (no
// auth) from an anonymous connection: publishes to the journal's subjects,
// JetStream API calls, and requests whose reply subjects name the journal,
// the admin subjects and the JetStream API. Nothing changes the victim
// group, live or after a restart, and nothing of the journal is seen.
func TestClientsCannotTouchTheJournal(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	url := n.ClientURL()
	ctx := context.Background()
	if _, err := admin(t, url).SetGroupCounters(ctx, "victim", map[string]int64{"a": 7, "b": 8}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a": 7, "b": 8}

	attacker := journaltest.ConnectURL(t, url)
	// What the node does in its own account: appends, their
	// acknowledgements, JetStream's advisories, the service's replies.
	spy := make(chan *nats.Msg, 100)
	for _, subj := range []string{"tally.journal.other", "$JS.ACK.>", "$JS.EVENT.>", "_R_.>", "_INBOX.tally.>"} {
		if _, err := attacker.ChanSubscribe(subj, spy); err != nil {
			t.Fatal(err)
		}
	}
	forged, err := proto.Marshal(&messages.Event{
		PrevSeq: 1,
		Changes: []*messages.Change{{Seq: 2, Op: messages.Op_OP_SET, Counters: map[string]int64{"a": 999_999_999}}},
		State:   &messages.GroupState{Counters: map[string]int64{"a": 999_999_999, "b": 8}, Version: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, payload := range [][]byte{[]byte("garbage"), nil, forged} {
		publishWithReply(t, attacker, "tally.journal.victim", "", payload)
	}
	for _, api := range []string{
		"$JS.API.STREAM.PURGE.TALLY_JOURNAL",
		"$JS.API.STREAM.DELETE.TALLY_JOURNAL",
		"$JS.API.STREAM.MSG.DELETE.TALLY_JOURNAL",
		"$JS.API.STREAM.UPDATE.TALLY_JOURNAL",
	} {
		m, err := attacker.Request(api, []byte(`{"seq":1,"name":"TALLY_JOURNAL","subjects":["x"]}`), time.Second)
		if err == nil && !bytes.Contains(m.Data, []byte(`"error"`)) {
			t.Errorf("%s answered %s, want an error or no answer", api, m.Data)
		}
	}
	// Gets whose replies would land on the journal, on the admin subjects
	// (a get's reply is a valid delete of the group's keys), on another
	// client's updates and on the JetStream API, if the node published
	// where the requester says.
	watcher := journaltest.ConnectURL(t, url)
	watched, err := watcher.SubscribeSync("tally.v1.updates.victim")
	if err == nil {
		err = watcher.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	get := []byte(`{"groupID":"victim"}`)
	for _, reply := range []string{
		"tally.v1.updates.victim",
		"tally.journal.victim",
		"tally.v1.admin.delete",
		"tally.v1.admin.set",
		"$JS.API.STREAM.PURGE.TALLY_JOURNAL",
		"$JS.API.STREAM.DELETE.TALLY_JOURNAL",
	} {
		publishWithReply(t, attacker, "tally.v1.admin.get", reply, get)
		publishWithReply(t, attacker, "tally.v1.user.mallory.get", reply, get)
	}
	// A request answered after all the attacks is answered after them.
	if _, err := admin(t, url).IncreaseGroupCounter(ctx, "other", "k", 1); err != nil {
		t.Fatal(err)
	}
	if got := counters(t, url, "victim"); !cmp.Equal(got, want) {
		t.Errorf("victim after the attacks = %v, want %v", got, want)
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := watched.NextMsg(0); err == nil {
		t.Errorf("a reply the attacker directed reached another client's updates: %s", m.Data)
	}
	for len(spy) > 0 {
		// JetStream audits the attacker's own refused API calls to it.
		if m := <-spy; !bytes.Contains(m.Data, []byte(`"acc":"APP"`)) {
			t.Errorf("the attacker saw %s: %s", m.Subject, m.Data)
		}
	}
	stopNode(t, n)
	n = startNode(t, dir, nil)
	if got := counters(t, n.ClientURL(), "victim"); !cmp.Equal(got, want) {
		t.Errorf("victim after a restart = %v, want %v", got, want)
	}
}
