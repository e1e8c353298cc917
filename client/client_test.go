package client_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

func TestErrorsMatchSentinels(t *testing.T) {
	nc := journaltest.ConnectURL(t, tallyURL)
	c, err := client.New(nc, "erin")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin, err := client.NewAdmin(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetGroupCounters(ctx, "g-err", map[string]int64{"max": math.MaxInt64}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want *client.Error
	}{
		{"bad group", func() error { _, err := c.GetGroupCounters(ctx, "a.b"); return err }, client.ErrInvalidGroupID},
		{"long key", func() error {
			_, err := c.IncreaseGroupCounter(ctx, "g-err", strings.Repeat("k", 129), 1)
			return err
		}, client.ErrInvalidParameter},
		{"overflow", func() error { _, err := c.IncreaseGroupCounter(ctx, "g-err", "max", 1); return err }, client.ErrInvalidParameter},
		{"negative", func() error { _, err := c.DecreaseGroupCounter(ctx, "g-err", "k", -5); return err }, client.ErrInvalidParameter},
		{"empty set", func() error { _, err := c.SetGroupCounters(ctx, "g-err", nil); return err }, client.ErrInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want code %d", err, tt.want.Code)
			}
			var e *client.Error
			if !errors.As(err, &e) || e.Message == "" || e.Code != tt.want.Code {
				t.Errorf("err = %#v, want code %d and a message", err, tt.want.Code)
			}
			if errors.Is(err, client.ErrRateLimited) {
				t.Errorf("%v matches ErrRateLimited", err)
			}
		})
	}
	if _, err := client.New(nc, "a.b"); err == nil {
		t.Errorf("New with user a.b succeeded")
	}
}

func TestGetAllAndSome(t *testing.T) {
	group := fresh("g-get")
	nc := journaltest.ConnectURL(t, tallyURL)
	c, _ := client.New(nc, "frank")
	ctx := context.Background()
	if _, err := c.SetGroupCounters(ctx, group, map[string]int64{"a": 1, "b": -2}); err != nil {
		t.Fatal(err)
	}
	all, err := c.GetGroupCounters(ctx, group)
	if err != nil || !cmp.Equal(all, map[string]int64{"a": 1, "b": -2}) {
		t.Errorf("GetGroupCounters(all) = %v, %v", all, err)
	}
	some, err := c.GetGroupCounters(ctx, group, "b", "zzz")
	if err != nil || !cmp.Equal(some, map[string]int64{"b": -2}) {
		t.Errorf("GetGroupCounters(b, zzz) = %v, %v", some, err)
	}
	none, err := c.GetGroupCounters(ctx, "g-never-written")
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("GetGroupCounters(unwritten) = %#v, %v; want an empty map", none, err)
	}
	if _, err := c.IncreaseGroupCounter(ctx, group, "a", 1); err != nil {
		t.Fatal(err)
	}
	snap, err := c.GetGroupSnapshot(ctx, group, "a")
	if err != nil || snap.Seq != 2 || !cmp.Equal(snap.Counters, map[string]int64{"a": 2}) {
		t.Errorf("GetGroupSnapshot(a) = %+v, %v; want a=2 at seq 2", snap, err)
	}
}

func TestUpdatesInOrderAndUnsubscribe(t *testing.T) {
	nc := journaltest.ConnectURL(t, tallyURL)
	admin, _ := client.NewAdmin(nc)
	var mu sync.Mutex
	var got []client.Update
	group := fmt.Sprintf("g-upd-%d", time.Now().UnixNano()) // the node outlives a test run
	unsubscribe, err := admin.OnGroupCounterUpdated(group, func(u client.Update) {
		mu.Lock()
		got = append(got, u)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin.SetGroupCounters(ctx, group, map[string]int64{"x": 1, "y": 2})
	admin.IncreaseGroupCounter(ctx, group, "x", 4)
	admin.DeleteGroupCounters(ctx, group, "y")
	want := []client.Update{
		{GroupID: group, Key: "x", Value: 1, Seq: 1},
		{GroupID: group, Key: "y", Value: 2, Seq: 1},
		{GroupID: group, Key: "x", Value: 5, Seq: 2},
		{GroupID: group, Key: "y", Seq: 3, Deleted: true},
	}
	journaltest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff(want, got); diff != "" {
			return errors.New(diff)
		}
		return nil
	})
	if err := unsubscribe(); err != nil {
		t.Fatal(err)
	}
	// After unsubscribing, a new change reaches a second subscriber but not
	// the first handler.
	seen := make(chan client.Update, 1)
	stop, err := admin.OnGroupCounterUpdated(group, func(u client.Update) { seen <- u })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	admin.IncreaseGroupCounter(ctx, group, "x", 1)
	<-seen
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Errorf("handler got %d updates after unsubscribe", len(got)-len(want))
	}
}

