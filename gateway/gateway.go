package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/metrics"
)

// Node is what the gateway needs of the actors: calls that answer later,
// so that no goroutine waits for an actor.
type Node interface {
	SubmitChange(user, group string, cmd *messages.Change, reply actors.Reply)
	SubmitGet(user string, req *messages.GetRequest, reply actors.Reply)
	// SubmitGetAs runs a get that passed its user's rate limit: a group
	// with members refuses a user who is not one.
	SubmitGetAs(user string, req *messages.GetRequest, reply actors.Reply)
	SubmitList(req *messages.ListMembersRequest, reply actors.Reply)
	// Refused says whether the user is over its limit for the kind of
	// call, so that the gateway refuses it before decoding it.
	Refused(user string, read bool) error
	// Invalid counts a user's request that was refused as malformed
	// toward its flood (actors.Config.Flood): it never reaches the limit.
	Invalid(user string)
	// Admit runs the user's rate limit for a call that goes on to
	// another node (in a cluster).
	Admit(user string, read bool, done func(error))
}

// Config configures a Gateway.
type Config struct {
	// Name and Version identify the micro service; Version must be semver.
	Name    string
	Version string
	// QueueGroup spreads requests over every node of a cluster.
	QueueGroup string
	// Prefix is the subject prefix, "tally.v1".
	Prefix string
	// MaxInFlight is the most requests handled at once; further requests
	// wait in the subscriptions' buffers.
	MaxInFlight int
	Logger      *slog.Logger
	// Ready, when set, says whether the node can serve; $SRV.PING is
	// answered only while it says yes.
	Ready func() bool
	// Router, in a cluster, places each call on the node that serves it;
	// nil serves every call here.
	Router Router
	// Internal, with a Router, is the connection forwarded calls travel
	// on: in the service's own account, out of clients' reach. Replies to
	// clients always go out on the gateway's connection.
	Internal *nats.Conn
	// Leave, when set, runs in Stop once no client request comes in any
	// more and before forwarded calls stop: the node hands its partitions
	// over.
	Leave func(ctx context.Context) error
	// Admin, when set, is the connection the admin subjects and the $SRV
	// subjects are served on, apart from the users' subjects: every
	// connection's messages reach the node in order, so that a flood of
	// users' requests, which the server queues for the gateway's
	// connection, would otherwise hold up every back end's call behind
	// it. Stop drains it; closing it is the caller's.
	Admin *nats.Conn
	// EndUsers, when set, is a connection in the end users' account, on
	// which the users' subjects are served too: a call that comes in there
	// is answered only on the calling user's inbox (_INBOX_<user>.), its
	// reply subject being the caller's choice. Stop drains it; closing it
	// is the caller's.
	EndUsers *nats.Conn
	// History, when set, serves tally.v1.admin.history: a group's changes
	// from change fromSeq on, at most limit, read from the journal (any
	// node reads it, so the call is never forwarded).
	History func(ctx context.Context, group string, fromSeq uint64, limit int) (*messages.HistoryReply, error)
	// Metrics, when set, count requests by operation and result code,
	// their latency, the requests in flight and the calls forwarded.
	Metrics *metrics.Metrics
	// LeaveGrace is how long a node that left still forwards the calls
	// other nodes send it before they know it left.
	LeaveGrace time.Duration
	// Interest, when set, reports whether the server of a connection of
	// the gateway (an end users' one, or not) knows a subscriber of
	// subject in the connection's account. The reply to a call forwarded
	// from another node waits for it (see respond).
	Interest func(endUser bool, subject string) bool
}

// DefaultConfig returns the contract's service.
func DefaultConfig() Config {
	return Config{
		Name:        "tally",
		Version:     "1.0.0",
		QueueGroup:  "tally",
		Prefix:      "tally.v1",
		MaxInFlight: 1024,
		Logger:      slog.Default(),
		LeaveGrace:  time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Name == "" || c.Prefix == "" || c.QueueGroup == "":
		return errors.New("gateway: name, prefix and queue group are required")
	case c.MaxInFlight < 1:
		return fmt.Errorf("gateway: max in flight %d must be at least 1", c.MaxInFlight)
	case c.Logger == nil:
		return errors.New("gateway: no logger")
	case c.Router != nil && c.Internal == nil:
		return errors.New("gateway: a router needs an internal connection")
	}
	return nil
}

