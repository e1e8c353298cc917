package signin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/usersig"
)

// calloutSubject is where a NATS server asks its callout service.
const calloutSubject = "$SYS.REQ.USER.AUTH"

// queueGroup shares the requests of an external server among the nodes
// that serve its callout, which all hold its one issuer.
const queueGroup = "tally-signin"

const (
	// workers bounds the sign-ins handled at once.
	workers = 16
	// groupsTimeout bounds the read of a user's groups: the server gives
	// the whole callout 2 s by default.
	groupsTimeout = 1500 * time.Millisecond
	// sweepEvery is how often the connections of users who did not sign in
	// again are checked for those that are gone.
	sweepEvery = time.Minute
)

// Service answers a NATS server's auth callout requests.
type Service struct {
	cfg      Config
	callout  *nats.Conn
	internal *nats.Conn
	log      *limitedLog
	conns    *registry
	bans     *bans

	subs   []*nats.Subscription
	sem    chan struct{}
	ctx    context.Context // ends with Stop
	cancel context.CancelFunc

	mu      sync.Mutex // guards stopped and the adds to wg
	stopped bool
	wg      sync.WaitGroup
}

// Start serves the callout on callout, a connection to the server's
// callout account, and hears Disconnect's users on internal, a connection
// to the service account that every node of a cluster shares.
func Start(callout, internal *nats.Conn, cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, callout: callout, internal: internal, ctx: ctx, cancel: cancel,
		log:  newLimitedLog(cfg.Logger, 10, time.Second),
		bans: &bans{until: map[string]time.Time{}, atCap: map[string]capCount{}},
		sem:  make(chan struct{}, workers),
	}
	var c closer
	switch {
	case cfg.Conns != nil:
		c = serverCloser{cfg.Conns}
	case cfg.Kick != nil:
		c = kickCloser{cfg.Kick}
	}
	s.conns = newRegistry(c, cfg.MaxConnsPerUser, cfg.Conns == nil, s.log)
	// On the embedded server, each node's service hears every server's
	// requests and answers its own server's only (see node's embedded
	// options for why); an external server's requests go to one node.
	subscribe := func() (*nats.Subscription, error) {
		if cfg.Server != "" {
			return callout.Subscribe(calloutSubject, s.dispatch)
		}
		return callout.QueueSubscribe(calloutSubject, queueGroup, s.dispatch)
	}
	sub, err := subscribe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("sign-in: subscribe to %s: %w", calloutSubject, err)
	}
	s.subs = append(s.subs, sub)
	if sub, err = internal.Subscribe(cfg.DisconnectSubject, s.disconnected); err != nil {
		s.Stop()
		return nil, fmt.Errorf("sign-in: subscribe to %s: %w", cfg.DisconnectSubject, err)
	}
	s.subs = append(s.subs, sub)
	for _, nc := range []*nats.Conn{callout, internal} {
		if err := nc.Flush(); err != nil {
			s.Stop()
			return nil, fmt.Errorf("sign-in: %w", err)
		}
	}
	if cfg.Conns != nil || cfg.Kick != nil {
		s.goUnlessStopped(func() { s.sweep(ctx) })
	}
	if cfg.Subscribers != nil {
		s.goUnlessStopped(func() { s.watchWildcards(ctx) })
	}
	return s, nil
}

