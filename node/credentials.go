package node

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// Credentials authenticate the node on an existing NATS server: nats.go's
// own options, one way of authenticating at most, and TLS besides.
type Credentials struct {
	// CredsFile is a decentralized-auth credentials file (JWT and seed).
	CredsFile string
	// NkeySeedFile is a file holding an nkey seed.
	NkeySeedFile string
	// User and Password, or Token, for servers with static users.
	User, Password string
	Token          string
	// TLSCA verifies the server; TLSCert and TLSKey are the node's client
	// certificate.
	TLSCA, TLSCert, TLSKey string
}

func (c Credentials) empty() bool { return c == Credentials{} }

// withTLSOf is c with o's TLS: the node's other users on an external
// server connect as its own does (--nats-tls-*).
func (c Credentials) withTLSOf(o Credentials) Credentials {
	c.TLSCA, c.TLSCert, c.TLSKey = o.TLSCA, o.TLSCert, o.TLSKey
	return c
}

// sameUser reports whether c and o name one user: the same creds file,
// nkey seed file, user or token.
func (c Credentials) sameUser(o Credentials) bool {
	same := func(a, b string) bool { return a != "" && a == b }
	return same(c.CredsFile, o.CredsFile) || same(c.NkeySeedFile, o.NkeySeedFile) || same(c.User, o.User) || same(c.Token, o.Token)
}

func (c Credentials) validate() error {
	err := c.validateAuth("NATS credentials")
	if (c.TLSCert == "") != (c.TLSKey == "") {
		err = errors.Join(err, errors.New("NATS TLS: a client certificate needs its key and a key its certificate"))
	}
	return err
}

// validateAuth checks the way of authenticating: one at most, and a user
// with its password; what names them in messages.
func (c Credentials) validateAuth(what string) error {
	ways := 0
	for _, set := range []bool{c.CredsFile != "", c.NkeySeedFile != "", c.User != "" || c.Password != "", c.Token != ""} {
		if set {
			ways++
		}
	}
	var errs []error
	if ways > 1 {
		errs = append(errs, fmt.Errorf("%s: give one of a creds file, an nkey seed, a user and password, or a token", what))
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, fmt.Errorf("%s: a user needs a password and a password a user", what))
	}
	return errors.Join(errs...)
}

// options turns the credentials into nats.go options.
func (c Credentials) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NkeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeySeedFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// Redact returns a comma-separated list of NATS URLs with every password
// or token replaced by "xxxxx", for logs and messages.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		at := strings.LastIndexByte(p, '@')
		if at < 0 {
			continue
		}
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil && u.Host != "" {
			if _, ok := u.User.Password(); !ok {
				u.User = url.User("xxxxx") // a token
			}
			parts[i] = u.Redacted()
			continue
		}
		// Not a URL with a host (host:port with credentials, say): keep the
		// scheme if any, hide everything else before the @.
		scheme := ""
		if j := strings.Index(p, "://"); j >= 0 && j < at {
			scheme = p[:j+3]
		}
		parts[i] = scheme + "xxxxx" + p[at:]
	}
	return strings.Join(parts, ",")
}
