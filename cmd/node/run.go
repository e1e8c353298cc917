package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tallyhq/tally/node"
)

// shutdownTimeout bounds how long a stopping node waits for the requests it
// took.
const shutdownTimeout = 30 * time.Second

// run starts a node, prints "tally: serving on <url>" to stdout once it
// answers requests, and serves until ctx ends; with "journal" first, it
// runs a journal tool instead, with "usersig" it mints user signatures.
func run(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "journal" {
		return runJournal(ctx, args[1:], getenv, stdin, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "usersig" {
		return runUsersig(args[1:], stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if cfg.pprof != "" {
		stopProfiling, err := serveProfiles(cfg.pprof, log)
		if err != nil {
			return err
		}
		defer stopProfiling()
	}
	cfg.node.Logger = log
	n, err := node.Start(ctx, cfg.node)
	if err != nil && ctx.Err() != nil {
		// SIGINT or SIGTERM during start-up: a stop asked for, not a failure.
		log.Info("stopped during start-up", slog.Any("reason", err))
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tally: serving on %s\n", n.ClientURL())
	select {
	case <-ctx.Done():
	case <-n.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return errors.Join(n.Err(), n.Stop(sctx))
}
