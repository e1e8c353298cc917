package gateway_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/tallyhq/tally/journal"
)

// TestJournalUnavailable removes the journal's stream under a running node
// (through the node's own account, the only one that reaches it):
// writes and the activation of new groups fail with 10002, and nothing is
// published.
func TestJournalUnavailable(t *testing.T) {
	e := newEnv(t)
	ups := e.updates(t)
	e.request(t, "tally.v1.admin.set", []byte(`{"groupID":"warm","counters":{"k":1}}`), false)
	next(t, ups)

	internal, err := e.node.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(internal)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), journal.DefaultConfig().Stream); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ subject, payload string }{
		{"tally.v1.admin.increase", `{"groupID":"warm","key":"k","value":1}`}, // active group: the append fails
		{"tally.v1.admin.increase", `{"groupID":"warm","key":"k","value":1}`}, // after the failed reload
		{"tally.v1.user.ann.set", `{"groupID":"cold","counters":{"k":1}}`},    // activation fails
		{"tally.v1.user.ann.get", `{"groupID":"cold"}`},
	} {
		m := e.request(t, r.subject, []byte(r.payload), false)
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "10002" {
			t.Errorf("%s %s with no journal: code %q (%s), want 10002", r.subject, r.payload, code, m.Data)
		}
	}
	// With the stream back (empty), the first update is the next write's:
	// none of the failed ones published anything.
	if _, err := journal.Open(context.Background(), js, journal.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	e.request(t, "tally.v1.admin.increase", []byte(`{"groupID":"warm","key":"k","value":5}`), false)
	if m := next(t, ups); string(m.Data) != `{"groupID":"warm","key":"k","value":5,"seq":1}` {
		t.Errorf("first update after the outage = %s", m.Data)
	}
}
