package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded starts a NATS server with JetStream storing in dir.
func startEmbedded(c config, dir string, log *slog.Logger) (*server.Server, error) {
	host, port, err := c.hostPort()
	if err != nil {
		return nil, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "tally",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		// --sync=always is done by the journal's Syncer, which shares one
		// flush among the appends in flight; the server syncs on its
		// interval as well.
		SyncInterval: c.syncInterval,
		// The account's subject cache keeps 1,024 subjects, and tally
		// publishes on one subject per group (journal), per user (requests)
		// and per request (replies): nearly every lookup misses, and each
		// miss takes the subject index's write lock to insert what will be
		// dropped. Without it a lookup takes the read lock only; each
		// connection keeps its own cache of recent subjects either way.
		NoSublistCache: true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	s.SetLoggerV2(natsLogger{log.With(slog.String("component", "nats-server"))}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s did not start (is the port taken?)", c.listen)
	}
	return s, nil
}

// natsLogger sends nats-server's log to slog; its notices are routine, so
// they go at debug level.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) logf(level slog.Level, format string, v []any) {
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (l natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l natsLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l natsLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l natsLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l natsLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v) }
