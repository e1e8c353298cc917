package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestPermissionViolationFailsAtOnce checks that a call the server's
// permissions refuse, its publish or the subscription to its replies, fails
// with the violation, naming the subject, rather than as a timeout after
// every retry.
func TestPermissionViolationFailsAtOnce(t *testing.T) {
	s := startPermissions(t, nil)
	tests := []struct {
		name, user string
		admin      bool
		refused    string // the subject the error names, "" for none
		calls      int    // made one after the other, each expected to end alike
		served     int    // calls the service gets
		violations int    // the server reports
	}{
		{"reply subscription refused", "mallory", false, "_INBOX_mallory.", 1, 0, 1},
		{"publish refused", "eve", false, `"tally.v1.user.eve.increase"`, 1, 0, 1},
		{"allowed", "alice", false, "", 1, 1, 0},
		{"admin reply subscription refused", "mute", true, `"_INBOX.`, 1, 0, 1},
		{"admin publish refused", "clerk", true, `"tally.v1.admin.increase"`, 1, 0, 1},
		{"admin allowed", "service", true, "", 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var violations []error
			nc, err := nats.Connect(s.url, nats.UserInfo(tt.user, tt.user[:1]),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					mu.Lock()
					violations = append(violations, err)
					mu.Unlock()
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			// Were the violation missed, every attempt would wait out its
			// minute and the context's deadline would end the call with a
			// timeout.
			opts := []client.Option{client.WithRetries(3), client.WithTimeout(time.Minute)}
			var c interface {
				IncreaseGroupCounter(context.Context, string, string, int64, ...client.WriteOption) (int64, error)
			}
			if tt.admin {
				c, err = client.NewAdmin(nc, opts...)
			} else {
				c, err = client.New(nc, tt.user, opts...)
			}
			if err != nil {
				t.Fatal(err)
			}
			subject := "tally.v1.user." + tt.user + ".increase"
			if tt.admin {
				subject = "tally.v1.admin.increase"
			}
			served := s.served(subject)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for range tt.calls {
				_, err = c.IncreaseGroupCounter(ctx, "g", "k", 1)
				checkRefused(t, err, tt.refused)
			}
			// Every violation the server sent has reached the handler once
			// a flush is back: exactly one means the call was not retried.
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			s.flush(t)
			journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				mu.Lock()
				defer mu.Unlock()
				if len(violations) != tt.violations {
					return fmt.Errorf("%d violations %v, want %d", len(violations), violations, tt.violations)
				}
				return nil
			})
			if got := s.served(subject) - served; got != tt.served {
				t.Errorf("the service got %d calls, want %d", got, tt.served)
			}
		})
	}
}

// TestPermissionViolationFailsOnlyItsCalls checks that a violation ends
// only the calls it names: clients of one connection each end their own,
// and a call of another client waiting for its reply gets it.
func TestPermissionViolationFailsOnlyItsCalls(t *testing.T) {
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	s := startPermissions(t, hold)
	t.Cleanup(release) // before the service stops
	nc, err := nats.Connect(s.url, nats.UserInfo("bff", "b"),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	alice, err := client.New(nc, "alice", client.WithRetries(0), client.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	eve, err := client.New(nc, "eve", client.WithRetries(0), client.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := alice.IncreaseGroupCounter(ctx, "g", "k", 1)
		done <- err
	}()
	journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("alice's IncreaseGroupCounter ended before the service answered: %v", err)
		default:
		}
		if s.served("tally.v1.user.alice.increase") == 0 {
			return errors.New("alice's call has not reached the service")
		}
		return nil
	})
	for range 2 {
		_, err := eve.IncreaseGroupCounter(ctx, "g", "k", 1)
		checkRefused(t, err, `"tally.v1.user.eve.increase"`)
	}
	release()
	if err := <-done; err != nil {
		t.Errorf("alice's IncreaseGroupCounter = %v, want no error", err)
	}
}

