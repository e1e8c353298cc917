package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/signin"
	"github.com/tallyhq/tally/usersig"
)

// Accounts of end users on the embedded server.
const (
	// UsersAccount is where the sign-in callout places end users. The
	// node's gateway serves the user subjects in it with a connection of
	// its own, and it imports the updates from the service: never the
	// admin subjects or $SRV. On an external server it is the operator's
	// account of that name, where the node has a user of its own too
	// (Config.UsersCredentials).
	UsersAccount = signin.DefaultAccount
	// CalloutAccount holds the sign-in service's in-process connection,
	// to which the server sends its callout requests. Every node of a
	// cluster has one of this name, so that the account is known wherever
	// routes carry its subscriptions; each node signs its answers with an
	// issuer of its own and answers only its own server's requests (see
	// calloutKeys).
	CalloutAccount = "TALLY_SIGNIN"
)

// calloutKeys are what a node that signs end users in makes at start.
//
// In a cluster every server sends its callout requests into
// CalloutAccount, and routes carry them to every node's service, which
// answers only those of its own server (the request names it). Each node
// has its own issuer: no signing secret is shared or stored, and a node
// answers only for the connections it can see, count and close. The
// other choices do worse: an account name per node is unknown to the other
// servers, which then log an error for each of its subscriptions that the
// routes carry (one per sign-in: the server's reply inbox); a shared
// issuer would need a seed on every node, and let one node answer for a
// connection on another, which it can neither count nor close.
type calloutKeys struct {
	issuer  nkeys.KeyPair // an account key; its public key is AuthCallout.Issuer
	user    nodeUser      // the service's connection in CalloutAccount
	userKey string
	// gateway is the node's gateway connection in UsersAccount, which
	// serves end users' calls there and so sees their reply subjects.
	gateway    nodeUser
	gatewayKey string
	key        ed25519.PublicKey // verifies user signatures
}

func newCalloutKeys(cfg Config) (*calloutKeys, error) {
	if cfg.UserSigKey == "" {
		return nil, nil
	}
	key, err := readUserSigKey(cfg.UserSigKey)
	if err != nil {
		return nil, err
	}
	k := &calloutKeys{key: key}
	if cfg.NATSURL != "" {
		k.issuer, err = readIssuer(cfg.CalloutIssuer)
		return k, err
	}
	if k.issuer, err = nkeys.CreateAccount(); err != nil {
		return nil, fmt.Errorf("callout issuer: %w", err)
	}
	if k.user, k.userKey, err = newNodeUser(); err != nil {
		return nil, err
	}
	if k.gateway, k.gatewayKey, err = newNodeUser(); err != nil {
		return nil, err
	}
	return k, nil
}

func readUserSigKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--user-sig-key: %w", err)
	}
	key, err := usersig.ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("--user-sig-key %s: %w (want the PEM PUBLIC KEY of an Ed25519 key: tally-node usersig keygen writes one)", path, err)
	}
	return key, nil
}

func readIssuer(path string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--callout-issuer: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, fmt.Errorf("--callout-issuer %s: %w", path, err)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("--callout-issuer %s: want an account seed (SA...)", path)
	}
	return kp, nil
}

// payloadPlan is how large a message each account takes when the callout
// needs more than the rest: the server's limit is raised to what the
// callout's largest answer needs, and the accounts the node builds (but
// the callout's) keep the limit the server had.
type payloadPlan struct {
	account int32 // 0: the server's
}

// planPayload raises the server's largest payload for the callout's
// answers, when it needs more.
func planPayload(opts *server.Options, callout *calloutKeys, prefix string) (payloadPlan, error) {
	if callout == nil {
		return payloadPlan{}, nil
	}
	need, err := signin.MaxResponseBytes(prefix)
	if err != nil {
		return payloadPlan{}, fmt.Errorf("sign-in: %w", err)
	}
	if int(opts.MaxPayload) >= need {
		return payloadPlan{}, nil
	}
	plan := payloadPlan{account: opts.MaxPayload}
	opts.MaxPayload = int32(need)
	return plan, nil
}

