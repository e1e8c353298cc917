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
	op    op
	admin bool
	req   micro.Request
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
				g.serve(w.op, w.admin, w.req)
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

func (g *Gateway) handler(o op, admin bool) micro.HandlerFunc {
	return func(req micro.Request) { g.work <- work{o, admin, req} }
}

func (g *Gateway) serve(o op, admin bool, req micro.Request) {
	f := formatJSON
	if req.Headers().Get("Content-Type") == ContentTypeProtobuf {
		f = formatProto
	}
	user := ""
	if !admin {
		user = userOf(req.Subject())
	}
	// The actors bound every call by their own timeout; a context with a
	// deadline here would cost a timer per request.
	reply, err := g.dispatch(context.Background(), o, user, f, req.Data())
	if err != nil {
		g.respondError(req, f, err)
		return
	}
	var opts []micro.RespondOpt
	if f == formatProto {
		opts = append(opts, micro.WithHeaders(micro.Headers{"Content-Type": []string{ContentTypeProtobuf}}))
	}
	if err := req.Respond(encode(f, reply), opts...); err != nil {
		g.cfg.Logger.Warn("respond", slog.String("subject", req.Subject()), slog.Any("error", err))
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

func (g *Gateway) respondError(req micro.Request, f format, err error) {
	code := actorsCode(err)
	body := &messages.Error{Code: int32(code), Message: err.Error()}
	if code == messages.Code_CODE_INTERNAL {
		g.cfg.Logger.Warn("request failed", slog.String("subject", req.Subject()), slog.Any("error", err))
	}
	// The header must be one line.
	desc := strings.ReplaceAll(err.Error(), "\n", " ")
	var opts []micro.RespondOpt
	if f == formatProto {
		opts = append(opts, micro.WithHeaders(micro.Headers{"Content-Type": []string{ContentTypeProtobuf}}))
	}
	if rerr := req.Error(strconv.Itoa(int(code)), desc, encode(f, body), opts...); rerr != nil {
		g.cfg.Logger.Warn("respond", slog.String("subject", req.Subject()), slog.Any("error", rerr))
	}
}
