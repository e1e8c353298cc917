package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
)

// TestListenOverridesNATSConfig starts a node on a configuration file
// that listens on one address, as nats-server merges its command line with
// its file: given --listen or $TALLY_LISTEN, the node serves on that
// address and logs that the command line won; without either, on the
// file's, and logs that the file's address stands.
func TestListenOverridesNATSConfig(t *testing.T) {
	fileAddr, flagAddr := freeAddr(t), freeAddr(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: "+fileAddr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
		log  string
	}{
		{"flag", nil, []string{"--listen", flagAddr}, flagAddr, "the command line overrides the NATS configuration file"},
		{"environment", []string{"TALLY_LISTEN=" + flagAddr}, nil, flagAddr, "the command line overrides the NATS configuration file"},
		{"default", nil, nil, fileAddr, "the NATS configuration file sets what a flag left at its default would"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := launchEnv(t, append([]string{"TALLY_LISTEN="}, tt.env...), append([]string{"--data", t.TempDir(), "--nats-config", conf}, tt.args...)...)
			p.serving(t)
			if got := strings.TrimPrefix(p.url, "nats://"); got != tt.want {
				t.Errorf("serving on %s, want %s", got, tt.want)
			}
			nc, err := nats.Connect("nats://" + tt.want)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			a, err := client.NewAdmin(nc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.GetGroupCounters(context.Background(), "g"); err != nil {
				t.Errorf("get through %s: %v", tt.want, err)
			}
			var logged bool
			for _, line := range strings.Split(p.stderr.String(), "\n") {
				logged = logged || strings.Contains(line, tt.log) && strings.Contains(line, "flag=--listen")
			}
			if !logged {
				t.Errorf("the node did not log %q for --listen:\n%s", tt.log, p.stderr)
			}
		})
	}
}
