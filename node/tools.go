package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
)

// ErrClusteredData means the journal tools were pointed at the data
// directory of a cluster's node: its embedded server cannot run alone.
var ErrClusteredData = errors.New("the journal tools read a cluster's journal through --nats-url (a cluster node's data directory cannot be opened alone)")

// OpenJournal opens the journal of a node's configuration for the
// journal tools, without serving anything: with NATS embedded, it starts
// the embedded server on the data directory without a client listener,
// taking the directory's lock (so the node must be stopped); with
// cfg.NATSURL, it connects with the node's credentials to the account that
// holds the journal. create makes the journal when there is none (for an
// import); otherwise a missing journal is journal.ErrNoJournal and an
// existing one is opened as it is, its settings untouched. close stops
// what OpenJournal started.
func OpenJournal(ctx context.Context, cfg Config, create bool) (j *journal.Journal, close func(), err error) {
	if cfg.Cluster != "" {
		return nil, nil, ErrClusteredData
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, health: health{failed: make(chan struct{})}}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	jcfg := journal.DefaultConfig()
	jcfg.KeepPerGroup = cfg.JournalKeep
	if cfg.NATSURL == "" {
		if _, err := os.Stat(cfg.DataDir); err != nil && !create {
			return nil, nil, fmt.Errorf("data directory: %w", err)
		}
		n.tool = true
		if err := n.embed(ctx, jcfg.Stream, gateway.DefaultConfig().Prefix); err != nil {
			return nil, nil, err
		}
	} else {
		n.url = cfg.NATSURL
	}
	js, err := n.jetStream()
	if err != nil {
		return nil, nil, err
	}
	if create {
		if jcfg.Replicas, err = n.replicas(js); err != nil {
			return nil, nil, err
		}
		j, err = journal.Open(ctx, js, jcfg)
	} else {
		j, err = journal.Bind(ctx, js, jcfg)
	}
	if err != nil {
		return nil, nil, err
	}
	return j, func() { j.Close(); n.close() }, nil
}
