package gateway

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/metrics"
)

// The gateway answers the micro protocol's $SRV subjects itself, so that
// `nats micro` and micro clients find it: the replies leave from the
// actors' goroutines, after micro's handler would have returned, so micro's
// own statistics could count neither errors nor processing time.

// endpoint is one served subject and its statistics.
type endpoint struct {
	name, subject string
	sub           *nats.Subscription

	metrics   *metrics.Endpoint
	requests  atomic.Int64
	errors    atomic.Int64
	nanos     atomic.Int64 // from taking a request to its reply, summed
	mu        sync.Mutex
	lastError string
}

// done records a reply, sent after taking the request for elapsed, with
// its error and that error's code (0 for none).
func (e *endpoint) done(elapsed time.Duration, err error, code messages.Code) {
	e.metrics.Done(elapsed, code)
	e.requests.Add(1)
	e.nanos.Add(int64(elapsed))
	if err != nil {
		e.errors.Add(1)
		e.mu.Lock()
		e.lastError = err.Error()
		e.mu.Unlock()
	}
}

func (e *endpoint) stats(queue string) *micro.EndpointStats {
	s := &micro.EndpointStats{
		Name: e.name, Subject: e.subject, QueueGroup: queue,
		NumRequests: int(e.requests.Load()), NumErrors: int(e.errors.Load()),
		ProcessingTime: time.Duration(e.nanos.Load()),
	}
	if s.NumRequests > 0 {
		s.AverageProcessingTime = s.ProcessingTime / time.Duration(s.NumRequests)
	}
	e.mu.Lock()
	s.LastError = e.lastError
	e.mu.Unlock()
	return s
}

// discover subscribes to $SRV.<verb>, $SRV.<verb>.<name> and
// $SRV.<verb>.<name>.<id> for PING, INFO and STATS.
func (g *Gateway) discover() error {
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		for _, subject := range []string{
			micro.APIPrefix + "." + verb.String(),
			micro.APIPrefix + "." + verb.String() + "." + g.cfg.Name,
			micro.APIPrefix + "." + verb.String() + "." + g.cfg.Name + "." + g.id,
		} {
			sub, err := g.admin.Subscribe(subject, g.answer(verb))
			if err != nil {
				return fmt.Errorf("gateway: subscribe to %s: %w", subject, err)
			}
			g.control = append(g.control, sub)
		}
	}
	return nil
}

func (g *Gateway) identity() micro.ServiceIdentity {
	return micro.ServiceIdentity{Name: g.cfg.Name, ID: g.id, Version: g.cfg.Version, Metadata: map[string]string{}}
}

// answer replies to one verb. A node that is not ready does not answer
// PING, so that a client or a supervisor pinging the service finds only
// nodes that can serve.
func (g *Gateway) answer(verb micro.Verb) nats.MsgHandler {
	return func(m *nats.Msg) {
		var res any
		switch verb {
		case micro.PingVerb:
			if g.cfg.Ready != nil && !g.cfg.Ready() {
				return
			}
			res = micro.Ping{ServiceIdentity: g.identity(), Type: micro.PingResponseType}
		case micro.InfoVerb:
			info := micro.Info{ServiceIdentity: g.identity(), Type: micro.InfoResponseType, Description: g.description()}
			for _, e := range g.endpoints {
				info.Endpoints = append(info.Endpoints, micro.EndpointInfo{Name: e.name, Subject: e.subject, QueueGroup: g.cfg.QueueGroup, Metadata: map[string]string{}})
			}
			res = info
		case micro.StatsVerb:
			stats := micro.Stats{ServiceIdentity: g.identity(), Type: micro.StatsResponseType, Started: g.started}
			for _, e := range g.endpoints {
				stats.Endpoints = append(stats.Endpoints, e.stats(g.cfg.QueueGroup))
			}
			res = stats
		}
		data, err := json.Marshal(res)
		if err != nil {
			panic(fmt.Sprintf("gateway: marshal %T: %v", res, err)) // our own plain structs
		}
		if err := m.Respond(data); err != nil {
			g.cfg.Logger.Warn("answer", slog.String("subject", m.Subject), slog.Any("error", err))
		}
	}
}

func (g *Gateway) description() string {
	return "group counters: set, increase, decrease, get; updates on " + g.cfg.Prefix + ".updates.<group>"
}
