package journaltest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaderOf returns the name of the server that leads stream, read from the
// stream's info through its leader ("" while it has none).
func LeaderOf(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("stream %s info: %w", stream, err)
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

// StepDown asks stream's leader to hand its leadership to server
// preferred, and waits until preferred leads.
func StepDown(tb testing.TB, nc *nats.Conn, js jetstream.JetStream, stream, preferred string) {
	tb.Helper()
	req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	if err != nil {
		tb.Fatal(err)
	}
	CheckFor(tb, 20*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		leader, err := LeaderOf(ctx, js, stream)
		if err != nil || leader == preferred {
			return err
		}
		reply, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
		if err != nil {
			return fmt.Errorf("step-down of %s: %w", stream, err)
		}
		return fmt.Errorf("%s leads %s after a step-down (%s)", leader, stream, reply.Data)
	})
}
