package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/tallyhq/tally/actors"
)

// Sync modes of the journal's disk writes.
const (
	// SyncInterval fsyncs the store every Config.SyncInterval.
	SyncInterval = "interval"
	// SyncAlways acknowledges a write only once it is on disk.
	SyncAlways = "always"
)

// Config is what a node is made of. DefaultConfig gives the documented
// defaults; tally-node fills it from its flags.
type Config struct {
	// DataDir is the embedded server's JetStream store, unless NATSConfig
	// names a store_dir of its own.
	DataDir string
	// Listen is the embedded server's client address; port 0 picks a free
	// port. Ignored when NATSConfig is set: the file says where to listen.
	Listen string
	// NATSConfig is a nats-server configuration file for the embedded
	// server (accounts, users, permissions, TLS, limits); the node adds
	// its own account to it.
	NATSConfig string
	// NATSURL, when set, is an existing NATS server or cluster to use
	// instead of embedding one; Credentials authenticate the node there.
	NATSURL     string
	Credentials Credentials

	// Sync is SyncInterval or SyncAlways.
	Sync         string
	SyncInterval time.Duration

	DedupeWindow   time.Duration
	PassivateAfter time.Duration
	ActorIdle      time.Duration
	// JournalKeep is how many of each group's latest events the journal
	// keeps (0: all). A group then appends at most JournalKeep events per
	// DedupeWindow, so that a restart finds every request ID of the window.
	JournalKeep int

	// HTTP, when set, is the address of /healthz and /readyz.
	HTTP string
	// ExitUnreadyAfter stops a node whose embedded journal has taken no
	// write for this long, so that a supervisor restarts it; 0 never does.
	ExitUnreadyAfter time.Duration

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock drives the rate limits and the dedupe window; nil is the
	// system clock. Tests pass a fake one.
	Clock actors.Clock
}

// DefaultConfig returns the node's documented defaults: NATS embedded on
// 127.0.0.1:4222, data in ./data.
func DefaultConfig() Config {
	a := actors.DefaultConfig()
	return Config{
		DataDir:        "./data",
		Listen:         "127.0.0.1:4222",
		Sync:           SyncInterval,
		SyncInterval:   time.Second,
		DedupeWindow:   a.DedupeWindow,
		PassivateAfter: a.PassivateAfter,
		ActorIdle:      a.ActorIdle,
		JournalKeep:    1_000_000,

		ExitUnreadyAfter: 30 * time.Second,
	}
}

// Validate reports every setting that cannot work, naming each by
// tally-node's flag.
func (c Config) Validate() error {
	var errs []error
	if c.Sync != SyncInterval && c.Sync != SyncAlways {
		errs = append(errs, fmt.Errorf("--sync %q: want %s or %s", c.Sync, SyncInterval, SyncAlways))
	}
	if c.SyncInterval <= 0 {
		errs = append(errs, fmt.Errorf("--sync-interval %v: must be positive", c.SyncInterval))
	}
	if c.DedupeWindow < 0 {
		errs = append(errs, fmt.Errorf("--dedupe-window %v: must not be negative", c.DedupeWindow))
	}
	if c.PassivateAfter <= 0 {
		errs = append(errs, fmt.Errorf("--passivate-after %v: must be positive", c.PassivateAfter))
	}
	if c.ActorIdle <= 0 {
		errs = append(errs, fmt.Errorf("--actor-idle %v: must be positive", c.ActorIdle))
	}
	if c.JournalKeep < 0 || c.JournalKeep == 1 {
		errs = append(errs, fmt.Errorf("--journal-keep %d: want 0 (every event) or at least 2", c.JournalKeep))
	}
	if c.ExitUnreadyAfter < 0 {
		errs = append(errs, fmt.Errorf("--exit-unready-after %v: must not be negative", c.ExitUnreadyAfter))
	}
	switch {
	case c.NATSURL != "" && c.NATSConfig != "":
		errs = append(errs, errors.New("--nats-url and --nats-config exclude each other: the file configures the embedded server"))
	case c.NATSURL != "":
		errs = append(errs, c.Credentials.validate())
	case c.NATSConfig == "":
		if _, _, err := c.hostPort(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NATSURL == "" && !c.Credentials.empty() {
		errs = append(errs, errors.New("NATS credentials are for --nats-url; the embedded server's users are in its --nats-config file"))
	}
	return errors.Join(errs...)
}

// hostPort splits Listen; port 0 means any free port.
func (c Config) hostPort() (string, int, error) {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", 0, fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("--listen %q: port must be 0..65535", c.Listen)
	}
	return host, p, nil
}