// The most users' requests of one endpoint that wait to be taken, and
// their bytes: about 8,000 ordinary requests, but only 130 of 15 KB.
const (
	userPendingMsgs  = 8192
	userPendingBytes = 2 << 20
)

// Gateway serves the contract's subjects on a NATS connection, as a micro
// service.
type Gateway struct {
	cfg       Config
	nc        *nats.Conn // the users' subjects, and forwarded calls' replies
	admin     *nats.Conn // the admin and $SRV subjects: nc, or Config.Admin
	node      Node
	id        string
	started   time.Time
	endpoints []*endpoint
	// endUserSubs serve the users' subjects on Config.EndUsers.
	endUserSubs []*nats.Subscription
	byOp        [2][opHistory + 1]*endpoint // user's, admin's
	control     []*nats.Subscription        // the $SRV subjects
	forwards    *nats.Subscription          // calls other nodes forward, with a Router
	// mapped serves the users' mapped subjects of every partition
	// (contract.UserMapping) without a Router; with one, parts serves
	// those of the partitions whose users' calls should come here, by
	// partition, until Stop closes them (partsClosed). pmu guards both
	// parts and partsClosed.
	mapped      []*nats.Subscription
	pmu         sync.Mutex
	parts       [][]*nats.Subscription
	partsClosed bool
	// unmapped is set once a user's call arrived unmapped in a cluster.
	unmapped atomic.Bool
	root     string // Prefix's first token and a dot: "tally."
	// slots holds a token for every request taken and not yet answered.
	slots chan struct{}
	// reads holds a token for every history being read from the journal.
	reads chan struct{}
}

// request is a request taken, on its way through the actors.
type request struct {
	g       *Gateway
	nc      *nats.Conn // where the reply goes out
	ep      *endpoint
	op      op
	format  format
	subject string
	reply   string
	taken   time.Time
	part    int    // with a Router, the partition entered to serve the call here, or -1
	group   string // a write's group, which its reply names
	// change is an increase's or a decrease's reply, built here rather
	// than allocated.
	change  messages.ChangeReply
	user    string // the calling user; empty on the admin subjects
	endUser bool   // the call came in on Config.EndUsers
	// forwarded: another node forwarded the call here, and the reply goes
	// from this node's server to the client's, another.
	forwarded bool
}

type op int

// The users' operations come first, then the admins' only; history, last,
// is read from the journal by any node.
const (
	opSet op = iota
	opIncrease
	opDecrease
	opGet
	opDelete
	opMembersAdd
	opMembersRemove
	opMembersList
	opHistory
)

var opNames = [...]string{"set", "increase", "decrease", "get", "delete", "members.add", "members.remove", "members.list", "history"}

