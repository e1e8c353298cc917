package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/audit"
	"github.com/tallyhq/tally/journal/journaltest"
)

// request sends a JSON request and returns the reply's body.
func request(t *testing.T, nc *nats.Conn, subject, payload string) string {
	t.Helper()
	m, err := nc.Request(subject, []byte(payload), 5*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", subject, payload, err)
	}
	return string(m.Data)
}

// requestRetried is request as a client makes it in a cluster whose
// partitions are still moving between its nodes: a call that times out is
// sent again, the same payload (a write carries its request ID).
func requestRetried(t *testing.T, nc *nats.Conn, subject, payload string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		m, err := nc.Request(subject, []byte(payload), 5*time.Second)
		if err == nil {
			return string(m.Data)
		}
		if !errors.Is(err, nats.ErrTimeout) || attempt == 3 {
			t.Fatalf("%s %s: attempt %d: %v", subject, payload, attempt, err)
		}
	}
}

// members lists a group's members over NATS, a page of 100 at a time.
func members(t *testing.T, nc *nats.Conn, group string) []string {
	t.Helper()
	var all []string
	after := ""
	for {
		var page struct {
			UserIDs []string `json:"userIDs"`
			Next    string   `json:"next"`
		}
		body := request(t, nc, "tally.v1.admin.members.list", fmt.Sprintf(`{"groupID":%q,"after":%q,"limit":100}`, group, after))
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("members.list: %s", body)
		}
		all = append(all, page.UserIDs...)
		if page.Next == "" {
			return all
		}
		after = page.Next
	}
}

