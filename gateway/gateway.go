package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tallyhq/tally/messages"
)

// Node is what the gateway needs of the actors.
type Node interface {
	Change(ctx context.Context, user, group string, cmd *messages.Change) (*messages.Change, error)
	Get(ctx context.Context, user string, req *messages.GetRequest) (*messages.GetReply, error)
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
	// MaxInFlight is the most requests handled at once, by as many
	// long-lived workers; further requests wait in the subscription's
	// buffer.
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
	work chan work // requests taken, for the workers
	wg   sync.WaitGroup
}

type work struct {
	op      op
	admin   bool
	format  format
	subject string
	reply   string
	data    []byte
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
	g := &Gateway{cfg: cfg, nc: nc, node: node, work: make(chan work, cfg.MaxInFlight)}
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
	// Long-lived workers: a goroutine per request would spend much of its
	// time growing its stack.
	for range cfg.MaxInFlight {
		g.wg.Go(func() {
			for w := range g.work {
				g.serve(w)
			}
		})
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
	// the subscriptions are gone every request taken is in g.work.
	for g.nc.NumSubscriptions() > 0 && !g.nc.IsClosed() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: draining: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(g.work)
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gateway: waiting for requests in flight: %w", ctx.Err())
	}
}

// handler queues a request for the workers. It copies what they need out
// of the micro.Request: micro reads the request's state after the handler
// returns, so the reply must not go through it from another goroutine.
func (g *Gateway) handler(o op, admin bool) micro.HandlerFunc {
	return func(req micro.Request) {
		f := formatJSON
		if req.Headers().Get("Content-Type") == ContentTypeProtobuf {
			f = formatProto
		}
		g.work <- work{op: o, admin: admin, format: f, subject: req.Subject(), reply: req.Reply(), data: req.Data()}
	}
}

func (g *Gateway) serve(w work) {
	user := ""
	if !w.admin {
		user = userOf(w.subject)
	}
	// The actors bound every call by their own timeout; a context with a
	// deadline here would cost a timer per request.
	reply, err := g.dispatch(context.Background(), w.op, user, w.format, w.data)
	msg := &nats.Msg{Subject: w.reply}
	if w.format == formatProto {
		msg.Header = nats.Header{"Content-Type": []string{ContentTypeProtobuf}}
	}
	if err != nil {
		if msg.Header == nil {
			msg.Header = nats.Header{}
		}
		code := actorsCode(err)
		if code == messages.Code_CODE_INTERNAL {
			g.cfg.Logger.Warn("request failed", slog.String("subject", w.subject), slog.Any("error", err))
		}
		// The micro service error headers; the description must be one line.
		msg.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(int(code)))
		msg.Header.Set(micro.ErrorHeader, strings.ReplaceAll(err.Error(), "\n", " "))
		reply = &messages.Error{Code: int32(code), Message: err.Error()}
	}
	if w.reply == "" {
		return // published without a reply subject: nobody to answer
	}
	msg.Data = encode(w.format, reply)
	if err := g.nc.PublishMsg(msg); err != nil {
		g.cfg.Logger.Warn("respond", slog.String("subject", w.subject), slog.Any("error", err))
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
