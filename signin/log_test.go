package signin

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLimitedLog logs at most burst refusals per interval, and says how
// many it left out on the next line it logs.
func TestLimitedLog(t *testing.T) {
	var buf bytes.Buffer
	l := newLimitedLog(slog.New(slog.NewTextHandler(&buf, nil)), 2, time.Second)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := range 5 {
		l.refused(slog.Int("n", i))
	}
	now = now.Add(time.Second)
	l.refused(slog.Int("n", 5))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"n=0", "n=1", "n=5 lines_not_logged=3"} {
		if !strings.Contains(lines[i], "sign-in refused") || !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "level=INFO") {
			t.Errorf("line %d = %q, want an info line with %q", i, lines[i], want)
		}
	}
}