// Stop stops answering and waits for the sign-ins under way.
func (s *Service) Stop() {
	for _, sub := range s.subs {
		sub.Unsubscribe()
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// goUnlessStopped runs fn in a goroutine that Stop waits for, unless Stop
// was called.
func (s *Service) goUnlessStopped(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.wg.Go(fn)
	return true
}

// dispatch hands a request to a worker; while all are busy it holds the
// subscription's delivery back.
func (s *Service) dispatch(m *nats.Msg) {
	s.sem <- struct{}{}
	if !s.goUnlessStopped(func() {
		defer func() { <-s.sem }()
		s.handle(m)
	}) {
		<-s.sem
	}
}

// handle answers one request, unless it is another server's.
func (s *Service) handle(m *nats.Msg) {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		// Not a server's request: nothing can be answered.
		s.log.refused(slog.String("reason", "not an authorization request: "+err.Error()))
		return
	}
	if s.cfg.Server != "" && req.Server.ID != s.cfg.Server {
		return
	}
	g, refusal := s.authorize(req)
	var ujwt string
	if refusal == nil {
		ujwt, refusal = s.encodeUser(req, g)
	}
	if refusal != nil {
		attrs := []any{slog.String("reason", refusal.Error()),
			slog.String("address", req.ClientInformation.Host),
			slog.String("type", req.ClientInformation.Type)}
		if g.user != "" {
			attrs = append(attrs, slog.String("user", g.user))
		}
		s.log.refused(attrs...)
		s.conns.forget(g.user, connRef{req.Server.ID, req.ClientInformation.ID})
		if errors.Is(refusal, ErrBanned) {
			// No answer: the server refuses the client once its auth
			// timeout passes, so a banned user's loop of sign-ins costs
			// the node one refusal per timeout per connection rather than
			// a signed answer each time.
			return
		}
	} else {
		s.cfg.Logger.Debug("signed in", slog.String("user", g.user), slog.String("type", req.ClientInformation.Type),
			slog.Int("groups", len(g.groups)), slog.Time("expires", g.expires))
	}
	resp, err := respond(s.cfg.Issuer, req.UserNkey, req.Server.ID, ujwt, refusal)
	if err != nil {
		s.cfg.Logger.Error("sign-in: encode the answer", slog.Any("error", err))
		return
	}
	if err := m.Respond([]byte(resp)); err != nil {
		s.cfg.Logger.Warn("sign-in: answer the server", slog.Any("error", err))
	}
}

// authorize decides a request: the grant, or why not. The grant's user
// is set as soon as the signature names one.
func (s *Service) authorize(req *jwt.AuthorizationRequestClaims) (grant, error) {
	if req.ClientInformation.Kind != "Client" {
		return grant{}, fmt.Errorf("%w (a %s connection)", ErrNotClient, req.ClientInformation.Kind)
	}
	token := req.ConnectOptions.Token
	if token == "" {
		return grant{}, ErrNoToken
	}
	claims, err := usersig.Verify(s.cfg.Key, token, s.cfg.Now())
	if err != nil {
		return grant{}, err
	}
	g := grant{user: claims.User, expires: claims.Expires}
	if until, ok := s.bans.banned(g.user, s.cfg.Now()); ok {
		return g, fmt.Errorf("%w: until %s", ErrBanned, until.UTC().Format(time.TimeOnly))
	}
	// The connection counts before the groups are read: a membership
	// change that closes the user's connections after the read then closes
	// this one too, rather than let it keep the groups of before.
	if err := s.conns.add(s.ctx, g.user, connRef{req.Server.ID, req.ClientInformation.ID}, g.expires, s.cfg.Now()); err != nil {
		if errors.Is(err, ErrTooManyConnections) && s.bans.refusedAtCap(g.user, s.cfg.Now()) {
			s.banAbuse(g.user, "a user's sign-ins go on at her connection cap: closing her connections and refusing her sign-ins")
		}
		return g, err
	}
	if g.groups, err = s.groups(g.user); err != nil {
		return g, err
	}
	return g, nil
}

// groups reads the user's member groups, keeping only valid group IDs
// (one that is not would widen a subscribe permission).
func (s *Service) groups(user string) ([]string, error) {
	if s.cfg.Groups == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupsTimeout)
	defer cancel()
	all, err := s.cfg.Groups(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMembersUnavailable, err)
	}
	if len(all) > MaxGroups {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyGroups, len(all), MaxGroups)
	}
	groups := all[:0:0]
	for _, g := range all {
		if err := contract.CheckGroupID(g); err != nil {
			s.cfg.Logger.Warn("sign-in: the user's groups include an invalid group ID", slog.String("user", user), slog.Any("error", err))
			continue
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func (s *Service) encodeUser(req *jwt.AuthorizationRequestClaims, g grant) (string, error) {
	ujwt, err := g.userClaims(req.UserNkey, s.cfg.Account, s.cfg.Prefix).Encode(s.cfg.Issuer)
	if err != nil {
		return "", fmt.Errorf("encode the user's grant: %w", err)
	}
	return ujwt, nil
}

// Disconnect closes every end-user connection of user on every node that
// shares the service account: the user signs in again and gets the grants
// of now (NATS checks subscribe permissions only when a subscription is
// made). It returns once the server took the message; each node closes
// its own server's connections when it hears it.
func (s *Service) Disconnect(ctx context.Context, user string) error {
	return s.send(ctx, user, 0)
}

// Ban is Disconnect, and every node then refuses the user's sign-ins for
// d: for a user who floods the node with calls its rate limit refuses,
// which a connection that stays would go on sending.
func (s *Service) Ban(ctx context.Context, user string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("ban %s: %w: duration %v", user, ErrInvalidConfig, d)
	}
	return s.send(ctx, user, d)
}

// banAbuse bans user for cfg.AbuseBan on every node, logging why with
// attrs, off the caller's goroutine.
func (s *Service) banAbuse(user, why string, attrs ...any) {
	// Not held back with the refusals: one line a ban, which lasts.
	s.cfg.Logger.Warn(why, append([]any{slog.String("user", user), slog.Duration("for", s.cfg.AbuseBan)}, attrs...)...)
	s.goUnlessStopped(func() {
		ctx, cancel := context.WithTimeout(s.ctx, closeTimeout)
		defer cancel()
		if err := s.Ban(ctx, user, s.cfg.AbuseBan); err != nil {
			s.cfg.Logger.Warn("ban a user", slog.String("user", user), slog.Any("error", err))
		}
	})
}

// send tells every node to close the user's connections, and to refuse
// its sign-ins for ban when positive. The message is the user ID, then a
// space and the ban in milliseconds when there is one.
func (s *Service) send(ctx context.Context, user string, ban time.Duration) error {
	if err := contract.CheckUserID(user); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	msg := user
	if ban > 0 {
		msg += " " + strconv.FormatInt(ban.Milliseconds(), 10)
	}
	if err := s.internal.Publish(s.cfg.DisconnectSubject, []byte(msg)); err != nil {
		return fmt.Errorf("disconnect %s: %w", user, err)
	}
	if err := s.internal.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("disconnect %s: %w", user, err)
	}
	return nil
}