// TestRetriesInternalErrorsWithSameRequestID answers the first attempt of a
// write with 10002, as a node whose journal append timed out would, and
// checks that the client retries with the same request ID.
func TestRetriesInternalErrorsWithSameRequestID(t *testing.T) {
	s := journaltest.StartServer(t)
	nc := journaltest.ConnectURL(t, s.ClientURL())
	var ids []string
	svc, err := micro.AddService(nc, micro.Config{Name: "flaky", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	err = svc.AddEndpoint("increase", micro.HandlerFunc(func(r micro.Request) {
		var req messages.ChangeRequest
		if err := proto.Unmarshal(r.Data(), &req); err != nil {
			t.Error(err)
		}
		ids = append(ids, req.GetRequestId())
		if len(ids) == 1 {
			body, _ := proto.Marshal(&messages.Error{Code: 10002, Message: "journal append timed out"})
			r.Error("10002", "journal append timed out", body)
			return
		}
		body, _ := proto.Marshal(&messages.ChangeReply{GroupId: req.GetGroupId(), Key: req.GetKey(), Value: 42})
		r.Respond(body)
	}), micro.WithEndpointSubject("tally.v1.user.gina.increase"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(nc, "gina")
	v, err := c.IncreaseGroupCounter(context.Background(), "g", "k", 1)
	if err != nil || v != 42 {
		t.Fatalf("IncreaseGroupCounter = %d, %v; want 42 after a retry", v, err)
	}
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("request IDs of the attempts = %q, want two equal, non-empty", ids)
	}

	noRetry, _ := client.New(nc, "gina", client.WithRetries(0))
	ids = nil
	if _, err := noRetry.IncreaseGroupCounter(context.Background(), "g", "k", 1, client.WithRequestID("mine")); !errors.Is(err, client.ErrInternal) {
		t.Errorf("without retries: %v, want ErrInternal", err)
	}
	if len(ids) != 1 || ids[0] != "mine" {
		t.Errorf("request IDs = %q, want [mine]", ids)
	}
}

// TestRefusesWhatTheServiceRefuses checks that the client refuses, without
// sending anything, the IDs and keys the service would refuse, with the
// service's codes.
func TestRefusesWhatTheServiceRefuses(t *testing.T) {
	s := journaltest.StartServer(t)
	nc := journaltest.Connect(t, s)
	spy := journaltest.Connect(t, s)
	sent, err := spy.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", "a.b", "a b", strings.Repeat("u", 33), "é"} {
		if _, err := client.New(nc, user); err == nil {
			t.Errorf("New(%q) succeeded", user)
		}
	}
	c, err := client.New(nc, "ivy", client.WithRetries(0), client.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := client.NewAdmin(nc, client.WithRetries(0), client.WithTimeout(time.Minute))
	ctx := context.Background()
	huge := strings.Repeat("g", 600_000)
	tests := []struct {
		name string
		call func() error
		want *client.Error
	}{
		{"huge group", func() error { _, err := c.GetGroupCounters(ctx, huge); return err }, client.ErrInvalidGroupID},
		{"group with a wildcard", func() error { _, err := c.IncreaseGroupCounter(ctx, "g*", "k", 1); return err }, client.ErrInvalidGroupID},
		{"group of 49 bytes", func() error {
			_, err := c.SetGroupCounters(ctx, strings.Repeat("g", 49), map[string]int64{"k": 1})
			return err
		}, client.ErrInvalidGroupID},
		{"invalid UTF-8 key", func() error { _, err := c.DecreaseGroupCounter(ctx, "g", "k\xff", 1); return err }, client.ErrInvalidParameter},
		{"control character in a key to get", func() error { _, err := c.GetGroupCounters(ctx, "g", "k\x00"); return err }, client.ErrInvalidParameter},
		{"long key to set", func() error {
			_, err := c.SetGroupCounters(ctx, "g", map[string]int64{strings.Repeat("k", 129): 1})
			return err
		}, client.ErrInvalidParameter},
		{"long request ID", func() error {
			_, err := c.IncreaseGroupCounter(ctx, "g", "k", 1, client.WithRequestID(strings.Repeat("r", 65)))
			return err
		}, client.ErrInvalidParameter},
		{"admin delete of a bad group", func() error { return admin.DeleteGroupCounters(ctx, "") }, client.ErrInvalidGroupID},
		{"updates of a bad group", func() error {
			_, err := c.OnGroupCounterUpdated("g.>", func(client.Update) {})
			return err
		}, client.ErrInvalidGroupID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want code %d", err, tt.want.Code)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error of %d bytes", len(err.Error()))
			}
		})
	}
	// A message the client sent would have reached the spy before the
	// spy's own flush came back.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := sent.NextMsg(0); err == nil {
		t.Errorf("the client sent %s %.80q", m.Subject, m.Data)
	}
}
