package signin

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// limitedLog logs refused sign-ins, and the connections that could not be
// closed, at most burst lines per interval: a flood of bad sign-ins cannot
// flood the log. The first line after a quiet spell says how many were
// left out.
type limitedLog struct {
	logger   *slog.Logger
	burst    int
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	start   time.Time // of the current interval
	logged  int       // in the current interval
	dropped int       // since the last line logged
}

func newLimitedLog(log *slog.Logger, burst int, interval time.Duration) *limitedLog {
	return &limitedLog{logger: log, burst: burst, interval: interval, now: time.Now}
}

// refused logs a refused sign-in at info level.
func (l *limitedLog) refused(attrs ...any) { l.log(slog.LevelInfo, "sign-in refused", attrs...) }

// log logs msg at level, unless the lines of this interval are spent.
func (l *limitedLog) log(level slog.Level, msg string, attrs ...any) {
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
		attrs = append(attrs, slog.Int("lines_not_logged", dropped))
	}
	l.logger.Log(context.Background(), level, msg, attrs...)
}
