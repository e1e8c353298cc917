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
		},
	})
	service, err := nats.Connect(s.ClientURL(), nats.UserInfo("service", "s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(service.Close)
	var mu sync.Mutex
	served := map[string]int{}
	svc, err := micro.AddService(service, micro.Config{Name: "tally", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	err = svc.AddEndpoint("increase", micro.HandlerFunc(func(r micro.Request) {
		mu.Lock()
		served[r.Subject()]++
		mu.Unlock()
		body, err := proto.Marshal(&messages.ChangeReply{GroupId: "g", Key: "k", Value: 1})
		if err != nil {
			t.Error(err)
		}
		if err := r.Respond(body); err != nil {
			t.Error(err)
		}
	}), micro.WithEndpointSubject("tally.v1.user.*.increase"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, user string
		refused    string // the subject the error names, "" for none
	}{
		{"reply subscription refused", "mallory", "_INBOX_mallory."},
		{"publish refused", "eve", `"tally.v1.user.eve.increase"`},
		{"allowed", "alice", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var violations []error
			nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(tt.user, tt.user[:1]),
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
			c, err := client.New(nc, tt.user, client.WithRetries(3), client.WithTimeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = c.IncreaseGroupCounter(ctx, "g", "k", 1)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("IncreaseGroupCounter = %v, want no error", err)
				}
			} else {
				t.Logf("IncreaseGroupCounter = %v", err)
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Fatalf("IncreaseGroupCounter = %v, want nats.ErrPermissionViolation", err)
				}
				if errors.Is(err, nats.ErrTimeout) || !strings.Contains(err.Error(), tt.refused) {
					t.Errorf("IncreaseGroupCounter = %v, want a violation naming %s and no timeout", err, tt.refused)
				}
			}
			// Every violation the server sent has reached the handler once
			// a flush is back: exactly one means the call was not retried.
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := service.Flush(); err != nil {
				t.Fatal(err)
			}
			journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				mu.Lock()
				defer mu.Unlock()
				want := 1
				if tt.refused == "" {
					want = 0
				}
				if len(violations) != want {
					return fmt.Errorf("%d violations %v, want %d", len(violations), violations, want)
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			want := 0
			if tt.refused == "" {
				want = 1
			}
			if got := served["tally.v1.user."+tt.user+".increase"]; got != want {
				t.Errorf("the service got %d calls, want %d", got, want)
			}
		})
	}
}
