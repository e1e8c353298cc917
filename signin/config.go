package signin

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// Defaults of Config.
const (
	// DefaultAccount is the account end users are placed in.
	DefaultAccount = "USERS"
	// DefaultMaxConnsPerUser bounds one user's simultaneous connections on
	// one server: enough for a person's tabs and devices, few enough that a
	// flood of one user's connections cannot exhaust a node.
	DefaultMaxConnsPerUser = 32
	// MaxGroups is the most members-only groups one sign-in grants.
	MaxGroups = 1000
	// MaxPayload is the largest message an end user may publish: the
	// contract's largest request (a set of 20 keys of 128 bytes) is about
	// 3 KB of JSON as JSON.stringify writes it; only one that escapes
	// every character would pass 8 KiB.
	MaxPayload = 8 << 10
	// BaseSubs is how many subscriptions an end user has besides two per
	// granted group.
	BaseSubs = 64
	// DisconnectSubject is the default subject, in the service account,
	// on which every node's service hears of users to disconnect.
	DisconnectSubject = "tally.internal.signin.disconnect"
)

// GroupsFunc returns the groups user is a member of; nil means none.
type GroupsFunc func(ctx context.Context, user string) ([]string, error)

// Config is what a Service needs.
type Config struct {
	// Key verifies user signatures.
	Key ed25519.PublicKey
	// Issuer signs the callout's answers: an account key pair, whose public
	// key is the server's AuthCallout.Issuer.
	Issuer nkeys.KeyPair
	// Account is where end users are placed (DefaultAccount).
	Account string
	// Prefix is the contract's subject prefix (tally.v1).
	Prefix string
	// Groups lists a user's member groups at sign-in; nil grants none.
	Groups GroupsFunc
	// Server, when set, is the only server whose requests this service
	// answers (by its ID). Empty: every request is answered (one service
	// of a queue group on an external server).
	Server string
	// Conns is the embedded server's client API: the service counts its
	// users' connections there, refusing a sign-in beyond
	// MaxConnsPerUser, and Disconnect and Ban close them. Nil on an
	// external server.
	Conns Conns
	// Kick, when set and Conns is not, closes connections on an external
	// server (with the system account's credentials): the service then
	// remembers the connections it let in until their grants expire, keeps
	// a user's MaxConnsPerUser latest, closing her oldest to make room
	// (the server is not asked which ones ended), and Disconnect and Ban
	// close them. With neither Conns nor Kick, connections are neither
	// counted nor closed.
	Kick Kick
	// MaxConnsPerUser caps the connections the service knows of one user.
	MaxConnsPerUser int
	// DisconnectSubject carries Disconnect's users between nodes.
	DisconnectSubject string
	// Subscribers, when set with Conns or Kick, lists subscriptions: the
	// service closes the connections of end users who subscribe to every
	// open group's updates at once, and refuses their sign-ins for
	// AbuseBan on every node.
	Subscribers Subscribers
	// AbuseBan is how long a user may not sign in after she subscribed to
	// every open group's updates, or signed in 100 times within 5 s past
	// her connection cap; her connections are closed on every node.
	AbuseBan time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Conns is what the service needs of the NATS server whose clients it
// signs in; ServerConns gives it for an embedded server.
type Conns interface {
	// Alive reports whether the client of that ID is still connected (or
	// still connecting).
	Alive(id uint64) bool
	// Close closes the client's connection.
	Close(id uint64) error
}

// DefaultConfig returns the defaults; Key and Issuer are the caller's.
func DefaultConfig() Config {
	return Config{
		Account:           DefaultAccount,
		Prefix:            "tally.v1",
		MaxConnsPerUser:   DefaultMaxConnsPerUser,
		DisconnectSubject: DisconnectSubject,
		AbuseBan:          time.Minute,
	}
}

func (c *Config) validate() error {
	if len(c.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: no user signature key", ErrInvalidConfig)
	}
	if c.Issuer == nil {
		return fmt.Errorf("%w: no issuer", ErrInvalidConfig)
	}
	if pub, err := c.Issuer.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return fmt.Errorf("%w: the issuer must be an account key", ErrInvalidConfig)
	}
	if c.Account == "" || strings.ContainsAny(c.Account, " \t.*>") || c.Prefix == "" || c.DisconnectSubject == "" {
		return fmt.Errorf("%w: account %q, prefix %q, disconnect subject %q", ErrInvalidConfig, c.Account, c.Prefix, c.DisconnectSubject)
	}
	if c.AbuseBan <= 0 {
		return fmt.Errorf("%w: AbuseBan %v must be positive", ErrInvalidConfig, c.AbuseBan)
	}
	if c.MaxConnsPerUser <= 0 {
		return fmt.Errorf("%w: MaxConnsPerUser %d must be positive", ErrInvalidConfig, c.MaxConnsPerUser)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
