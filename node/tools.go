package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
)

// ErrClusteredData means the journal tools were pointed at the data
// directory of a cluster's node: its embedded server cannot run alone,
// and the journal's stream belongs to the cluster's JetStream.
var ErrClusteredData = errors.New("the journal of an embedded cluster is read through the running cluster, not a node's data directory: " +
	"give --nats-url of one of its servers and the credentials of a user of account " + ServiceAccount +
	" (declare one in the nodes' --nats-config: accounts { " + ServiceAccount + " { users: [...] } })")

// ErrNoJournalAccount means the tools' connection (--nats-url) entered an
// account without JetStream, where no journal can be.
var ErrNoJournalAccount = errors.New("the connection's account has no JetStream: an embedded node's journal lives in its account " + ServiceAccount +
	", which only a user declared there reaches; declare one in the nodes' --nats-config (accounts { " + ServiceAccount +
	" { users: [{user: tally-admin, password: ...}] } }) and give --nats-user tally-admin with $TALLY_NATS_PASSWORD, or --nats-creds; " +
	"on a NATS server of your own, give the credentials of the node's account")

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
	n, js, err := openTools(ctx, cfg, create)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	jcfg := journal.DefaultConfig()
	jcfg.KeepPerGroup = cfg.JournalKeep
	if create {
		if jcfg.Replicas, err = n.replicas(js); err != nil {
			return nil, nil, err
		}
		if jcfg.Shards, err = n.shards(js); err != nil {
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

// OpenJetStream is OpenJournal for a tool that works on the journal's
// streams themselves, whatever their state (a reshard): it returns the
// JetStream context of the journal's account. close stops what it
// started.
func OpenJetStream(ctx context.Context, cfg Config) (js jetstream.JetStream, close func(), err error) {
	n, js, err := openTools(ctx, cfg, false)
	if err != nil {
		return nil, nil, err
	}
	return js, n.close, nil
}

// openTools starts what the tools read the journal through, the embedded
// server or a connection to cfg.NATSURL, and connects to the journal's
// account. create lets a data directory be made.
func openTools(ctx context.Context, cfg Config, create bool) (_ *Node, js jetstream.JetStream, err error) {
	if cfg.Cluster != "" || (cfg.NATSURL == "" && clusteredStore(cfg.DataDir)) {
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
	if cfg.NATSURL == "" {
		if _, err := os.Stat(cfg.DataDir); err != nil && !create {
			return nil, nil, fmt.Errorf("data directory: %w", err)
		}
		n.tool = true
		if err := n.embed(ctx, journal.DefaultConfig().Stream, gateway.DefaultConfig().Prefix); err != nil {
			return nil, nil, err
		}
	} else {
		n.url = cfg.NATSURL
	}
	if js, err = n.jetStream(); err != nil {
		return nil, nil, err
	}
	if _, err := js.AccountInfo(ctx); errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return nil, nil, fmt.Errorf("%w (%w)", ErrNoJournalAccount, err)
	}
	return n, js, nil
}

// clusteredStore reports whether dir is the store of a clustered
// JetStream server: it holds the cluster's meta group.
func clusteredStore(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, server.JetStreamStoreDir, server.DEFAULT_SYSTEM_ACCOUNT, "_js_", "_meta_"))
	return err == nil
}
