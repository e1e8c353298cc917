package signin

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// limitedLog logs refused sign-ins at info level, at most burst lines per
// interval: a flood of bad sign-ins cannot flood the log. The first line
// after a quiet spell says how many were left out.
type limitedLog struct {
	log      *slog.Logger
	burst    int
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	start   time.Time // of the current interval
	logged  int       // in the current interval
	dropped int       // since the last line logged
}

func newLimitedLog(log *slog.Logger, burst int, interval time.Duration) *limitedLog {
	return &limitedLog{log: log, burst: burst, interval: interval, now: time.Now}
}

func (l *limitedLog) refused(attrs ...any) {
	now := l.now()
	l.mu.Lock()
	if now.Sub(l.start) >= l.interval {
		l.start, l.logged = now, 0
	}
	if l.logged >= l.burst {
		l.dropped++
		l.mu.Unlock()
		return
	}
	l.logged++
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		attrs = append(attrs, slog.Int("refusals_not_logged", dropped))
	}
	l.log.Log(context.Background(), slog.LevelInfo, "sign-in refused", attrs...)
}