// limitedAccount makes an account whose connections publish at most
// payload bytes (0: the server's limit) and hold at most subs
// subscriptions (0: no limit): account limits can only be given in
// configuration text.
func limitedAccount(name string, payload, subs int32, extra string) (*server.Account, error) {
	var limits []string
	if payload > 0 {
		limits = append(limits, fmt.Sprintf("max_payload: %d", payload))
	}
	if subs > 0 {
		limits = append(limits, fmt.Sprintf("max_subscriptions: %d", subs))
	}
	var fields []string
	if len(limits) > 0 {
		fields = append(fields, "limits: { "+strings.Join(limits, ", ")+" }")
	}
	if extra != "" {
		fields = append(fields, extra)
	}
	conf := "accounts: { " + name + ": { " + strings.Join(fields, ", ") + " } }"
	var o server.Options
	if err := o.ProcessConfigString(conf); err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	for _, acc := range o.Accounts {
		if acc.Name == name {
			return acc, nil
		}
	}
	return nil, fmt.Errorf("account %s: not in its own configuration", name)
}

// endUserOptions adds the WebSocket listener and the sign-in callout to
// the embedded server's options. from is the account end users import
// the service from: the service account, or the client account the
// gateway serves from.
func endUserOptions(cfg Config, opts *server.Options, from *server.Account, front bool, prefix string, callout *calloutKeys) error {
	if err := webSocketOptions(cfg, opts); err != nil {
		return err
	}
	if callout == nil {
		return nil
	}
	if opts.AuthCallout != nil {
		return fmt.Errorf("NATS configuration %s has an auth_callout: with --user-sig-key the node serves its own", cfg.NATSConfig)
	}
	if findAccount(opts, UsersAccount) != nil || findAccount(opts, CalloutAccount) != nil {
		return fmt.Errorf("NATS configuration %s: accounts %s and %s are tally's, for end users and their sign-in", cfg.NATSConfig, UsersAccount, CalloutAccount)
	}
	users, err := limitedAccount(UsersAccount, signin.MaxPayload, 2*signin.MaxGroups+signin.BaseSubs, "")
	if err != nil {
		return err
	}
	if err := mapUsers(cfg, users, prefix); err != nil {
		return err
	}
	// End users' calls are served in their own account by a gateway
	// connection of the node there, which sees each request's reply
	// subject (through a service import it would see the import's own)
	// and answers only the caller's inbox. Their updates are imported.
	updates := prefix + ".updates.>"
	open, members := contract.UpdatesSubject(prefix, "*", false), contract.UpdatesSubject(prefix, "*", true)
	if front {
		if err := from.AddStreamExport(updates, []*server.Account{users}); err != nil {
			return fmt.Errorf("account %s: export %s: %w", from.Name, updates, err)
		}
	}
	// Open groups' updates keep their subjects; members-only groups'
	// come out of the updates' subjects (see contract.MemberUpdatesSubject).
	if err := users.AddStreamImport(from, open, ""); err != nil {
		return fmt.Errorf("account %s: import %s from %s: %w", UsersAccount, open, from.Name, err)
	}
	if err := users.AddMappedStreamImport(from, members, contract.MemberUpdatesSubject(prefix, "$1")); err != nil {
		return fmt.Errorf("account %s: import %s from %s: %w", UsersAccount, members, from.Name, err)
	}
	co := server.NewAccount(CalloutAccount)
	opts.Accounts = append(opts.Accounts, users, co)
	// The users and nkeys of the configuration and the node's own never go
	// to the callout (a user of the global account would). The exception
	// is a no-credentials user outside the global account: the callout
	// never hears of its TCP clients, its account being none of
	// AllowedAccounts, but it does hear of a WebSocket client without
	// credentials, which the user does not take (webSocketOptions), and
	// refuses it with a reason in the log.
	var bypass []string
	for _, u := range opts.Users {
		if u.Username != opts.NoAuthUser || global(u.Account) {
			bypass = append(bypass, u.Username)
		}
	}
	for _, u := range opts.Nkeys {
		if u.Nkey != opts.NoAuthUser || global(u.Account) {
			bypass = append(bypass, u.Nkey)
		}
	}
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{
		Nkey:                   callout.userKey,
		Account:                co,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	}, &server.NkeyUser{
		Nkey:                   callout.gatewayKey,
		Account:                users,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	})
	issuer, err := callout.issuer.PublicKey()
	if err != nil {
		return fmt.Errorf("callout issuer: %w", err)
	}
	opts.AuthCallout = &server.AuthCallout{
		Issuer:          issuer,
		Account:         CalloutAccount,
		AuthUsers:       append(bypass, callout.userKey, callout.gatewayKey),
		AllowedAccounts: []string{UsersAccount},
	}
	return nil
}

