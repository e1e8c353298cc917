package node_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/node"
	"github.com/tallyhq/tally/usersig"
	"github.com/tallyhq/tally/usersig/usersigtest"
)

// signIn connects to url as user with a signature minted by key.
func signIn(t testing.TB, url string, key ed25519.PrivateKey, user string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	sig := usersigtest.Mint(t, key, user, time.Hour)
	nc, err := nats.Connect(url, append([]nats.Option{nats.Token(sig), nats.CustomInboxPrefix(contract.InboxPrefix(user)), nats.MaxReconnects(0)}, opts...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// TestSignInGrantsManyGroups signs in a member of 1,000 groups with the
// longest group IDs: the callout's answer (about 140 KB) goes through,
// and the member receives a members-only group's updates; a publish
// over 16 KiB from the no-credentials account is still refused, and one
// over 8 KiB from an end user.
func TestSignInGrantsManyGroups(t *testing.T) {
	keyFile, key := usersigtest.KeyFile(t)
	var groups []string
	for i := range 1000 {
		groups = append(groups, fmt.Sprintf("%048d", i))
	}
	n := startNode(t, t.TempDir(), func(c *node.Config) {
		c.UserSigKey = keyFile
		c.Groups = func(_ context.Context, user string) ([]string, error) {
			if user == "member" {
				return groups, nil
			}
			return nil, nil
		}
	})
	nc, err := signIn(t, n.ClientURL(), key, "member")
	if err != nil {
		t.Fatalf("sign in as a member of 1,000 groups: %v", err)
	}
	last := contract.MemberUpdatesSubject("tally.v1", groups[999])
	sub, err := nc.SubscribeSync(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.LastError(); err != nil {
		t.Fatalf("subscribe to %s: %v", last, err)
	}
	// The node publishes an update only where a subscriber is: the
	// member's subscription must show in the account it publishes from.
	app, err := n.Server().LookupAccount(node.ClientAccount)
	if err != nil {
		t.Fatal(err)
	}
	if !app.SubscriptionInterest("tally.v1.updates." + groups[999] + ".members") {
		t.Errorf("%s shows no interest in the members-only updates a member subscribed to", node.ClientAccount)
	}
	// The updates come from the node's gateway account; the test
	// publishes one there as the node does.
	anyone := journaltest.ConnectURL(t, n.ClientURL())
	if err := anyone.Publish("tally.v1.updates."+groups[999]+".members", []byte(`{"groupID":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("member's update on %s: %v", last, err)
	}

	// The server refuses what the client library would not send.
	if got := rawPublish(t, n.ClientURL(), "", "tally.v1.user.x.set", 16<<10+1); !strings.Contains(got, "Maximum Payload Violation") {
		t.Errorf("publish of 16 KiB + 1 from the no-credentials account: server said %q, want a payload violation", got)
	}
	if got := rawPublish(t, n.ClientURL(), "", "tally.v1.user.x.set", 16<<10); strings.Contains(got, "Violation") {
		t.Errorf("publish of 16 KiB from the no-credentials account: server said %q", got)
	}
	sig, err := usersig.Mint(key, "member", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := rawPublish(t, n.ClientURL(), sig, "tally.v1.user.member.set", 8<<10+1); !strings.Contains(got, "Maximum Payload Violation") {
		t.Errorf("publish of 8 KiB + 1 from an end user: server said %q, want a payload violation", got)
	}
	if nc.MaxPayload() != 8<<10 || anyone.MaxPayload() != 16<<10 {
		t.Errorf("max payload told an end user %d, the no-credentials user %d; want 8 KiB and 16 KiB", nc.MaxPayload(), anyone.MaxPayload())
	}
	alice, err := client.New(nc, "member")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := alice.IncreaseGroupCounter(context.Background(), "open", "k", 2); err != nil || v != 2 {
		t.Errorf("member's increase = %d, %v; want 2", v, err)
	}
}

// rawPublish connects to url over plain TCP with token (none when empty),
// publishes size bytes on subject, pings, and returns what the server
// said until its PONG or the connection's end.
func rawPublish(t *testing.T, url, token, subject string, size int) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		t.Fatal(err)
	}
	connect := `CONNECT {"verbose":false,"pedantic":false,"protocol":1,"auth_token":` + strconv.Quote(token) + "}\r\nPING\r\n"
	if _, err := io.WriteString(c, connect); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "PONG") {
		t.Fatalf("CONNECT: %q, %v", line, err)
	}
	fmt.Fprintf(c, "PUB %s %d\r\n%s\r\nPING\r\n", subject, size, strings.Repeat("x", size))
	var said strings.Builder
	for {
		line, err := r.ReadString('\n')
		said.WriteString(line)
		if err != nil || strings.HasPrefix(line, "PONG") {
			return said.String()
		}
	}
}

// TestDisconnectUsers closes a user's end-user connections, and only
// hers, when the node is told to (after a change of her groups).
func TestDisconnectUsers(t *testing.T) {
	keyFile, key := usersigtest.KeyFile(t)
	n := startNode(t, t.TempDir(), func(c *node.Config) { c.UserSigKey = keyFile })
	closed := make(chan string, 10)
	var bob *nats.Conn
	for _, user := range []string{"alice", "alice", "bob"} {
		nc, err := signIn(t, n.ClientURL(), key, user, nats.ClosedHandler(func(*nats.Conn) { closed <- user }))
		if err != nil {
			t.Fatal(err)
		}
		bob = nc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.DisconnectUsers(ctx, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case u := <-closed:
			if u != "alice" {
				t.Errorf("DisconnectUsers(alice) closed %s's connection", u)
			}
		case <-ctx.Done():
			t.Fatal("alice's connections still open 5 s after DisconnectUsers")
		}
	}
	if err := bob.Flush(); err != nil {
		t.Errorf("bob's connection after DisconnectUsers(alice): %v", err)
	}
}
