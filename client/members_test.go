package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

func TestGroupMembers(t *testing.T) {
	room := fresh("m-room")
	nc := journaltest.ConnectURL(t, tallyURL)
	ctx := context.Background()
	admin, err := client.NewAdmin(nc)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := client.New(nc, "alice")
	mallory, _ := client.New(nc, "mallory")

	ups := make(chan client.Update, 16)
	unsubscribe, err := alice.OnGroupCounterUpdated(room, func(u client.Update) { ups <- u })
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	wait := func(want int64) {
		t.Helper()
		select {
		case u := <-ups:
			if u.Value != want {
				t.Errorf("update value %d, want %d", u.Value, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no update %d", want)
		}
	}
	if _, err := mallory.IncreaseGroupCounter(ctx, room, "likes", 1); err != nil {
		t.Fatal(err)
	}
	wait(1) // an open group's update

	var users []string
	for i := range 250 {
		users = append(users, fmt.Sprintf("user-%03d", i))
	}
	for i := 0; i < len(users); i += 100 {
		added, err := admin.AddGroupMembers(ctx, room, users[i:min(i+100, len(users))])
		if err != nil || len(added) != min(100, len(users)-i) {
			t.Fatalf("AddGroupMembers = %d added, %v", len(added), err)
		}
	}
	if added, err := admin.AddGroupMembers(ctx, room, []string{"alice", "user-000"}, client.WithRequestID("add-alice")); err != nil || !slices.Equal(added, []string{"alice"}) {
		t.Fatalf("AddGroupMembers(alice, user-000) = %q, %v", added, err)
	}
	if added, err := admin.AddGroupMembers(ctx, room, []string{"user-000", "alice"}, client.WithRequestID("add-alice")); err != nil || !slices.Equal(added, []string{"alice"}) {
		t.Errorf("retried AddGroupMembers = %q, %v, want its first reply", added, err)
	}
	var all []string
	after := ""
	for {
		page, next, err := admin.ListGroupMembers(ctx, room, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		after = next
	}
	if want := append([]string{"alice"}, users...); !slices.Equal(all, want) {
		t.Errorf("ListGroupMembers: %d members, want %d", len(all), len(want))
	}

	if _, err := mallory.IncreaseGroupCounter(ctx, room, "likes", 1); !errors.Is(err, client.ErrNotMember) {
		t.Errorf("a non-member's increase = %v, want ErrNotMember", err)
	}
	if _, err := mallory.GetGroupSnapshot(ctx, room); !errors.Is(err, client.ErrNotMember) {
		t.Errorf("a non-member's get = %v, want ErrNotMember", err)
	}
	if v, err := alice.IncreaseGroupCounter(ctx, room, "likes", 1); err != nil || v != 2 {
		t.Fatalf("a member's increase = %d, %v", v, err)
	}
	wait(2) // on the members' subject
	s, err := alice.GetGroupSnapshot(ctx, room)
	if err != nil || !s.Members || s.Counters["likes"] != 2 {
		t.Errorf("a member's get = %+v, %v; want Members", s, err)
	}
	if removed, err := admin.RemoveGroupMembers(ctx, room, []string{"alice", "nobody"}); err != nil || !slices.Equal(removed, []string{"alice"}) {
		t.Errorf("RemoveGroupMembers = %q, %v", removed, err)
	}
	if _, err := alice.IncreaseGroupCounter(ctx, room, "likes", 1); !errors.Is(err, client.ErrNotMember) {
		t.Errorf("a removed member's increase = %v, want ErrNotMember", err)
	}
	for name, call := range map[string]func() error{
		"101 users": func() error { _, err := admin.AddGroupMembers(ctx, room, append(users[:100:100], "x")); return err },
		"no users":  func() error { _, err := admin.RemoveGroupMembers(ctx, room, nil); return err },
		"bad user":  func() error { _, err := admin.AddGroupMembers(ctx, room, []string{"a.b"}); return err },
		"limit":     func() error { _, _, err := admin.ListGroupMembers(ctx, room, "", 1001); return err },
	} {
		if err := call(); !errors.Is(err, client.ErrInvalidParameter) {
			t.Errorf("%s: %v, want ErrInvalidParameter", name, err)
		}
	}
}