// Start subscribes to the service's endpoints and the micro protocol's
// $SRV subjects on nc and starts serving. nc should be the gateway's own
// connection: Stop drains it.
func Start(nc *nats.Conn, node Node, cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, nc: nc, admin: cmp.Or(cfg.Admin, nc), node: node, id: nuid.Next(), started: time.Now().UTC(), slots: make(chan struct{}, cfg.MaxInFlight), reads: make(chan struct{}, historyReads)}
	g.root, _, _ = strings.Cut(cfg.Prefix, ".")
	g.root += "."
	for o := opSet; o <= opHistory; o++ {
		if o == opHistory && cfg.History == nil {
			continue
		}
		if o < opDelete {
			if err := g.serve("user-"+opNames[o], cfg.Prefix+".user.*."+opNames[o], o, false); err != nil {
				return nil, err
			}
			if err := g.serveEndUsers(cfg.Prefix+".user.*."+opNames[o], o); err != nil {
				return nil, err
			}
		}
		if err := g.serve("admin-"+opNames[o], cfg.Prefix+".admin."+opNames[o], o, true); err != nil {
			return nil, err
		}
	}
	if cfg.Router == nil {
		var err error
		if g.mapped, err = g.subscribeMapped("*"); err != nil {
			g.unsubscribe()
			return nil, err
		}
	}
	if err := g.discover(); err != nil {
		g.unsubscribe()
		return nil, err
	}
	cfg.Metrics.Gauge("tally_requests_in_flight", "Requests taken and not answered yet.", func() float64 { return float64(len(g.slots)) })
	if cfg.Router != nil {
		sub, err := cfg.Internal.Subscribe(cfg.Router.Inbox(), g.onForward)
		if err != nil {
			g.unsubscribe()
			return nil, fmt.Errorf("gateway: subscribe to forwarded calls: %w", err)
		}
		sub.SetPendingLimits(-1, -1) // bounded by the other nodes' slots
		g.forwards = sub
		g.parts = make([][]*nats.Subscription, contract.Partitions)
		cfg.Router.Watch(g.watch)
		if err := cfg.Internal.Flush(); err != nil {
			g.unsubscribe()
			return nil, fmt.Errorf("gateway: flush subscriptions: %w", err)
		}
	}
	// Once flushed, the server has every subscription: the service answers
	// from the moment Start returns.
	for _, c := range []*nats.Conn{nc, g.admin, cmp.Or(cfg.EndUsers, nc)} {
		if err := c.Flush(); err != nil {
			g.unsubscribe()
			return nil, fmt.Errorf("gateway: flush subscriptions: %w", err)
		}
	}
	return g, nil
}

func (g *Gateway) serve(name, subject string, o op, admin bool) error {
	e := &endpoint{name: name, subject: subject, metrics: g.cfg.Metrics.Endpoint(opNames[o], admin)}
	nc := g.nc
	if admin {
		nc = g.admin
	}
	sub, err := nc.QueueSubscribe(subject, g.cfg.QueueGroup, g.handler(nc, e, o, admin))
	if err != nil {
		g.unsubscribe()
		return fmt.Errorf("gateway: endpoint %s: %w", subject, err)
	}
	if !admin {
		// What waits here waits behind every request before it: a flood
		// of large requests is dropped here, at a bounded delay for the
		// other users' requests, rather than queued.
		if err := sub.SetPendingLimits(userPendingMsgs, userPendingBytes); err != nil {
			g.unsubscribe()
			return fmt.Errorf("gateway: endpoint %s: %w", subject, err)
		}
	}
	e.sub = sub
	g.endpoints = append(g.endpoints, e)
	if admin {
		g.byOp[1][o] = e
	} else {
		g.byOp[0][o] = e
	}
	return nil
}

// serveEndUsers serves a users' subject on Config.EndUsers too, counted
// with the users' endpoint of the operation.
func (g *Gateway) serveEndUsers(subject string, o op) error {
	if g.cfg.EndUsers == nil {
		return nil
	}
	e := g.byOp[0][o]
	sub, err := g.cfg.EndUsers.QueueSubscribe(subject, g.cfg.QueueGroup, g.handler(g.cfg.EndUsers, e, o, false))
	if err == nil {
		err = sub.SetPendingLimits(userPendingMsgs, userPendingBytes)
	}
	if err != nil {
		g.unsubscribe()
		return fmt.Errorf("gateway: end users' endpoint %s: %w", subject, err)
	}
	g.endUserSubs = append(g.endUserSubs, sub)
	return nil
}

func (g *Gateway) unsubscribe() {
	for _, e := range g.endpoints {
		e.sub.Unsubscribe()
	}
	for _, s := range g.control {
		s.Unsubscribe()
	}
	for _, s := range g.endUserSubs {
		s.Unsubscribe()
	}
	for _, s := range g.mapped {
		s.Unsubscribe()
	}
	for _, s := range g.closeParts() {
		s.Unsubscribe()
	}
	if g.forwards != nil {
		g.forwards.Unsubscribe()
	}
}

