package node

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tallyhq/tally/journal"
)

// setting is one of the embedded server's options that both a flag of
// tally-node and a nats-server configuration file can give.
type setting struct {
	flag string
	// inFile reports whether the file gave it, and what.
	inFile func(o *server.Options) (string, bool)
	// apply sets it from cfg.
	apply func(cfg Config, o *server.Options) error
	// value is cfg's, for the log.
	value func(cfg Config) string
}

// fileSettings are the settings that a flag and the configuration file
// can both give. The file sets nothing else that a flag does: the largest
// payload, pending bytes, pings and lame duck mode have no flags, and
// --http is the node's own listener.
var fileSettings = []setting{
	{
		flag: "listen",
		inFile: func(o *server.Options) (string, bool) {
			return fmt.Sprintf("%s:%d", o.Host, o.Port), o.Host != "" || o.Port != 0
		},
		apply: func(cfg Config, o *server.Options) error {
			host, port, err := cfg.hostPort()
			if err != nil {
				return err
			}
			if port == 0 {
				port = server.RANDOM_PORT
			}
			o.Host, o.Port = host, port
			return nil
		},
		value: func(cfg Config) string { return cfg.Listen },
	},
	{
		flag:   "data",
		inFile: func(o *server.Options) (string, bool) { return o.StoreDir, o.StoreDir != "" },
		apply:  func(cfg Config, o *server.Options) error { o.StoreDir = cfg.DataDir; return nil },
		value:  func(cfg Config) string { return cfg.DataDir },
	},
	{
		flag:   "name",
		inFile: func(o *server.Options) (string, bool) { return o.ServerName, o.ServerName != "" },
		apply:  func(cfg Config, o *server.Options) error { o.ServerName = cfg.Name; return nil },
		value:  func(cfg Config) string { return cfg.Name },
	},
	{
		flag: "cluster",
		inFile: func(o *server.Options) (string, bool) {
			return fmt.Sprintf("%s:%d", o.Cluster.Host, o.Cluster.Port), o.Cluster.Port != 0
		},
		apply: func(cfg Config, o *server.Options) error {
			if cfg.Cluster == "" {
				return nil
			}
			host, port, err := splitHostPort("--cluster", cfg.Cluster)
			o.Cluster.Host, o.Cluster.Port = host, port
			return err
		},
		value: func(cfg Config) string { return cfg.Cluster },
	},
	{
		flag:   "cluster-name",
		inFile: func(o *server.Options) (string, bool) { return o.Cluster.Name, o.Cluster.Name != "" },
		apply: func(cfg Config, o *server.Options) error {
			if cfg.Cluster != "" {
				o.Cluster.Name = cfg.ClusterName
			}
			return nil
		},
		value: func(cfg Config) string { return cfg.ClusterName },
	},
	{
		flag: "routes",
		inFile: func(o *server.Options) (string, bool) {
			var urls []string
			for _, u := range o.Routes {
				urls = append(urls, u.Redacted())
			}
			return strings.Join(urls, ","), len(o.Routes) > 0
		},
		apply: func(cfg Config, o *server.Options) error {
			if cfg.Cluster == "" {
				return nil
			}
			routes, err := routeURLs(cfg.Routes)
			o.Routes = routes
			return err
		},
		value: func(cfg Config) string { return strings.Join(cfg.Routes, ",") },
	},
	{
		// In a cluster an append is acknowledged once a majority of the
		// journal's servers stored it: with --sync=always each of them
		// syncs it to disk first. A node alone leaves the sync of each
		// write to the journal's Syncer, which shares one flush among the
		// appends in flight, unless the Syncer cannot work here (no
		// syncfs(2)).
		flag:   "sync",
		inFile: func(o *server.Options) (string, bool) { return SyncAlways, o.SyncAlways },
		apply: func(cfg Config, o *server.Options) error {
			o.SyncAlways = cfg.Sync == SyncAlways && (cfg.Cluster != "" || !journal.HasSyncer)
			return nil
		},
		value: func(cfg Config) string { return cfg.Sync },
	},
	{
		flag: "sync-interval",
		inFile: func(o *server.Options) (string, bool) {
			return o.SyncInterval.String(), o.SyncInterval != 0 && !o.SyncAlways
		},
		apply: func(cfg Config, o *server.Options) error { o.SyncInterval = cfg.SyncInterval; return nil },
		value: func(cfg Config) string { return cfg.SyncInterval.String() },
	},
	{
		flag: "nats-monitor",
		inFile: func(o *server.Options) (string, bool) {
			return fmt.Sprintf("%s:%d", o.HTTPHost, o.HTTPPort), o.HTTPPort != 0
		},
		apply: func(cfg Config, o *server.Options) error {
			if cfg.NATSMonitor == "" {
				return nil
			}
			host, port, err := splitHostPort("--nats-monitor", cfg.NATSMonitor)
			if port == 0 {
				port = server.RANDOM_PORT
			}
			o.HTTPHost, o.HTTPPort = host, port
			return err
		},
		value: func(cfg Config) string { return cfg.NATSMonitor },
	},
}

// applySettings sets the embedded server's options from cfg as
// nats-server merges its command line with its configuration file: a
// setting given on purpose (cfg.Explicit) overrides the file's; one left
// at its default yields to the file, and is used only where the file says
// nothing. It logs which source won wherever the file gives a setting.
func applySettings(cfg Config, opts *server.Options) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// Whether the node runs as a member of a cluster follows from
	// --cluster: a cluster the file alone sets would run a clustered
	// server under a node that takes itself to be alone (no leases, one
	// replica).
	if cfg.NATSConfig != "" && opts.Cluster.Port != 0 && cfg.Cluster == "" {
		return fmt.Errorf("NATS configuration %s sets a cluster: give the node --cluster (and --routes) for it, so that it joins as a member of a tally cluster", cfg.NATSConfig)
	}
	for _, s := range fileSettings {
		if cfg.NATSConfig != "" {
			file, given := s.inFile(opts)
			switch {
			case given && cfg.Explicit[s.flag]:
				log.Info("the command line overrides the NATS configuration file", slog.String("flag", "--"+s.flag),
					slog.String("value", s.value(cfg)), slog.String("file", file))
			case given:
				log.Info("the NATS configuration file sets what a flag left at its default would", slog.String("flag", "--"+s.flag),
					slog.String("value", file))
				continue
			}
		}
		if err := s.apply(cfg, opts); err != nil {
			return err
		}
	}
	return nil
}
