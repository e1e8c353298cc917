package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/gateway/gatewaytest"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node"
)

// expect sends payload to subject and checks the reply's body, or its
// error code when code is not 0.
func (e *env) expect(t *testing.T, subject, payload string, code int, reply string) *nats.Msg {
	t.Helper()
	m := e.request(t, subject, []byte(payload), false)
	got := m.Header.Get(micro.ErrorCodeHeader)
	switch {
	case code != 0 && got != fmt.Sprint(code):
		t.Errorf("%s %.200s: code %q (%s), want %d", subject, payload, got, m.Data, code)
	case code == 0 && got != "":
		t.Errorf("%s %.200s: code %s (%s), want none", subject, payload, got, m.Data)
	case code == 0 && reply != "" && string(m.Data) != reply:
		t.Errorf("%s %.200s = %s, want %s", subject, payload, m.Data, reply)
	}
	return m
}

// TestMembersOverNATS runs the members operations over the wire: the
// replies, 10007 for each user call of a non-member with nothing published,
// the admin's bypass, and the updates subject of a group with members.
func TestMembersOverNATS(t *testing.T) {
	e := newEnv(t)
	ups := e.updates(t)
	e.expect(t, "tally.v1.user.dave.increase", `{"groupID":"room","key":"likes","value":1}`, 0, `{"groupID":"room","key":"likes","value":1}`)
	if m := next(t, ups); m.Subject != "tally.v1.updates.room" {
		t.Errorf("open group's update on %s", m.Subject)
	}
	e.expect(t, "tally.v1.user.dave.get", `{"groupID":"room"}`, 0, `{"groupID":"room","counters":{"likes":1},"seq":1}`)

	e.expect(t, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":["bob","alice","bob"],"requestID":"r1"}`, 0, `{"groupID":"room","userIDs":["alice","bob"]}`)
	e.expect(t, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":["alice","bob"],"requestID":"r1"}`, 0, `{"groupID":"room","userIDs":["alice","bob"]}`)
	e.expect(t, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":["carol"],"requestID":"r1"}`, 10004, "")
	e.expect(t, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":["alice","carol"]}`, 0, `{"groupID":"room","userIDs":["carol"]}`)
	e.expect(t, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":["carol"]}`, 0, `{"groupID":"room","userIDs":[]}`)
	e.expect(t, "tally.v1.admin.members.list", `{"groupID":"room","limit":2}`, 0, `{"groupID":"room","userIDs":["alice","bob"],"next":"bob"}`)
	e.expect(t, "tally.v1.admin.members.list", `{"groupID":"room","after":"bob"}`, 0, `{"groupID":"room","userIDs":["carol"]}`)
	e.expect(t, "tally.v1.admin.members.list", `{"groupID":"nobody"}`, 0, `{"groupID":"nobody","userIDs":[]}`)

	for _, c := range []struct{ op, payload string }{
		{"set", `{"groupID":"room","counters":{"likes":100}}`},
		{"increase", `{"groupID":"room","key":"likes","value":1}`},
		{"decrease", `{"groupID":"room","key":"likes","value":1}`},
		{"get", `{"groupID":"room"}`},
	} {
		m := e.expect(t, "tally.v1.user.dave."+c.op, c.payload, 10007, "")
		if want := `{"code":10007,"message":"not allowed: dave is not a member of group room"}`; string(m.Data) != want {
			t.Errorf("%s by a non-member = %s, want %s", c.op, m.Data, want)
		}
	}
	// A sentinel write after the refused calls: its update is the first
	// that arrives, so the refused calls published nothing.
	e.expect(t, "tally.v1.user.alice.increase", `{"groupID":"room","key":"likes","value":1}`, 0, `{"groupID":"room","key":"likes","value":2}`)
	if m := next(t, ups); m.Subject != "tally.v1.updates.room.members" || string(m.Data) != `{"groupID":"room","key":"likes","value":2,"seq":4}` {
		t.Errorf("first update after the refusals: %s %s", m.Subject, m.Data)
	}
	e.expect(t, "tally.v1.user.alice.get", `{"groupID":"room"}`, 0, `{"groupID":"room","counters":{"likes":2},"seq":4,"members":true}`)
	e.expect(t, "tally.v1.admin.increase", `{"groupID":"room","key":"likes","value":1}`, 0, `{"groupID":"room","key":"likes","value":3}`)
	e.expect(t, "tally.v1.admin.get", `{"groupID":"room"}`, 0, `{"groupID":"room","counters":{"likes":3},"seq":5,"members":true}`)

	e.expect(t, "tally.v1.admin.members.remove", `{"groupID":"room","userIDs":["alice","bob","carol","zed"]}`, 0, `{"groupID":"room","userIDs":["alice","bob","carol"]}`)
	e.expect(t, "tally.v1.user.alice.increase", `{"groupID":"room","key":"likes","value":1}`, 10007, "")
	e.expect(t, "tally.v1.admin.get", `{"groupID":"room"}`, 0, `{"groupID":"room","counters":{"likes":3},"seq":6,"members":true}`)

	// Protobuf.
	req, _ := proto.Marshal(&messages.MembersRequest{GroupId: "room", UserIds: []string{"erin"}})
	m := e.request(t, "tally.v1.admin.members.add", req, true)
	var reply messages.MembersReply
	if err := proto.Unmarshal(m.Data, &reply); err != nil || reply.GetGroupId() != "room" || len(reply.GetUserIds()) != 1 || reply.GetUserIds()[0] != "erin" {
		t.Errorf("protobuf add = %v, %v", &reply, err)
	}
	req, _ = proto.Marshal(&messages.ListMembersRequest{GroupId: "room"})
	m = e.request(t, "tally.v1.admin.members.list", req, true)
	var list messages.ListMembersReply
	if err := proto.Unmarshal(m.Data, &list); err != nil || len(list.GetUserIds()) != 1 || list.GetUserIds()[0] != "erin" || list.GetNext() != "" {
		t.Errorf("protobuf list = %v, %v", &list, err)
	}
	req, _ = proto.Marshal(&messages.GetRequest{GroupId: "room"})
	m = e.request(t, "tally.v1.user.erin.get", req, true)
	var got messages.GetReply
	if err := proto.Unmarshal(m.Data, &got); err != nil || !got.GetMembers() {
		t.Errorf("protobuf get = %v, %v; want members", &got, err)
	}
}

// TestMembersRefusedCallsCount: a non-member's refused calls count
// against its rate limit, as every call admitted to a group does; the
// 21st write within the window is refused with 2996, not 10007.
func TestMembersRefusedCallsCount(t *testing.T) {
	e := newEnv(t)
	e.expect(t, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":["alice"]}`, 0, "")
	for range 20 {
		e.expect(t, "tally.v1.user.dave.increase", `{"groupID":"room","key":"k","value":1}`, 10007, "")
	}
	e.expect(t, "tally.v1.user.dave.increase", `{"groupID":"room","key":"k","value":1}`, 2996, "")
	e.expect(t, "tally.v1.user.dave.increase", `{"groupID":"open","key":"k","value":1}`, 2996, "")
}

func TestMembersHostile(t *testing.T) {
	e := newEnv(t)
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprint("u", i)
	}
	many, _ := json.Marshal(map[string]any{"groupID": "g", "userIDs": ids})
	hundred, _ := json.Marshal(map[string]any{"groupID": "g", "userIDs": ids[:100]})
	tests := []struct {
		name, op, payload string
		code              int
	}{
		{"101 users", "add", string(many), 10004},
		{"no users", "add", `{"groupID":"g","userIDs":[]}`, 10004},
		{"users missing", "remove", `{"groupID":"g"}`, 10004},
		{"users null", "add", `{"groupID":"g","userIDs":null}`, 10004},
		{"user as number", "add", `{"groupID":"g","userIDs":[5]}`, 10004},
		{"users as string", "add", `{"groupID":"g","userIDs":"alice"}`, 10004},
		{"user with a dot", "add", `{"groupID":"g","userIDs":["a.b"]}`, 10004},
		{"user with a wildcard", "remove", `{"groupID":"g","userIDs":["a>"]}`, 10004},
		{"user with a space", "add", `{"groupID":"g","userIDs":["a b"]}`, 10004},
		{"empty user", "add", `{"groupID":"g","userIDs":[""]}`, 10004},
		{"33-byte user", "add", `{"groupID":"g","userIDs":["` + strings.Repeat("u", 33) + `"]}`, 10004},
		{"non-ASCII user", "add", `{"groupID":"g","userIDs":["é"]}`, 10004},
		{"field name in another case", "add", `{"groupID":"g","userids":["alice"]}`, 10004},
		{"field names in capitals", "remove", `{"GROUPID":"g","USERIDS":["alice"]}`, 10004},
		{"users twice", "add", `{"groupID":"g","userIDs":["alice"],"userIDs":["bob"]}`, 10004},
		{"bad group", "add", `{"groupID":"a.b","userIDs":["alice"]}`, 10015},
		{"huge limit", "list", `{"groupID":"g","limit":1000000000000}`, 10004},
		{"limit past int64", "list", `{"groupID":"g","limit":99999999999999999999}`, 10004},
		{"limit 1001", "list", `{"groupID":"g","limit":1001}`, 10004},
		{"limit 0", "list", `{"groupID":"g","limit":0}`, 10004},
		{"negative limit", "list", `{"groupID":"g","limit":-1}`, 10004},
		{"limit as string", "list", `{"groupID":"g","limit":"5"}`, 10004},
		{"bad after", "list", `{"groupID":"g","after":"a b"}`, 10004},
		{"after in another case", "list", `{"groupID":"g","After":"a"}`, 10004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.expect(t, "tally.v1.admin.members."+tt.op, tt.payload, tt.code, "")
		})
	}
	e.expect(t, "tally.v1.admin.members.list", `{"groupID":"g","limit":1000}`, 0, `{"groupID":"g","userIDs":[]}`)
	e.expect(t, "tally.v1.admin.get", `{"groupID":"g"}`, 0, `{"groupID":"g","counters":{},"seq":0}`)
	e.expect(t, "tally.v1.admin.members.add", string(hundred), 0, "")

	// A user's subjects have no members operations.
	for _, op := range []string{"members.add", "members.remove", "members.list"} {
		_, err := e.nc.Request("tally.v1.user.alice."+op, []byte(`{"groupID":"g","userIDs":["alice"]}`), 2*time.Second)
		if err != nats.ErrNoResponders {
			t.Errorf("%s on a user's subject: %v, want no responders", op, err)
		}
	}
}

// TestMembersChangedHook: the node tells its MembersChanged hook of
// exactly the users whose membership a call changed, once the change is
// journaled and indexed, and sign-in's index lookup sees the change.
func TestMembersChangedHook(t *testing.T) {
	calls := make(chan []string, 16)
	n := gatewaytest.StartTB(t, func(c *node.Config) {
		c.MembersChanged = func(_ context.Context, users []string) error { calls <- users; return nil }
	})
	e := &env{nc: journaltest.ConnectURL(t, n.URL), clock: n.Clock, node: n}
	ctx := context.Background()
	for _, step := range []struct {
		subject, payload string
		changed          []string
		groups           map[string][]string // user -> GroupsOf after the step
	}{
		{"members.add", `{"groupID":"g","userIDs":["bob","alice"]}`, []string{"alice", "bob"}, map[string][]string{"alice": {"g"}, "bob": {"g"}}},
		{"members.add", `{"groupID":"g","userIDs":["alice","carol"]}`, []string{"carol"}, map[string][]string{"carol": {"g"}}},
		{"members.add", `{"groupID":"g","userIDs":["alice"]}`, nil, map[string][]string{"alice": {"g"}}},
		{"members.remove", `{"groupID":"g","userIDs":["bob","zed"]}`, []string{"bob"}, map[string][]string{"bob": nil, "alice": {"g"}}},
	} {
		e.expect(t, "tally.v1.admin."+step.subject, step.payload, 0, "")
		if step.changed != nil {
			select {
			case got := <-calls:
				if !slices.Equal(got, step.changed) {
					t.Errorf("%s %s: hook told %q, want %q", step.subject, step.payload, got, step.changed)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s %s: hook not called", step.subject, step.payload)
			}
		}
		for user, want := range step.groups {
			got, err := n.Members().GroupsOf(ctx, user)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("after %s %s: GroupsOf(%s) = %q, %v; want %q", step.subject, step.payload, user, got, err, want)
			}
		}
	}
	// A sentinel change: had the no-op add told the hook, this would not be
	// the next call.
	e.expect(t, "tally.v1.admin.members.add", `{"groupID":"g","userIDs":["dave"]}`, 0, "")
	select {
	case got := <-calls:
		if !slices.Equal(got, []string{"dave"}) {
			t.Errorf("hook told %q after the no-op add, want [dave] next", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hook not called for dave")
	}
}
