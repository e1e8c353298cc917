package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsCounters drives JetStream's native counters (a stream with
// AllowMsgCounter, Nats-Incr headers): increases only, no rate limit, no
// compare-and-set, so only w1 and w2. Caller w publishes on connection
// w % connections.
type natsCounters struct {
	conns []*nats.Conn
	js    []jetstream.JetStream
}

func newNATSCounters(url string, conns int) (*natsCounters, error) {
	ncs, err := dialNATS(url, conns)
	if err != nil {
		return nil, err
	}
	n := &natsCounters{conns: ncs, js: make([]jetstream.JetStream, conns)}
	for i, nc := range ncs {
		if n.js[i], err = jetstream.New(nc); err != nil {
			n.close()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = n.js[0].CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "COUNTERS", Subjects: []string{"counters.>"}, Storage: jetstream.FileStorage,
		AllowMsgCounter: true, AllowDirect: true,
	})
	if err != nil {
		n.close()
		return nil, fmt.Errorf("counter stream: %w", err)
	}
	return n, nil
}

func (n *natsCounters) close() { closeAll(n.conns) }

var incrHeader = nats.Header{"Nats-Incr": []string{"1"}}

func (n *natsCounters) workload(name string) op {
	subjects := names("counters.w1-", w1Groups)
	return func(w int, i uint64) error {
		subj := "counters.w2-hot"
		if name == "w1" {
			subj = subjects[i%w1Groups]
		}
		ctx, cancel := context.WithTimeout(context.Background(), reqTimout)
		defer cancel()
		_, err := n.js[w%len(n.js)].PublishMsg(ctx, &nats.Msg{Subject: subj, Header: incrHeader})
		return err
	}
}