// disconnected closes this server's connections of the user a node's
// Disconnect or Ban names, and records the ban.
func (s *Service) disconnected(m *nats.Msg) {
	user, banMs, banned := strings.Cut(string(m.Data), " ")
	if contract.CheckUserID(user) != nil {
		return
	}
	if banned {
		ms, err := strconv.ParseInt(banMs, 10, 64)
		if err != nil || ms <= 0 {
			return
		}
		until := s.bans.ban(user, s.cfg.Now().Add(time.Duration(ms)*time.Millisecond))
		s.cfg.Logger.Warn("refusing a user's sign-ins for a while", slog.String("user", user), slog.Time("until", until))
	}
	if s.conns.closer == nil {
		return
	}
	// Off the subscription's handler: closing on an external server asks
	// it, and the next user's disconnection should not wait for that.
	s.goUnlessStopped(func() {
		n := s.conns.close(s.ctx, user)
		// Every node hears of every user; most have none of hers (or closed
		// the one that set off her ban already).
		level := slog.LevelInfo
		if n == 0 {
			level = slog.LevelDebug
		}
		s.cfg.Logger.Log(s.ctx, level, "disconnected a user's connections", slog.String("user", user), slog.Int("connections", n))
	})
}

// sweep drops, every sweepEvery, the connections that are gone.
func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.conns.sweep(s.cfg.Now())
			s.bans.sweep(s.cfg.Now())
		}
	}
}
