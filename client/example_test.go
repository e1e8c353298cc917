package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
)

// The README's example: counters, below, run against a node.
func Example_readme() {
	nc, err := nats.Connect(tallyURL) // nats.DefaultURL for `make run`
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	if err := counters(context.Background(), nc); err != nil {
		log.Fatal(err)
	}
	// Output:
	// key1: 2
	// map[key1:2] map[key1:2 key2:0]
}

// counters sets, increases and gets group1's counters as user alice, and
// deletes one of them as a trusted back end.
func counters(ctx context.Context, nc *nats.Conn) error {
	alice, err := client.New(nc, "alice")
	if err != nil {
		return err
	}
	unsubscribe, err := alice.OnGroupCounterUpdated("group1", func(u client.Update) {
		log.Printf("update: %+v", u) // key, value, seq; Deleted for a delete
	})
	if err != nil {
		return err
	}
	defer unsubscribe()

	if _, err := alice.SetGroupCounters(ctx, "group1", map[string]int64{"key1": 0, "key2": 0}); err != nil {
		return err
	}
	v, err := alice.IncreaseGroupCounter(ctx, "group1", "key1", 2)
	if errors.Is(err, client.ErrRateLimited) {
		return fmt.Errorf("slow down: %w", err) // 2996: 20 writes per 5 s
	}
	if err != nil {
		return err
	}
	fmt.Println("key1:", v)
	some, err := alice.GetGroupCounters(ctx, "group1", "key1") // listed keys
	if err != nil {
		return err
	}
	all, err := alice.GetGroupCounters(ctx, "group1") // every key
	if err != nil {
		return err
	}
	fmt.Println(some, all)

	admin, err := client.NewAdmin(nc) // admin subjects: no rate limit, plus delete
	if err != nil {
		return err
	}
	return admin.DeleteGroupCounters(ctx, "group1", "key2")
}

// The four calls of Tencent's group counter API, as user alice.
func Example() {
	nc, err := nats.Connect(tallyURL) // e.g. nats.DefaultURL for `make run`
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	alice, err := client.New(nc, "alice")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Set the values of counters key1 and key2 to 0.
	if _, err := alice.SetGroupCounters(ctx, "group1", map[string]int64{"key1": 0, "key2": 0}); err != nil {
		log.Fatal(err)
	}
	v, err := alice.IncreaseGroupCounter(ctx, "group1", "key1", 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("key1 after increase:", v)
	v, err = alice.DecreaseGroupCounter(ctx, "group1", "key1", 2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("key1 after decrease:", v)
	all, err := alice.GetGroupCounters(ctx, "group1")
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range slices.Sorted(maps.Keys(all)) {
		fmt.Printf("%s=%d\n", k, all[k])
	}
	// Output:
	// key1 after increase: 10
	// key1 after decrease: 8
	// key1=8
	// key2=0
}

func ExampleClient_OnGroupCounterUpdated() {
	nc, err := nats.Connect(tallyURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	bob, err := client.New(nc, "bob")
	if err != nil {
		log.Fatal(err)
	}
	updates := make(chan client.Update, 16)
	unsubscribe, err := bob.OnGroupCounterUpdated("live-room", func(u client.Update) { updates <- u })
	if err != nil {
		log.Fatal(err)
	}
	defer unsubscribe()

	if _, err := bob.IncreaseGroupCounter(context.Background(), "live-room", "likes", 1); err != nil {
		log.Fatal(err)
	}
	u := <-updates
	fmt.Printf("%s %s=%d (seq %d)\n", u.GroupID, u.Key, u.Value, u.Seq)
	// Output:
	// live-room likes=1 (seq 1)
}

func ExampleWithRequestID() {
	nc, err := nats.Connect(tallyURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	carol, err := client.New(nc, "carol")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	// The same request ID twice: the second call changes nothing and gets
	// the first call's reply.
	for range 2 {
		v, err := carol.IncreaseGroupCounter(ctx, "g-idem", "tips", 5, client.WithRequestID("tip-7f3a"))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("tips:", v)
	}
	// Output:
	// tips: 5
	// tips: 5
}

func ExampleErrRateLimited() {
	nc, err := nats.Connect(tallyURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	dave, err := client.New(nc, "dave")
	if err != nil {
		log.Fatal(err)
	}
	for i := 1; ; i++ {
		_, err := dave.IncreaseGroupCounter(context.Background(), "g-busy", "clicks", 1)
		if errors.Is(err, client.ErrRateLimited) {
			fmt.Printf("call %d refused: %d\n", i, err.(*client.Error).Code)
			return
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// call 21 refused: 2996
}

func ExampleAdmin_DeleteGroupCounters() {
	nc, err := nats.Connect(tallyURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	admin, err := client.NewAdmin(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.SetGroupCounters(ctx, "g-admin", map[string]int64{"a": 1, "b": 2}); err != nil {
		log.Fatal(err)
	}
	if err := admin.DeleteGroupCounters(ctx, "g-admin", "a"); err != nil {
		log.Fatal(err)
	}
	left, err := admin.GetGroupCounters(ctx, "g-admin")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(left)
	// Output:
	// map[b:2]
}

// A members-only group: a back end adds the room's members, who may then
// call it; anyone else gets ErrNotMember.
func ExampleAdmin_AddGroupMembers() {
	nc, err := nats.Connect(tallyURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	admin, err := client.NewAdmin(nc)
	if err != nil {
		log.Fatal(err)
	}
	added, err := admin.AddGroupMembers(ctx, "vip-room", []string{"carol", "alice"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added:", added)
	members, next, err := admin.ListGroupMembers(ctx, "vip-room", "", 100)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("members: %v, next page after %q\n", members, next)

	alice, _ := client.New(nc, "alice")
	if _, err := alice.IncreaseGroupCounter(ctx, "vip-room", "likes", 1); err != nil {
		log.Fatal(err)
	}
	s, _ := alice.GetGroupSnapshot(ctx, "vip-room")
	fmt.Println("alice sees", s.Counters, "members-only:", s.Members)
	mallory, _ := client.New(nc, "mallory")
	_, err = mallory.IncreaseGroupCounter(ctx, "vip-room", "likes", 1)
	fmt.Println("mallory:", errors.Is(err, client.ErrNotMember))
	// Output:
	// added: [alice carol]
	// members: [alice carol], next page after ""
	// alice sees map[likes:1] members-only: true
	// mallory: true
}
