package node

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestFlagsOverrideTheNATSConfigFile checks every setting that a flag and
// a --nats-config file can both give: a flag given on purpose wins over
// the file, as on nats-server's command line; a flag left at its default
// yields to the file.
func TestFlagsOverrideTheNATSConfigFile(t *testing.T) {
	tests := []struct {
		flag               string
		file               string          // the file's setting
		set                func(c *Config) // the flag's value
		got                func(o *server.Options) string
		flagWant, fileWant string // what the server runs with
	}{
		{"listen", "listen: 127.0.0.1:4333", func(c *Config) { c.Listen = "127.0.0.1:4444" },
			func(o *server.Options) string { return fmt.Sprintf("%s:%d", o.Host, o.Port) }, "127.0.0.1:4444", "127.0.0.1:4333"},
		{"data", "jetstream { store_dir: /from/file }", func(c *Config) { c.DataDir = "/from/flag" },
			func(o *server.Options) string { return o.StoreDir }, "/from/flag", "/from/file"},
		{"name", "server_name: file", func(c *Config) { c.Name = "flag" },
			func(o *server.Options) string { return o.ServerName }, "flag", "file"},
		{"cluster", "cluster { name: c, listen: 127.0.0.1:6333 }", func(c *Config) { c.Cluster = "127.0.0.1:6444" },
			func(o *server.Options) string { return fmt.Sprintf("%s:%d", o.Cluster.Host, o.Cluster.Port) }, "127.0.0.1:6444", "127.0.0.1:6333"},
		{"cluster-name", "cluster { name: from-file, listen: 127.0.0.1:6333 }", func(c *Config) { c.ClusterName = "from-flag" },
			func(o *server.Options) string { return o.Cluster.Name }, "from-flag", "from-file"},
		{"routes", "cluster { name: c, listen: 127.0.0.1:6333, routes: [nats://127.0.0.1:6001] }", func(c *Config) { c.Routes = []string{"nats://127.0.0.1:6002"} },
			func(o *server.Options) string { return o.Routes[0].Host }, "127.0.0.1:6002", "127.0.0.1:6001"},
		{"sync-interval", "jetstream { sync_interval: 7s }", func(c *Config) { c.SyncInterval = 3 * time.Second },
			func(o *server.Options) string { return o.SyncInterval.String() }, "3s", "7s"},
		{"nats-monitor", "http: 127.0.0.1:8333", func(c *Config) { c.NATSMonitor = "127.0.0.1:8444" },
			func(o *server.Options) string { return fmt.Sprintf("%s:%d", o.HTTPHost, o.HTTPPort) }, "127.0.0.1:8444", "127.0.0.1:8333"},
	}
	covered := map[string]bool{"sync": true} // sync: --sync=always, below
	for _, tt := range tests {
		covered[tt.flag] = true
		for _, explicit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s explicit=%v", tt.flag, explicit), func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.NATSConfig = "test.conf"
				cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
				cfg.Cluster = "127.0.0.1:6555" // a file's cluster needs --cluster
				tt.set(&cfg)
				cfg.Explicit = map[string]bool{tt.flag: explicit, "cluster": tt.flag == "cluster" && explicit}
				opts := &server.Options{}
				if err := opts.ProcessConfigString(tt.file); err != nil {
					t.Fatal(err)
				}
				if err := applySettings(cfg, opts); err != nil {
					t.Fatal(err)
				}
				want := tt.fileWant
				if explicit {
					want = tt.flagWant
				}
				if got := tt.got(opts); got != want {
					t.Errorf("--%s given=%v with the file's %q: the server runs with %s, want %s", tt.flag, explicit, tt.file, got, want)
				}
			})
		}
	}
	for _, s := range fileSettings {
		if !covered[s.flag] {
			t.Errorf("--%s can be set by the file too and is not tested here", s.flag)
		}
	}

	// --sync=always given on purpose syncs every write on a cluster's
	// server whatever the file says.
	cfg := DefaultConfig()
	cfg.NATSConfig, cfg.Cluster, cfg.Sync = "test.conf", "127.0.0.1:6555", SyncAlways
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Explicit = map[string]bool{"sync": true, "cluster": true}
	opts := &server.Options{}
	if err := opts.ProcessConfigString("jetstream { sync_interval: 7s }"); err != nil {
		t.Fatal(err)
	}
	if err := applySettings(cfg, opts); err != nil {
		t.Fatal(err)
	}
	if !opts.SyncAlways {
		t.Errorf("--sync=always with a file that sets an interval: SyncAlways = false")
	}
}
