package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
)

// shutdownTimeout bounds how long a stopping node waits for the requests it
// took.
const shutdownTimeout = 30 * time.Second

// run starts a node, prints "tally: serving on <url>" to stdout once it
// answers requests, and serves until ctx ends.
func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
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

	var ns *server.Server
	jcfg := journal.DefaultConfig()
	url := cfg.natsURL
	connect := func(name string) (*nats.Conn, error) {
		opts := []nats.Option{nats.Name("tally-" + name), nats.MaxReconnects(-1)}
		if ns != nil {
			opts = append(opts, nats.InProcessServer(ns))
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS %s: %w", url, err)
		}
		return nc, nil
	}
	if url == "" {
		dir, err := checkDataDir(cfg.data)
		if err != nil {
			return err
		}
		if ns, err = startEmbedded(cfg, dir, log); err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		url = ns.ClientURL()
		if cfg.sync == "always" {
			if jcfg.Syncer, err = journal.NewSyncer(dir); err != nil {
				return err
			}
			defer jcfg.Syncer.Close()
		}
		log.Info("embedded NATS server started", slog.String("url", url), slog.String("data", dir), slog.String("sync", cfg.sync))
	} else {
		log.Info("using NATS server", slog.String("url", url))
	}

	jc, err := connect("journal")
	if err != nil {
		return err
	}
	defer jc.Close()
	js, err := jetstream.New(jc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	j, err := journal.Open(jctx, js, jcfg)
	cancel()
	if err != nil {
		return err
	}

	pc, err := connect("updates")
	if err != nil {
		return err
	}
	defer pc.Close()
	acfg := actors.DefaultConfig()
	acfg.Journal = j
	pub := gateway.NewPublisher(pc, gateway.DefaultConfig().Prefix, log)
	if ns != nil {
		pub.Interest = ns.GlobalAccount().SubscriptionInterest
	}
	acfg.Publisher = pub
	acfg.Logger = log
	acfg.DedupeWindow = cfg.dedupeWindow
	acfg.PassivateAfter = cfg.passivateAfter
	acfg.ActorIdle = cfg.actorIdle
	node, err := actors.Start(acfg)
	if err != nil {
		return err
	}
	defer node.Stop()

	gc, err := connect("gateway")
	if err != nil {
		return err
	}
	defer gc.Close()
	gcfg := gateway.DefaultConfig()
	gcfg.Logger = log
	gw, err := gateway.Start(gc, node, gcfg)
	if err != nil {
		return err
	}
	log.Info("tally node serving", slog.String("journal", j.String()))
	fmt.Fprintf(stdout, "tally: serving on %s\n", url)

	<-ctx.Done()
	log.Info("stopping: no new requests; finishing those taken")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = gw.Stop(sctx)
	// Updates of the last changes are still in the publisher's buffer.
	if ferr := pc.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("flush updates: %w", ferr))
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
}