func global(acc *server.Account) bool { return acc == nil || acc.Name == server.DEFAULT_GLOBAL_ACCOUNT }

// webSocketOptions sets the WebSocket listener from the flags, and keeps
// WebSocket clients from the no-credentials user: one without a valid
// user signature or a configured user's credentials is refused.
func webSocketOptions(cfg Config, opts *server.Options) error {
	ws := &opts.Websocket
	if cfg.WebSocket != "" {
		if ws.Port != 0 {
			return fmt.Errorf("NATS configuration %s has a websocket block: give WebSocket there or with --websocket, not both", cfg.NATSConfig)
		}
		host, port, err := splitHostPort("--websocket", cfg.WebSocket)
		if err != nil {
			return err
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		ws.Host, ws.Port, ws.NoTLS, ws.AllowedOrigins = host, port, cfg.WebSocketNoTLS, cfg.WebSocketOrigins
		if !cfg.WebSocketNoTLS {
			if ws.TLSConfig, err = server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.WebSocketTLSCert, KeyFile: cfg.WebSocketTLSKey}); err != nil {
				return fmt.Errorf("--websocket-tls-cert/--websocket-tls-key: %w", err)
			}
		}
	}
	if ws.Port == 0 {
		return nil
	}
	if ws.NoAuthUser != "" || ws.Username != "" || ws.Token != "" {
		return errors.New("the websocket block's no_auth_user, username and token would let WebSocket clients in without a user signature: end users sign in with --user-sig-key")
	}
	if opts.NoAuthUser == "" {
		return nil
	}
	var types *map[string]struct{}
	for _, u := range opts.Users {
		if u.Username == opts.NoAuthUser {
			types = &u.AllowedConnectionTypes
		}
	}
	for _, u := range opts.Nkeys {
		if u.Nkey == opts.NoAuthUser {
			types = &u.AllowedConnectionTypes
		}
	}
	if types == nil {
		return nil
	}
	out, err := withoutWebSocket(*types)
	if err != nil {
		return fmt.Errorf("no_auth_user %s: %w", opts.NoAuthUser, err)
	}
	*types = out
	return nil
}

// withoutWebSocket returns allowed connection types without WebSocket;
// none listed means all.
func withoutWebSocket(types map[string]struct{}) (map[string]struct{}, error) {
	if len(types) == 0 {
		return map[string]struct{}{jwt.ConnectionTypeStandard: {}, jwt.ConnectionTypeLeafnode: {},
			jwt.ConnectionTypeMqtt: {}, jwt.ConnectionTypeInProcess: {}}, nil
	}
	out := map[string]struct{}{}
	for t := range types {
		if t != jwt.ConnectionTypeWebsocket {
			out[t] = struct{}{}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("allowed on WebSocket only: WebSocket clients never enter without credentials")
	}
	return out, nil
}