// TestMembersAcrossRestart: a node killed (SIGKILL) after members changes
// comes back with the same members, read from its journal; an add and a
// remove retried with their request IDs get their first replies and
// change nothing; the journal tools show the changes with who made them
// and their request IDs; an export imported elsewhere serves the same
// members.
func TestMembersAcrossRestart(t *testing.T) {
	data := t.TempDir()
	p := startProc(t, "--data", data, "--listen", "127.0.0.1:0")
	nc := journaltest.ConnectURL(t, p.url)
	add := `{"groupID":"room","userIDs":["bob","alice"],"requestID":"add-1"}`
	remove := `{"groupID":"room","userIDs":["bob"],"requestID":"rm-1"}`
	firstAdd := request(t, nc, "tally.v1.admin.members.add", add)
	if firstAdd != `{"groupID":"room","userIDs":["alice","bob"]}` {
		t.Fatalf("add = %s", firstAdd)
	}
	for i := range 3 {
		var users []string
		for j := range 100 {
			users = append(users, fmt.Sprintf("%q", fmt.Sprintf("u%03d", i*100+j)))
		}
		request(t, nc, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":[`+strings.Join(users, ",")+`]}`)
		request(t, nc, "tally.v1.user.alice.increase", `{"groupID":"room","key":"likes","value":1}`)
	}
	firstRemove := request(t, nc, "tally.v1.admin.members.remove", remove)
	if firstRemove != `{"groupID":"room","userIDs":["bob"]}` {
		t.Fatalf("remove = %s", firstRemove)
	}
	before := members(t, nc, "room")
	if len(before) != 301 || before[0] != "alice" {
		t.Fatalf("members before the kill: %d, first %q", len(before), before[0])
	}
	hist := request(t, nc, "tally.v1.admin.history", `{"groupID":"room","limit":2}`)
	if !strings.Contains(hist, `"op":"members.add","user":"","requestID":"add-1","changes":[],"members":["alice","bob"]`) {
		t.Errorf("history over NATS: %s", hist)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t)

	p = startProc(t, "--data", data, "--listen", "127.0.0.1:0")
	nc = journaltest.ConnectURL(t, p.url)
	if got := members(t, nc, "room"); !slices.Equal(got, before) {
		t.Errorf("after the restart: %d members, want %d", len(got), len(before))
	}
	if got := request(t, nc, "tally.v1.admin.members.add", add); got != firstAdd {
		t.Errorf("retried add = %s, want %s", got, firstAdd)
	}
	if got := request(t, nc, "tally.v1.admin.members.remove", remove); got != firstRemove {
		t.Errorf("retried remove = %s, want %s", got, firstRemove)
	}
	if got := request(t, nc, "tally.v1.admin.members.add", `{"groupID":"room","userIDs":["carol"],"requestID":"add-1"}`); !strings.Contains(got, `"code":10004`) {
		t.Errorf("another add under add-1 = %s, want 10004", got)
	}
	if got := members(t, nc, "room"); !slices.Equal(got, before) {
		t.Errorf("after the retries: %d members, want %d (bob not back)", len(got), len(before))
	}
	if got := request(t, nc, "tally.v1.user.bob.increase", `{"groupID":"room","key":"likes","value":1}`); !strings.Contains(got, `"code":10007`) {
		t.Errorf("removed bob's increase = %s, want 10007", got)
	}
	if got := request(t, nc, "tally.v1.user.u042.increase", `{"groupID":"room","key":"likes","value":1}`); got != `{"groupID":"room","key":"likes","value":4}` {
		t.Errorf("member u042's increase = %s", got)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("node exited %d", code)
	}

	args := []string{"--data", data}
	out, errOut, code := tool(t, "", append([]string{"history", "room", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("history exited %d: %s", code, errOut)
	}
	var changes []audit.Entry
	for _, e := range jsonLines[audit.Entry](t, out) {
		if strings.HasPrefix(e.Op, "members.") && e.RequestID != "" {
			changes = append(changes, audit.Entry{Op: e.Op, User: e.User, RequestID: e.RequestID, Members: e.Members})
		}
	}
	want := []audit.Entry{
		{Op: "members.add", RequestID: "add-1", Members: []string{"alice", "bob"}},
		{Op: "members.remove", RequestID: "rm-1", Members: []string{"bob"}},
	}
	if diff := cmp.Diff(want, changes); diff != "" {
		t.Errorf("history's members changes with request IDs (-want +got):\n%s", diff)
	}
	out, _, _ = tool(t, "", append([]string{"history", "room"}, args...)...)
	for _, s := range []string{"members.add", "members.remove", "(admin)", "add-1", "rm-1", "alice,bob"} {
		if !strings.Contains(out, s) {
			t.Errorf("history's table lacks %q:\n%s", s, out)
		}
	}
	if out, errOut, code := tool(t, "", append([]string{"verify"}, args...)...); code != 0 || !strings.Contains(out, "0 bad") {
		t.Fatalf("verify exited %d: %s%s", code, out, errOut)
	}
	export, errOut, code := tool(t, "", append([]string{"export"}, args...)...)
	if code != 0 {
		t.Fatalf("export exited %d: %s", code, errOut)
	}
	moved := t.TempDir()
	indexed := fmt.Sprintf("%d memberships indexed", len(before))
	if out, errOut, code := tool(t, export, "import", "--data", moved); code != 0 || !strings.Contains(out, indexed) {
		t.Fatalf("import exited %d: %s%s; want %q", code, out, errOut, indexed)
	}
	if out, errOut, code := tool(t, "", "reindex", "--data", moved); code != 0 || !strings.Contains(out, indexed) {
		t.Fatalf("reindex exited %d: %s%s; want %q", code, out, errOut, indexed)
	}
	if out, errOut, code := tool(t, "", "verify", "--data", moved); code != 0 {
		t.Fatalf("verify of the imported journal exited %d: %s%s", code, out, errOut)
	}
	mp := startProc(t, "--data", moved, "--listen", "127.0.0.1:0")
	mc := journaltest.ConnectURL(t, mp.url)
	if got := members(t, mc, "room"); !slices.Equal(got, before) {
		t.Errorf("the imported journal's node: %d members, want %d", len(got), len(before))
	}
	if got := request(t, mc, "tally.v1.user.bob.get", `{"groupID":"room"}`); !strings.Contains(got, `"code":10007`) {
		t.Errorf("bob's get on the imported journal = %s, want 10007", got)
	}
}

// TestClusterMembers: members change through one node of a cluster, and
// every node answers by them: the calls of a group's user and its list
// are forwarded to the group's node with the user, whatever node takes
// them.
func TestClusterMembers(t *testing.T) {
	c := startCluster(t, 3, false)
	nc := c.connect(0)
	const groups = 8 // over several partitions, so over the nodes
	for j := range groups {
		g := fmt.Sprintf("room-%d", j)
		if got := requestRetried(t, nc, "tally.v1.admin.members.add", fmt.Sprintf(`{"groupID":%q,"userIDs":["alice-0","alice-1","alice-2"],"requestID":"add-%s"}`, g, g)); !strings.Contains(got, `"userIDs":["alice-0","alice-1","alice-2"]`) {
			t.Fatalf("add to %s = %s", g, got)
		}
	}
	for i := range c.members {
		nc := c.connect(i)
		for j := range groups {
			g := fmt.Sprintf("room-%d", j)
			if got := requestRetried(t, nc, fmt.Sprintf("tally.v1.user.mallory-%d.get", i), fmt.Sprintf(`{"groupID":%q}`, g)); !strings.Contains(got, `"code":10007`) {
				t.Errorf("node %d: a non-member's get of %s = %s, want 10007", i, g, got)
			}
			if got := requestRetried(t, nc, fmt.Sprintf("tally.v1.user.mallory-%d.increase", i), fmt.Sprintf(`{"groupID":%q,"key":"k","value":1,"requestID":"m-%s"}`, g, g)); !strings.Contains(got, `"code":10007`) {
				t.Errorf("node %d: a non-member's increase of %s = %s, want 10007", i, g, got)
			}
			if got := requestRetried(t, nc, fmt.Sprintf("tally.v1.user.alice-%d.increase", i), fmt.Sprintf(`{"groupID":%q,"key":"k","value":1,"requestID":"a-%s"}`, g, g)); got != fmt.Sprintf(`{"groupID":%q,"key":"k","value":%d}`, g, i+1) {
				t.Errorf("node %d: a member's increase of %s = %s", i, g, got)
			}
			if got := requestRetried(t, nc, fmt.Sprintf("tally.v1.user.alice-%d.get", i), fmt.Sprintf(`{"groupID":%q}`, g)); !strings.Contains(got, `"members":true`) {
				t.Errorf("node %d: a member's get of %s = %s", i, g, got)
			}
			if got := members(t, nc, g); !slices.Equal(got, []string{"alice-0", "alice-1", "alice-2"}) {
				t.Errorf("node %d: members of %s = %q", i, g, got)
			}
		}
	}
}