func checkRefused(t testing.TB, err error, refused string) {
	t.Helper()
	if refused == "" {
		if err != nil {
			t.Fatalf("IncreaseGroupCounter = %v, want no error", err)
		}
		return
	}
	t.Logf("IncreaseGroupCounter = %v", err)
	if !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("IncreaseGroupCounter = %v, want nats.ErrPermissionViolation", err)
	}
	if errors.Is(err, nats.ErrTimeout) || !strings.Contains(err.Error(), refused) {
		t.Errorf("IncreaseGroupCounter = %v, want a violation naming %s and no timeout", err, refused)
	}
}

// permissions is a NATS server whose users have the permissions of the
// tests above, and a service answering increases on it.
type permissions struct {
	url     string
	service *nats.Conn

	mu     sync.Mutex
	counts map[string]int // calls served, by subject
}

// startPermissions starts the server and the service; the service holds
// each of alice's increases until hold is closed, when hold is not nil.
func startPermissions(t testing.TB, hold <-chan struct{}) *permissions {
	t.Helper()
	perms := func(pub, sub []string, denySub ...string) *server.Permissions {
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub, Deny: denySub},
		}
	}
	s := journaltest.Start(t, &server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "service", Password: "s"},
			{Username: "alice", Password: "a", Permissions: perms(
				[]string{"tally.v1.user.alice.>"}, []string{"_INBOX_alice.>"})},
			// eve may only read.
			{Username: "eve", Password: "e", Permissions: perms(
				[]string{"tally.v1.user.eve.get"}, []string{"_INBOX_eve.>"})},
			{Username: "mallory", Password: "m", Permissions: perms(
				[]string{"tally.v1.user.mallory.>"}, []string{">"}, "_INBOX_mallory.>")},
			// bff, a back end for alice and eve, may write for alice only.
			{Username: "bff", Password: "b", Permissions: perms(
				[]string{"tally.v1.user.alice.>", "tally.v1.user.eve.get"}, []string{"_INBOX_alice.>", "_INBOX_eve.>"})},
			// mute may call as an admin but not read the replies, clerk
			// the reverse.
			{Username: "mute", Password: "m", Permissions: perms(
				[]string{"tally.v1.admin.>"}, []string{">"}, "_INBOX.>")},
			{Username: "clerk", Password: "c", Permissions: perms(
				[]string{"tally.v1.user.>"}, []string{"_INBOX.>"})},
		},
	})
	p := &permissions{url: s.ClientURL(), counts: map[string]int{}}
	var err error
	if p.service, err = nats.Connect(p.url, nats.UserInfo("service", "s")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.service.Close)
	svc, err := micro.AddService(p.service, micro.Config{Name: "tally", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Error(err)
		}
	})
	body, err := proto.Marshal(&messages.ChangeReply{GroupId: "g", Key: "k", Value: 1})
	if err != nil {
		t.Fatal(err)
	}
	handler := micro.HandlerFunc(func(r micro.Request) {
		p.mu.Lock()
		p.counts[r.Subject()]++
		p.mu.Unlock()
		if hold != nil && r.Subject() == "tally.v1.user.alice.increase" {
			<-hold
		}
		if err := r.Respond(body); err != nil {
			t.Error(err)
		}
	})
	for name, subject := range map[string]string{"increase": "tally.v1.user.*.increase", "admin-increase": "tally.v1.admin.increase"} {
		if err := svc.AddEndpoint(name, handler, micro.WithEndpointSubject(subject)); err != nil {
			t.Fatal(err)
		}
	}
	// Once flushed, the server has the endpoints' subscriptions: a call
	// made now finds its responder.
	if err := p.service.Flush(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *permissions) served(subject string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[subject]
}

func (p *permissions) flush(t testing.TB) {
	t.Helper()
	if err := p.service.Flush(); err != nil {
		t.Fatal(err)
	}
}
