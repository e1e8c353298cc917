package gateway_test

import (
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal/journaltest"
)

// TestPublisherWantsSubscribers: with the embedded server's interest, a
// group's updates are wanted exactly while someone subscribes to them.
func TestPublisherWantsSubscribers(t *testing.T) {
	s := journaltest.StartServer(t)
	pub := gateway.NewPublisher(journaltest.Connect(t, s), "tally.v1", slog.New(slog.DiscardHandler))
	pub.Interest = s.GlobalAccount().SubscriptionInterest
	other := journaltest.Connect(t, s)
	subscribe := func(subject string) *nats.Subscription {
		t.Helper()
		sub, err := other.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Flush(); err != nil { // the server has the subscription
			t.Fatal(err)
		}
		return sub
	}
	unsubscribe := func(sub *nats.Subscription) {
		t.Helper()
		if err := sub.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
		if err := other.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if pub.Wants(pub.Subject("g", false)) {
		t.Error("updates of g wanted with no subscriber")
	}
	all := subscribe("tally.v1.updates.>")
	if !pub.Wants(pub.Subject("g", false)) || !pub.Wants(pub.Subject("h", false)) {
		t.Error("updates not wanted with a subscriber to tally.v1.updates.>")
	}
	unsubscribe(all)
	one := subscribe("tally.v1.updates.g")
	if !pub.Wants(pub.Subject("g", false)) || pub.Wants(pub.Subject("h", false)) {
		t.Errorf("with a subscriber to g: wants g %v, h %v; want true, false", pub.Wants(pub.Subject("g", false)), pub.Wants(pub.Subject("h", false)))
	}
	unsubscribe(one)
	if pub.Wants(pub.Subject("g", false)) {
		t.Error("updates of g wanted after the last subscriber left")
	}
	if ext := gateway.NewPublisher(other, "tally.v1", slog.New(slog.DiscardHandler)); !ext.Wants(ext.Subject("g", false)) {
		t.Error("a publisher without Interest (external server) must publish every update")
	}
}
