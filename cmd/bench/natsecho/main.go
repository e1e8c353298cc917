// Command natsecho is the benchmark's ceiling: a NATS server embedded the
// way tally-node embeds it, with a responder on an in-process connection
// that answers every request on tally's user subjects with its own payload
// (and, as tally, with the request's Content-Type header).
// No actor, no journal: what request/reply alone costs on the machine.
//
// With -journal it is the ceiling of a journaled service: before
// answering, the responder appends the request's payload to a file-backed
// JetStream stream (fsync every second, as tally's --sync=interval) on the
// group's subject, and answers once the append is acknowledged, as tally
// does. It keeps no state and sends no expected sequence, so the server
// checks nothing before storing: what one durable append per request costs.
//
// It prints "natsecho: serving on <url>" once it answers, and stops on
// SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/messages"
)

func main() {
	journal := flag.Bool("journal", false, "append each request to a JetStream stream before answering")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *journal, func(url string) { fmt.Println("natsecho: serving on", url) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsecho:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, calling ready with the server's client URL
// once it answers.
func run(ctx context.Context, journal bool, ready func(url string)) error {
	// Without the account's subject cache, as tally-node.
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, NoSublistCache: true}
	if journal {
		dir, err := os.MkdirTemp("", "natsecho-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		opts.JetStream, opts.StoreDir, opts.SyncInterval = true, dir, time.Second
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		return errors.New("server not ready")
	}
	defer ns.Shutdown()
	connect := func() (*nats.Conn, error) { return nats.Connect("", nats.InProcessServer(ns)) }
	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	respond := func(m *nats.Msg) { answer(m, m.Data) }
	if journal {
		jc, err := connect()
		if err != nil {
			return err
		}
		defer jc.Close()
		if respond, err = appender(ctx, jc); err != nil {
			return err
		}
	}
	sub, err := nc.QueueSubscribe("tally.v1.user.*.*", "echo", respond)
	if err != nil {
		return err
	}
	sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		return err
	}
	ready(ns.ClientURL())
	<-ctx.Done()
	return nil
}

// appender creates the stream and returns a handler that appends each
// request to it and answers the request when the append is acknowledged,
// with the acknowledgement's body: one subscription takes every
// acknowledgement, and the reply subject of an append names its request.
func appender(ctx context.Context, jc *nats.Conn) (func(*nats.Msg), error) {
	js, err := jetstream.New(jc)
	if err != nil {
		return nil, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "ECHO_JOURNAL", Subjects: []string{"echo.journal.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, fmt.Errorf("create stream: %w", err)
	}
	var (
		mu      sync.Mutex
		next    uint64
		waiting = map[uint64]*nats.Msg{}
	)
	const ackPrefix = "echo.ack."
	ack, err := jc.Subscribe(ackPrefix+"*", func(a *nats.Msg) {
		id, err := strconv.ParseUint(a.Subject[len(ackPrefix):], 10, 64)
		if err != nil {
			return
		}
		mu.Lock()
		req := waiting[id]
		delete(waiting, id)
		mu.Unlock()
		switch {
		case req == nil:
		case bytes.Contains(a.Data, []byte(`"error"`)) || len(a.Data) == 0:
			fail(req, "append failed: "+string(a.Data))
		default:
			answer(req, a.Data)
		}
	})
	if err != nil {
		return nil, err
	}
	ack.SetPendingLimits(-1, -1)
	return func(m *nats.Msg) {
		var req messages.ChangeRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil || req.GetGroupId() == "" {
			fail(m, "not a change request with a group")
			return
		}
		mu.Lock()
		next++
		id := next
		waiting[id] = m
		mu.Unlock()
		if err := jc.PublishMsg(&nats.Msg{
			Subject: "echo.journal." + req.GetGroupId(), Reply: ackPrefix + strconv.FormatUint(id, 10), Data: m.Data,
		}); err != nil {
			mu.Lock()
			delete(waiting, id)
			mu.Unlock()
			fail(m, err.Error())
		}
	}, nil
}

// answer answers m with data, with the Content-Type header tally's
// replies carry when the request has it, so that the client decodes the
// same reply headers as tally's.
func answer(m *nats.Msg, data []byte) {
	res := &nats.Msg{Data: data}
	if m.Header.Get("Content-Type") == gateway.ContentTypeProtobuf {
		res.Header = protoHeader // read only
	}
	m.RespondMsg(res)
}

var protoHeader = nats.Header{"Content-Type": []string{gateway.ContentTypeProtobuf}}

// fail answers m with the service error headers tally uses, which the
// benchmark counts as a failed call.
func fail(m *nats.Msg, why string) {
	m.RespondMsg(&nats.Msg{Header: nats.Header{
		micro.ErrorCodeHeader: []string{strconv.Itoa(int(messages.Code_CODE_INTERNAL))}, micro.ErrorHeader: []string{why},
	}})
}