// Stop stops taking requests and waits until every request taken has been
// answered, or ctx ends.
func (g *Gateway) Stop(ctx context.Context) error {
	for _, s := range g.control {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("gateway: stop %s: %w", s.Subject, err)
		}
	}
	// Draining hands the requests already buffered to the handlers; once
	// the subscriptions are gone every request has been taken.
	subs := slices.Concat(g.endUserSubs, g.mapped)
	for _, e := range g.endpoints {
		subs = append(subs, e.sub)
	}
	if err := drain(ctx, subs); err != nil {
		return err
	}
	var err error
	if g.cfg.Leave != nil {
		err = g.cfg.Leave(ctx)
	}
	if g.forwards != nil {
		// Other nodes learn within moments that this one left; until then
		// they may still forward calls here, and the servers deliver its
		// partitions' users' calls here until the new owners subscribe:
		// this node forwards them on to the partitions' new owners rather
		// than drop them.
		select {
		case <-ctx.Done():
		case <-time.After(g.cfg.LeaveGrace):
		}
		if derr := drain(ctx, append(g.closeParts(), g.forwards)); derr != nil {
			return errors.Join(err, derr)
		}
	}
	// Holding every slot and every read means every request taken has
	// been answered.
	for _, c := range []chan struct{}{g.slots, g.reads} {
		for range cap(c) {
			select {
			case c <- struct{}{}:
			case <-ctx.Done():
				return errors.Join(err, fmt.Errorf("gateway: waiting for requests in flight: %w", ctx.Err()))
			}
		}
	}
	return err
}

// handler hands a request to the actors, which answer it through
// request.respond.
func (g *Gateway) handler(nc *nats.Conn, e *endpoint, o op, admin bool) nats.MsgHandler {
	return func(m *nats.Msg) {
		f := formatJSON
		if m.Header.Get("Content-Type") == ContentTypeProtobuf {
			f = formatProto
		}
		user := ""
		if !admin {
			user = userOf(m.Subject)
			if g.cfg.Router != nil && !g.unmapped.Load() && strings.HasPrefix(m.Subject, g.cfg.Prefix+".user.") && g.unmapped.CompareAndSwap(false, true) {
				g.cfg.Logger.Info("users' calls arrive without the servers' mapping to their partitions (docs/clustering.md): each takes up to two forwards between nodes rather than one", slog.String("subject", m.Subject))
			}
		}
		r := &request{g: g, nc: nc, ep: e, op: o, format: f, subject: m.Subject, reply: m.Reply, taken: time.Now(), part: -1, user: user,
			endUser: nc == g.cfg.EndUsers}
		if r.endUser && !contract.IsInboxOf(m.Reply, user) {
			// Another user's inbox, an update subject: not the caller's to
			// name. It goes unanswered and counts as a malformed call.
			g.node.Invalid(user)
			return
		}
		if o == opHistory {
			// A history holds one of the journal reads, not a request
			// slot: histories wait here, on their own subscription, and
			// never hold up other calls.
			g.reads <- struct{}{} // released by respond
			go g.history(r, m.Data)
			return
		}
		g.slots <- struct{}{} // released by respond
		if g.cfg.Router != nil {
			g.route(r, user, m.Data, 0)
			return
		}
		if err := g.node.Refused(user, o == opGet); err != nil {
			r.respond(nil, err) // a user over its limit costs no decoding and no actor
			return
		}
		g.dispatch(r, user, m.Data)
	}
}

// protoHeader is the header of every protobuf reply but an error's. One
// map serves them all: publishing only reads it.
var protoHeader = nats.Header{"Content-Type": []string{ContentTypeProtobuf}}

