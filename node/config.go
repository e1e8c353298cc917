package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/signin"
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
	// DataDir is the embedded server's JetStream store.
	DataDir string
	// Listen is the embedded server's client address; port 0 picks a free
	// port.
	Listen string
	// NATSConfig is a nats-server configuration file for the embedded
	// server (accounts, users, permissions, TLS, limits); the node adds
	// its own account to it. Where the file and a setting of Config both
	// say something, Explicit decides.
	NATSConfig string
	// Explicit names, by their tally-node flags, the settings given on
	// purpose: on the command line or by their environment variables. Such
	// a setting overrides what NATSConfig says of it, as nats-server's
	// command line overrides its configuration file; any other yields to
	// the file, and fills in only what the file leaves out.
	Explicit map[string]bool
	// NATSURL, when set, is an existing NATS server or cluster to use
	// instead of embedding one (URLs separated by commas); Credentials
	// authenticate the node there.
	NATSURL     string
	Credentials Credentials

	// Name is the node's name in its cluster and its embedded server's;
	// unique in the cluster. DefaultConfig gives the host name.
	Name string
	// Cluster, when set, is the embedded server's route listener
	// (HOST:PORT): the server joins the NATS cluster of Routes and the node
	// the tally cluster on it.
	Cluster string
	// Routes are the cluster's route addresses, the same list on every
	// node (the node's own is allowed).
	Routes []string
	// ClusterName names the NATS cluster; every server of it must agree.
	ClusterName string
	// Replicas of the journal and of the cluster's buckets; 0 picks 1 on
	// a single server and 3 on a cluster of three servers or more.
	Replicas int

	// Sync is SyncInterval or SyncAlways.
	Sync         string
	SyncInterval time.Duration

	DedupeWindow   time.Duration
	PassivateAfter time.Duration
	ActorIdle      time.Duration
	// JournalShards is how many streams a new journal spreads its groups
	// over; 0 picks one per server. A journal keeps the number it was
	// made with, whatever a later start asks for.
	JournalShards int
	// JournalKeep is how many of each group's latest events the journal
	// keeps (0: all). A group then appends at most JournalKeep events per
	// DedupeWindow, so that a restart finds every request ID of the window.
	JournalKeep int

	// WebSocket, when set, is the embedded server's WebSocket listener
	// (HOST:PORT), for end users; TLS with WebSocketTLSCert and
	// WebSocketTLSKey, or WebSocketNoTLS on a loopback HOST only (behind
	// a proxy that ends TLS). WebSocketOrigins, when set, are the only
	// origins (https://app.example) whose pages may connect.
	WebSocket                         string
	WebSocketTLSCert, WebSocketTLSKey string
	WebSocketNoTLS                    bool
	WebSocketOrigins                  []string
	// UserSigKey is a file holding the public key (PEM "PUBLIC KEY",
	// Ed25519) that verifies user signatures: with it the node serves the
	// NATS auth callout that signs end users in (package signin).
	UserSigKey string
	// CalloutIssuer, with NATSURL and UserSigKey, is a file holding the
	// account nkey seed that signs the callout's answers: the public key is
	// the external server's auth_callout issuer.
	CalloutIssuer string
	// UsersCredentials, with NATSURL and UserSigKey, authenticate the
	// node's gateway connection in the end users' account (UsersAccount)
	// of the external server, with a user there that the auth_callout lets
	// through (auth_users): the node serves end users' calls on it, where
	// it sees the reply subject each caller chose. Its TLS is
	// Credentials'.
	UsersCredentials Credentials
	// SystemCredentials, optional with NATSURL and UserSigKey, authenticate
	// a user of the external server's system account: with it the node
	// closes the connections it signed in of a user whose groups changed
	// (or who flooded it), through the server's kick request, and keeps a
	// user's latest signin.DefaultMaxConnsPerUser, closing her oldest. The
	// node starts only once the server answered a kick of it. Its TLS is
	// Credentials'.
	SystemCredentials Credentials
	// Groups lists a user's members-only groups at sign-in; nil grants
	// none.
	Groups signin.GroupsFunc

	// HTTP, when set, is the address of /healthz, /readyz and /metrics.
	HTTP string
	// NATSMonitor, when set, is the address of the embedded NATS server's
	// own monitoring endpoints (/varz, /jsz, /connz, ...).
	NATSMonitor string
	// ExitUnreadyAfter stops a node whose embedded journal has taken no
	// write for this long, so that a supervisor restarts it; 0 never does.
	ExitUnreadyAfter time.Duration

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock drives the rate limits and the dedupe window; nil is the
	// system clock. Tests pass a fake one.
	Clock actors.Clock
	// MembersChanged, when set, is told the users whose membership of a
	// group changed, once the change is journaled and indexed: their
	// connections hold the subscribe grants of the old membership.
	MembersChanged func(ctx context.Context, users []string) error
}

