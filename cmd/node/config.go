package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally/node"
)

// config is the node's settings: flags, with environment variables as
// their defaults. Both give a setting on purpose (node.Config.Explicit),
// which then overrides what --nats-config's file says of it.
type config struct {
	node     node.Config
	logLevel slog.Level
	pprof    string
}

// env is how run reads the environment (os.Getenv in main).
type env func(string) string

// envInt reads an integer default from the environment.
func envInt(getenv env, name string, def int, errs *[]error) int {
	v := getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("$%s=%q: %w", name, v, err))
		return def
	}
	return n
}

// envBool reads a boolean default from the environment.
func envBool(getenv env, name string, errs *[]error) bool {
	v := getenv(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("$%s=%q: %w", name, v, err))
	}
	return b
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// parseConfig parses the node's flags; it takes no other argument.
func parseConfig(args []string, getenv env, usage io.Writer) (config, error) {
	c, rest, err := parseFlags("tally-node", args, getenv, usage, nil)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected arguments %q", rest)
	}
	return c, err
}

// parseFlags parses the node's flags, and those extra adds, anywhere
// among the other arguments, which it returns in order.
func parseFlags(name string, args []string, getenv env, usage io.Writer, extra func(*flag.FlagSet)) (config, []string, error) {
	c := config{node: node.DefaultConfig()}
	n := &c.node
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usage)
	if extra != nil {
		extra(fs)
	}
	var errs []error
	// Each flag's environment variable: one that is set gives the flag on
	// purpose, as the command line does.
	envOf := map[string]string{"replicas": "TALLY_REPLICAS", "journal-keep": "TALLY_JOURNAL_KEEP", "journal-shards": "TALLY_JOURNAL_SHARDS"}
	str := func(p *string, name, envName, help string) {
		envOf[name] = envName
		def := *p
		if v := getenv(envName); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, help+" ($"+envName+")")
	}
	dur := func(p *time.Duration, name, envName, help string) {
		envOf[name] = envName
		def := *p
		if v := getenv(envName); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("$%s=%q: %w", envName, v, err))
			}
			def = d
		}
		fs.DurationVar(p, name, def, help+" ($"+envName+")")
	}
	// secret is str for passwords and tokens: the environment's value is not
	// shown as the flag's default in --help.
	secret := func(p *string, name, envName, help string) {
		envOf[name] = envName
		fs.StringVar(p, name, "", help+" ($"+envName+")")
		*p = getenv(envName)
	}
	logLevel := "info"
	str(&n.DataDir, "data", "TALLY_DATA", "JetStream store directory of the embedded NATS server")
	str(&n.Listen, "listen", "TALLY_LISTEN", "client address of the embedded NATS server (port 0: any free port)")
	str(&n.NATSConfig, "nats-config", "TALLY_NATS_CONFIG", "nats-server configuration file for the embedded server (accounts, users, TLS, limits); tally adds its own account")
	str(&n.NATSURL, "nats-url", "TALLY_NATS_URL", "use this NATS server or cluster instead of embedding one")
	// creds declares the flags of one NATS user's credentials, --<flag>-*
	// and $<env>_*: a credentials file, an nkey seed, a user and its
	// password, or a token.
	creds := func(cr *node.Credentials, flag, env, scope, whose string) {
		str(&cr.CredsFile, flag+"-creds", env+"_CREDS", scope+": credentials file (JWT and nkey seed) of "+whose)
		str(&cr.NkeySeedFile, flag+"-nkey", env+"_NKEY", scope+": file holding the nkey seed of "+whose)
		str(&cr.User, flag+"-user", env+"_USER", scope+": user name of "+whose)
		secret(&cr.Password, flag+"-password", env+"_PASSWORD", "with --"+flag+"-user: its password (prefer the environment variable: flags show in ps)")
		secret(&cr.Token, flag+"-token", env+"_TOKEN", scope+": token of "+whose+" (prefer the environment variable)")
	}
	cr := &n.Credentials
	creds(cr, "nats", "TALLY_NATS", "with --nats-url", "the node's user")
	str(&cr.TLSCA, "nats-tls-ca", "TALLY_NATS_TLS_CA", "with --nats-url: CA certificate file that verifies the server")
	str(&cr.TLSCert, "nats-tls-cert", "TALLY_NATS_TLS_CERT", "with --nats-url: client certificate file")
	str(&cr.TLSKey, "nats-tls-key", "TALLY_NATS_TLS_KEY", "with --nats-url: client key file")
	str(&n.Name, "name", "TALLY_NAME", "the node's name in its cluster and its embedded server's")
	str(&n.Cluster, "cluster", "TALLY_CLUSTER", "HOST:PORT of the embedded server's route listener: joins the NATS cluster of --routes")
	routes := strings.Join(n.Routes, ",")
	str(&routes, "routes", "TALLY_ROUTES", "the cluster's route addresses, nats://host:port or host:port separated by commas, the same on every node")
	str(&n.ClusterName, "cluster-name", "TALLY_CLUSTER_NAME", "name of the NATS cluster")
	fs.IntVar(&n.Replicas, "replicas", envInt(getenv, "TALLY_REPLICAS", n.Replicas, &errs), "replicas of the journal and the cluster's buckets (0: 1 alone, 3 in a cluster of three servers or more) ($TALLY_REPLICAS)")
	str(&n.Sync, "sync", "TALLY_SYNC", "JetStream fsync: interval (every --sync-interval) or always (every write)")
	str(&logLevel, "log-level", "TALLY_LOG_LEVEL", "debug, info, warn or error")
	str(&c.pprof, "pprof", "TALLY_PPROF", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060")
	str(&n.HTTP, "http", "TALLY_HTTP", "serve /healthz (alive), /readyz (can serve) and /metrics (Prometheus) on this address, e.g. 127.0.0.1:8080")
	str(&n.NATSMonitor, "nats-monitor", "TALLY_NATS_MONITOR", "serve the embedded NATS server's monitoring (/varz, /jsz, ...) on this address, e.g. 127.0.0.1:8222")
	str(&n.WebSocket, "websocket", "TALLY_WEBSOCKET", "HOST:PORT of the embedded server's WebSocket listener, for end users (browsers)")
	str(&n.WebSocketTLSCert, "websocket-tls-cert", "TALLY_WEBSOCKET_TLS_CERT", "certificate file of the WebSocket listener")
	str(&n.WebSocketTLSKey, "websocket-tls-key", "TALLY_WEBSOCKET_TLS_KEY", "key file of the WebSocket listener")
	envOf["websocket-no-tls"] = "TALLY_WEBSOCKET_NO_TLS"
	fs.BoolVar(&n.WebSocketNoTLS, "websocket-no-tls", envBool(getenv, "TALLY_WEBSOCKET_NO_TLS", &errs), "WebSocket without TLS: only on a loopback address, behind a proxy that ends TLS ($TALLY_WEBSOCKET_NO_TLS)")
	origins := ""
	str(&origins, "websocket-origins", "TALLY_WEBSOCKET_ORIGINS", "origins whose pages may connect over WebSocket, e.g. https://app.example.com, separated by commas (default: any)")
	str(&n.UserSigKey, "user-sig-key", "TALLY_USER_SIG_KEY", "public key file (PEM, Ed25519) that verifies user signatures: end users sign in with one")
	str(&n.CalloutIssuer, "callout-issuer", "TALLY_CALLOUT_ISSUER", "with --nats-url and --user-sig-key: file holding the account nkey seed of the server's auth_callout issuer")
	creds(&n.UsersCredentials, "users", "TALLY_USERS", "with --nats-url and --user-sig-key",
		"the node's user in the end users' account USERS, one of the auth_callout's auth_users")
	creds(&n.SystemCredentials, "sys", "TALLY_SYS", "optional with --nats-url and --user-sig-key",
		"a user of the server's system account, one of the auth_callout's auth_users, with which the node closes end users' connections")
	dur(&n.SyncInterval, "sync-interval", "TALLY_SYNC_INTERVAL", "how often --sync=interval fsyncs")
	dur(&n.DedupeWindow, "dedupe-window", "TALLY_DEDUPE_WINDOW", "how long a write's requestID is remembered")
	dur(&n.PassivateAfter, "passivate-after", "TALLY_PASSIVATE_AFTER", "keep an idle group in memory this long")
	dur(&n.ActorIdle, "actor-idle", "TALLY_ACTOR_IDLE", "stop a group's actor after this long without calls, keeping its state in a compact snapshot")
	fs.IntVar(&n.JournalKeep, "journal-keep", envInt(getenv, "TALLY_JOURNAL_KEEP", n.JournalKeep, &errs), "events of each group the journal keeps, 0: all; a group appends at most this many per --dedupe-window ($TALLY_JOURNAL_KEEP)")
	fs.IntVar(&n.JournalShards, "journal-shards", envInt(getenv, "TALLY_JOURNAL_SHARDS", n.JournalShards, &errs), "streams a new journal spreads its groups over (0: one per server); an existing journal keeps its own ($TALLY_JOURNAL_SHARDS)")
	dur(&n.ExitUnreadyAfter, "exit-unready-after", "TALLY_EXIT_UNREADY_AFTER", "exit non-zero when the embedded journal has taken no write for this long, for a supervisor to restart the node (0: never)")
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return c, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	n.Explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { n.Explicit[f.Name] = true })
	for name, envName := range envOf {
		if getenv(envName) != "" {
			n.Explicit[name] = true
		}
	}
	n.Routes, n.WebSocketOrigins = splitList(routes), splitList(origins)
	if err := c.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel))
	}
	errs = append(errs, n.Validate())
	return c, rest, errors.Join(errs...)
}