// respond publishes the reply to a request, or its error, and frees its
// slot. It runs on an actor's goroutine, or the handler's for a request
// refused before it reached an actor.
func (r *request) respond(reply proto.Message, err error) {
	g := r.g
	defer func() {
		if r.part >= 0 {
			g.cfg.Router.Exit(r.part)
		}
		if r.op == opHistory {
			<-g.reads
		} else {
			<-g.slots
		}
	}()
	code := messages.Code(0)
	if err != nil {
		code = actorsCode(err)
	}
	if r.user != "" && (code == messages.Code_CODE_INVALID_PARAMETER || code == messages.Code_CODE_INVALID_GROUP_ID) {
		g.node.Invalid(r.user)
	}
	r.ep.done(time.Since(r.taken), err, code)
	if r.reply == "" {
		return // published without a reply subject: nobody to answer
	}
	if !g.replyAllowed(r.reply) {
		g.cfg.Logger.Debug("no reply to a subject of the service's own", slog.String("subject", r.subject), slog.String("reply", r.reply))
		return
	}
	msg := &nats.Msg{Subject: r.reply}
	if r.format == formatProto {
		msg.Header = protoHeader // read only
	}
	if err != nil {
		msg.Header = nats.Header{}
		if r.format == formatProto {
			msg.Header.Set("Content-Type", ContentTypeProtobuf)
		}
		if code == messages.Code_CODE_INTERNAL {
			g.cfg.Logger.Warn("request failed", slog.String("subject", r.subject), slog.Any("error", err))
		}
		// The micro service error headers; the description must be one line.
		msg.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(int(code)))
		msg.Header.Set(micro.ErrorHeader, strings.ReplaceAll(err.Error(), "\n", " "))
		reply = &messages.Error{Code: int32(code), Message: err.Error()}
	}
	buf := replyBufs.Get().(*[]byte)
	data := appendEncoded((*buf)[:0], r.format, reply)
	msg.Data = data
	if r.forwarded && g.cfg.Interest != nil && !g.cfg.Interest(r.endUser, r.reply) {
		// The client's server tells the others of its reply inbox when the
		// client subscribes to it, on its own routes, while its request
		// came here through another node: on a new connection's first
		// call, the reply can get here first, and the server would drop
		// it. It waits for the subscriber, out of the actors' way.
		msg.Data = slices.Clone(data)
		go g.publishOnceHeard(r.nc, r.endUser, r.subject, msg)
	} else if err := r.nc.PublishMsg(msg); err != nil {
		g.cfg.Logger.Warn("respond", slog.String("subject", r.subject), slog.Any("error", err))
	}
	if cap(data) <= 1<<16 { // a large history reply is not kept
		*buf = data[:0]
		replyBufs.Put(buf)
	}
}

// replyWait bounds how long a forwarded call's reply waits for the
// server to hear of its subscriber; past it, the reply is sent anyway
// (the client may be gone).
const replyWait = 500 * time.Millisecond

// publishOnceHeard publishes msg once the server of nc knows a
// subscriber of its subject, or replyWait passed.
func (g *Gateway) publishOnceHeard(nc *nats.Conn, endUser bool, request string, msg *nats.Msg) {
	for deadline := time.Now().Add(replyWait); !g.cfg.Interest(endUser, msg.Subject) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // polling the server's interest, which tells no one
	}
	if err := nc.PublishMsg(msg); err != nil {
		g.cfg.Logger.Warn("respond", slog.String("subject", request), slog.Any("error", err))
	}
}

// replyAllowed refuses reply subjects under the contract's first token
// (tally.) and the server's $ subjects: a reply there would be a request
// or an update of the service's own, or a JetStream or system call. A
// requester's inbox never is.
func (g *Gateway) replyAllowed(reply string) bool {
	return !strings.HasPrefix(reply, "$") && !strings.HasPrefix(reply, g.root)
}

// userOf returns the <user> token of prefix.user.<user>.<op>.
func userOf(subject string) string {
	end := strings.LastIndexByte(subject, '.')
	if end < 0 {
		return ""
	}
	start := strings.LastIndexByte(subject[:end], '.')
	return subject[start+1 : end]
}