// DefaultConfig returns the node's documented defaults: NATS embedded on
// 127.0.0.1:4222, data in ./data.
func DefaultConfig() Config {
	a := actors.DefaultConfig()
	name, _ := os.Hostname()
	return Config{
		Name:           name,
		ClusterName:    "tally",
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
	if c.JournalShards < 0 || c.JournalShards > journal.MaxShards {
		errs = append(errs, fmt.Errorf("--journal-shards %d: want 1..%d (0: one per server)", c.JournalShards, journal.MaxShards))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1..5 (0: 1 alone, 3 in a cluster of three or more)", c.Replicas))
	}
	if !validName(c.Name) {
		errs = append(errs, fmt.Errorf("--name %q: want 1..64 letters, digits, '-', '_' or '.'", c.Name))
	}
	if c.Cluster != "" || len(c.Routes) > 0 {
		errs = append(errs, c.validateCluster()...)
	}
	switch {
	case c.NATSURL != "" && c.NATSConfig != "":
		errs = append(errs, errors.New("--nats-url and --nats-config exclude each other: the file configures the embedded server"))
	case c.NATSURL != "":
		errs = append(errs, c.Credentials.validate())
	case c.NATSConfig == "" || c.Explicit["listen"]:
		if _, _, err := c.hostPort(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NATSMonitor != "" {
		if c.NATSURL != "" {
			errs = append(errs, errors.New("--nats-monitor is the embedded server's; an external server has its own monitoring port"))
		} else if _, _, err := splitHostPort("--nats-monitor", c.NATSMonitor); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.validateEndUsers()...)
	if c.NATSURL == "" && !c.Credentials.empty() {
		errs = append(errs, errors.New("NATS credentials are for --nats-url; the embedded server's users are in its --nats-config file"))
	}
	return errors.Join(errs...)
}

// hostPort splits Listen; port 0 means any free port.
func (c Config) hostPort() (string, int, error) { return splitHostPort("--listen", c.Listen) }

func splitHostPort(flag, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%s %q: port must be 0..65535", flag, addr)
	}
	return host, p, nil
}

// Clustered reports whether the node runs as a member of a tally cluster:
// on an embedded server that joins a NATS cluster, or on any external
// NATS server, where other nodes may share the journal.
func (c Config) Clustered() bool { return c.Cluster != "" || c.NATSURL != "" }

// validName reports whether name can name a NATS server and a key of the
// cluster's buckets.
func validName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func (c Config) validateCluster() []error {
	var errs []error
	if c.NATSURL != "" {
		errs = append(errs, errors.New("--cluster and --routes are for the embedded server; --nats-url names a cluster of its own"))
	}
	if c.Cluster == "" {
		errs = append(errs, errors.New("--routes needs --cluster, the embedded server's own route listener"))
	} else if _, _, err := splitHostPort("--cluster", c.Cluster); err != nil {
		errs = append(errs, err)
	}
	if c.ClusterName == "" || strings.ContainsAny(c.ClusterName, " \t.*>") {
		errs = append(errs, fmt.Errorf("--cluster-name %q: want a name without spaces, dots or wildcards", c.ClusterName))
	}
	if _, err := routeURLs(c.Routes); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// routeURLs parses route addresses given as nats://host:port or
// host:port.
func routeURLs(routes []string) ([]*url.URL, error) {
	var out []*url.URL
	for _, r := range routes {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		s := r
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.Port() == "" {
			return nil, fmt.Errorf("--routes: %q is not nats://host:port or host:port", r)
		}
		out = append(out, u)
	}
	return out, nil
}

// validateEndUsers checks the WebSocket and sign-in settings.
func (c Config) validateEndUsers() []error {
	var errs []error
	if c.WebSocket == "" {
		if c.WebSocketNoTLS || c.WebSocketTLSCert != "" || c.WebSocketTLSKey != "" || len(c.WebSocketOrigins) > 0 {
			errs = append(errs, errors.New("--websocket-tls-cert, --websocket-tls-key, --websocket-no-tls and --websocket-origins need --websocket"))
		}
	} else {
		errs = append(errs, c.validateWebSocket()...)
	}
	switch {
	case c.CalloutIssuer != "" && (c.NATSURL == "" || c.UserSigKey == ""):
		errs = append(errs, errors.New("--callout-issuer is for --nats-url with --user-sig-key: the embedded server's callout makes its own issuer"))
	case c.NATSURL != "" && c.UserSigKey != "" && c.CalloutIssuer == "":
		errs = append(errs, errors.New("--user-sig-key with --nats-url needs --callout-issuer, the seed of the account key the server's auth_callout names as its issuer"))
	}
	users := c.UsersCredentials
	switch {
	case (c.NATSURL == "" || c.UserSigKey == "") && !users.empty():
		errs = append(errs, errors.New("--users-creds, --users-nkey, --users-user, --users-password and --users-token are for --nats-url with --user-sig-key: the embedded server's end users' account has the node's own user"))
	case c.NATSURL == "" || c.UserSigKey == "":
	case users.empty():
		errs = append(errs, fmt.Errorf("--user-sig-key with --nats-url needs a user of the end users' account %s that the auth_callout lets through (--users-user with $TALLY_USERS_PASSWORD, --users-creds, --users-nkey or --users-token): the node serves their calls in their account, where it sees each call's reply subject", UsersAccount))
	case users.TLSCA != "" || users.TLSCert != "" || users.TLSKey != "":
		errs = append(errs, errors.New("the end users' account's connection takes the node's TLS (--nats-tls-*)"))
	case c.Credentials.sameUser(users):
		errs = append(errs, fmt.Errorf("the end users' account's user (--users-*) is the node's own (--nats-*): it must be a user of account %s, where the auth_callout places end users", UsersAccount))
	default:
		errs = append(errs, users.validateAuth("the end users' account's credentials (--users-*)"))
	}
	sys := c.SystemCredentials
	switch {
	case sys.empty():
	case c.NATSURL == "" || c.UserSigKey == "":
		errs = append(errs, errors.New("--sys-creds, --sys-nkey, --sys-user, --sys-password and --sys-token are for --nats-url with --user-sig-key: the embedded server's node closes its end users' connections itself"))
	case sys.TLSCA != "" || sys.TLSCert != "" || sys.TLSKey != "":
		errs = append(errs, errors.New("the system account's connection takes the node's TLS (--nats-tls-*)"))
	default:
		errs = append(errs, sys.validateAuth("the system account's credentials (--sys-*)"))
	}
	return errs
}

func (c Config) validateWebSocket() []error {
	var errs []error
	if c.NATSURL != "" {
		return append(errs, errors.New("--websocket is the embedded server's; an external NATS server has a websocket block of its own"))
	}
	host, _, err := splitHostPort("--websocket", c.WebSocket)
	if err != nil {
		return append(errs, err)
	}
	switch {
	case c.WebSocketNoTLS && (c.WebSocketTLSCert != "" || c.WebSocketTLSKey != ""):
		errs = append(errs, errors.New("--websocket-no-tls excludes --websocket-tls-cert and --websocket-tls-key"))
	case c.WebSocketNoTLS && !loopback(host):
		errs = append(errs, fmt.Errorf("--websocket-no-tls: %q is not a loopback address: end users' signatures would cross the network in clear; give --websocket-tls-cert and --websocket-tls-key, or listen on 127.0.0.1 behind a proxy that ends TLS", host))
	case !c.WebSocketNoTLS && (c.WebSocketTLSCert == "" || c.WebSocketTLSKey == ""):
		errs = append(errs, errors.New("--websocket needs --websocket-tls-cert and --websocket-tls-key, or --websocket-no-tls on a loopback address"))
	}
	if c.UserSigKey == "" && c.NATSConfig == "" {
		errs = append(errs, errors.New("--websocket needs --user-sig-key, so that end users sign in with a user signature (or --nats-config users): without either it would let nobody in"))
	}
	for _, o := range c.WebSocketOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			errs = append(errs, fmt.Errorf("--websocket-origins: %q is not an origin like https://app.example.com", o))
		}
	}
	return errs
}

// loopback reports whether host names this machine's loopback interface
// only.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
