package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// config is the node's settings: flags, with environment variables as
// their defaults.
type config struct {
	data           string
	listen         string
	natsURL        string
	sync           string
	syncInterval   time.Duration
	dedupeWindow   time.Duration
	passivateAfter time.Duration
	actorIdle      time.Duration
	logLevel       slog.Level
	pprof          string
}

// env is how run reads the environment (os.Getenv in main).
type env func(string) string

func parseConfig(args []string, getenv env, usage io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("tally-node", flag.ContinueOnError)
	fs.SetOutput(usage)
	var errs []error
	str := func(name, envName, def, help string) *string {
		if v := getenv(envName); v != "" {
			def = v
		}
		return fs.String(name, def, help+" ($"+envName+")")
	}
	dur := func(p *time.Duration, name, envName string, def time.Duration, help string) {
		if v := getenv(envName); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("$%s=%q: %w", envName, v, err))
			}
			def = d
		}
		fs.DurationVar(p, name, def, help+" ($"+envName+")")
	}
	data := str("data", "TALLY_DATA", "./data", "JetStream store directory of the embedded NATS server")
	listen := str("listen", "TALLY_LISTEN", "127.0.0.1:4222", "client address of the embedded NATS server (port 0: any free port)")
	natsURL := str("nats-url", "TALLY_NATS_URL", "", "use this NATS server or cluster instead of embedding one")
	sync := str("sync", "TALLY_SYNC", "interval", "JetStream fsync: interval (every --sync-interval) or always (every write)")
	logLevel := str("log-level", "TALLY_LOG_LEVEL", "info", "debug, info, warn or error")
	pprof := str("pprof", "TALLY_PPROF", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060")
	dur(&c.syncInterval, "sync-interval", "TALLY_SYNC_INTERVAL", time.Second, "how often --sync=interval fsyncs")
	dur(&c.dedupeWindow, "dedupe-window", "TALLY_DEDUPE_WINDOW", 2*time.Minute, "how long a write's requestID is remembered")
	dur(&c.passivateAfter, "passivate-after", "TALLY_PASSIVATE_AFTER", 5*time.Minute, "keep an idle group in memory this long")
	dur(&c.actorIdle, "actor-idle", "TALLY_ACTOR_IDLE", 500*time.Millisecond, "stop a group's actor after this long without calls, keeping its state in a compact snapshot")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	c.data, c.listen, c.natsURL, c.sync, c.pprof = *data, *listen, *natsURL, *sync, *pprof
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel))
	}
	errs = append(errs, c.validate())
	return c, errors.Join(errs...)
}

func (c config) validate() error {
	var errs []error
	if c.sync != "interval" && c.sync != "always" {
		errs = append(errs, fmt.Errorf("--sync %q: want interval or always", c.sync))
	}
	if c.syncInterval <= 0 {
		errs = append(errs, fmt.Errorf("--sync-interval %v: must be positive", c.syncInterval))
	}
	if c.dedupeWindow < 0 {
		errs = append(errs, fmt.Errorf("--dedupe-window %v: must not be negative", c.dedupeWindow))
	}
	if c.passivateAfter <= 0 {
		errs = append(errs, fmt.Errorf("--passivate-after %v: must be positive", c.passivateAfter))
	}
	if c.actorIdle <= 0 {
		errs = append(errs, fmt.Errorf("--actor-idle %v: must be positive", c.actorIdle))
	}
	if c.natsURL == "" {
		if _, _, err := c.hostPort(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostPort splits --listen; port 0 means any free port.
func (c config) hostPort() (string, int, error) {
	host, port, err := net.SplitHostPort(c.listen)
	if err != nil {
		return "", 0, fmt.Errorf("--listen %q: %w", c.listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("--listen %q: port must be 0..65535", c.listen)
	}
	return host, p, nil
}

// checkDataDir creates the data directory if needed and makes sure the node
// can write to it, so a bad --data fails with a clear message.
func checkDataDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--data %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return "", fmt.Errorf("--data %q: cannot create the directory: %w", dir, err)
	}
	f, err := os.CreateTemp(abs, ".tally-write-check-*")
	if err != nil {
		return "", fmt.Errorf("--data %q: cannot write there: %w", dir, err)
	}
	name := f.Name()
	return abs, errors.Join(f.Close(), os.Remove(name))
}
