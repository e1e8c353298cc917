package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/messages"
)

// Node is what the gateway needs of the actors: calls that answer later,
// so that no goroutine waits for an actor.
type Node interface {
	SubmitChange(user, group string, cmd *messages.Change, reply actors.Reply)
	SubmitGet(user string, req *messages.GetRequest, reply actors.Reply)
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
	}
	return nil
}

// Gateway serves the contract's subjects on a NATS connection.
type Gateway struct {
	cfg  Config
	nc   *nats.Conn
	node Node
	svc  micro.Service
	// slots holds a token for every request taken and not yet answered.
	slots chan struct{}
}

// request is a request taken, on its way through the actors.
type request struct {
	g       *Gateway
	op      op
	format  format
	subject string
	reply   string
}

type op int

const (
	opSet op = iota
	opIncrease
	opDecrease
	opGet
	opDelete
)

var opNames = [...]string{"set", "increase", "decrease", "get", "delete"}

// Start registers the service and its endpoints on nc and starts serving.
// nc should be the gateway's own connection: Stop drains it.
func Start(nc *nats.Conn, node Node, cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, nc: nc, node: node, slots: make(chan struct{}, cfg.MaxInFlight)}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        cfg.Name,
		Version:     cfg.Version,
		Description: "group counters: set, increase, decrease, get; updates on " + cfg.Prefix + ".updates.<group>",
		QueueGroup:  cfg.QueueGroup,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: add service: %w", err)
	}
	g.svc = svc
	user := svc.AddGroup(cfg.Prefix + ".user.*")
	admin := svc.AddGroup(cfg.Prefix + ".admin")
	for o := opSet; o <= opDelete; o++ {
		name := opNames[o]
		if o != opDelete {
			if err := user.AddEndpoint("user-"+name, g.handler(o, false), micro.WithEndpointSubject(name)); err != nil {
				svc.Stop()
				return nil, fmt.Errorf("gateway: endpoint %s: %w", name, err)
			}
		}
		if err := admin.AddEndpoint("admin-"+name, g.handler(o, true), micro.WithEndpointSubject(name)); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("gateway: admin endpoint %s: %w", name, err)
		}
	}
	// Once flushed, the server has every subscription: the service answers
	// from the moment Start returns.
	if err := nc.Flush(); err != nil {
		svc.Stop()
		return nil, fmt.Errorf("gateway: flush subscriptions: %w", err)
	}
	return g, nil
}

// Stop stops taking requests and waits until every request taken has been
// answered, or ctx ends.
func (g *Gateway) Stop(ctx context.Context) error {
	if err := g.svc.Stop(); err != nil {
		return fmt.Errorf("gateway: stop service: %w", err)
	}
	// Draining hands the requests already buffered to the handlers; once
	// the subscriptions are gone every request has been taken.
	for g.nc.NumSubscriptions() > 0 && !g.nc.IsClosed() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: draining: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Holding every slot means every request taken has been answered.
	for range cap(g.slots) {
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("gateway: waiting for requests in flight: %w", ctx.Err())
		}
	}
	return nil
}

// handler hands a request to the actors, which answer it through
// request.respond. It copies what it needs out of the micro.Request: micro
// reads the request's state after the handler returns, so the reply must
// not go through it from another goroutine.
func (g *Gateway) handler(o op, admin bool) micro.HandlerFunc {
	return func(req micro.Request) {
		f := formatJSON
		if req.Headers().Get("Content-Type") == ContentTypeProtobuf {
			f = formatProto
		}
		user := ""
		if !admin {
			user = userOf(req.Subject())
		}
		g.slots <- struct{}{} // released by respond
		r := &request{g: g, op: o, format: f, subject: req.Subject(), reply: req.Reply()}
		g.dispatch(r, user, req.Data())
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
	defer func() { <-g.slots }()
	if r.reply == "" {
		return // published without a reply subject: nobody to answer
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
		code := actorsCode(err)
		if code == messages.Code_CODE_INTERNAL {
			g.cfg.Logger.Warn("request failed", slog.String("subject", r.subject), slog.Any("error", err))
		}
		// The micro service error headers; the description must be one line.
		msg.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(int(code)))
		msg.Header.Set(micro.ErrorHeader, strings.ReplaceAll(err.Error(), "\n", " "))
		reply = &messages.Error{Code: int32(code), Message: err.Error()}
	}
	msg.Data = encode(r.format, reply)
	if err := g.nc.PublishMsg(msg); err != nil {
		g.cfg.Logger.Warn("respond", slog.String("subject", r.subject), slog.Any("error", err))
	}
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
