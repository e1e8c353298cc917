// Command natsecho is the benchmark's ceiling: a NATS server embedded the
// way tally-node embeds it, with a responder on an in-process connection
// that answers every request on tally's user subjects: a get at once, as
// tally answers it from memory, and a change (increase, decrease, set) as
// -mode chooses:
//
//   - echo: nothing; it answers with the request's payload (and, as tally,
//     with the request's Content-Type header). No actor, no journal: what
//     request/reply alone costs on the machine.
//   - journal: it appends the request's payload to a file-backed JetStream
//     stream (fsync every second, as tally's --sync=interval) on the
//     group's subject and answers once the append is acknowledged, as
//     tally does. It sends no expected sequence, so the server checks
//     nothing before storing: what one durable append per request costs.
//   - batched-journal: the requests that arrive while the previous append
//     is in flight are stored as ONE message and all answered on its
//     acknowledgement: what a journal that gathers appends costs, with
//     neither per-group subjects nor checks.
//   - atomic-journal: the requests gathered the same way are sent as one
//     JetStream atomic batch, each on its group's subject with the
//     expected last sequence of that subject, as tally sends it, and all
//     answered on the commit's acknowledgement: gathered appends that keep
//     tally's subjects and fencing.
//   - fenced-journal: each group's changes appended in order on its
//     subject with the subject's expected last sequence, one append of a
//     group in flight at a time, the group's changes that arrive meanwhile
//     gathered into its next append (group commit): the journal's work of
//     tally's promises (a fenced, ordered history per group), less tally.
//
// With -cluster, -routes and -shard (journal and atomic-journal modes), it
// is one server of a cluster of natsecho servers: the journal is one
// stream per server (-replicas each, three by default), each led by the
// server of its index, and a change is appended to the stream of its
// group's shard from the server that took the call: a tally cluster's
// work, less tally. In a cluster, the atomic journal gathers each shard's
// calls apart and sends no expected sequence (the servers append to the
// same groups, each unaware of the others' appends).
//
// It prints "natsecho: serving on <url>" once it answers, and stops on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/messages"
)

// The modes of natsecho; the benchmark names its systems nats-echo and
// nats-echo-<mode>.
const (
	modeEcho    = "echo"
	modeJournal = "journal"
	modeBatched = "batched-journal"
	modeAtomic  = "atomic-journal"
	modeFenced  = "fenced-journal"
)

var modes = []string{modeEcho, modeJournal, modeBatched, modeAtomic, modeFenced}

func main() {
	mode := flag.String("mode", modeEcho, "what to do before answering: "+strings.Join(modes, ", "))
	var cl clusterConfig
	flag.StringVar(&cl.listen, "cluster", "", "HOST:PORT: this server's cluster address, in a cluster of natsecho servers (journal and atomic-journal modes)")
	routes := flag.String("routes", "", "every server's cluster address, comma separated, in shard order")
	flag.IntVar(&cl.shard, "shard", 0, "the index of this server's address in -routes: the journal shard it leads")
	flag.IntVar(&cl.replicas, "replicas", 3, "the replicas of each shard's stream")
	flag.Parse()
	if *routes != "" {
		cl.routes = strings.Split(*routes, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *mode, cl, func(url string) { fmt.Println("natsecho: serving on", url) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsecho:", err)
		os.Exit(1)
	}
}

// run serves in mode until ctx ends, in a cluster when cl has a listen
// address, calling ready with the server's client URL once it answers.
func run(ctx context.Context, mode string, cl clusterConfig, ready func(url string)) error {
	if !slices.Contains(modes, mode) {
		return fmt.Errorf("-mode %q: want one of %v", mode, modes)
	}
	clustered := cl.listen != ""
	if clustered && mode != modeJournal && mode != modeAtomic {
		return fmt.Errorf("-cluster: only with -mode %s or %s", modeJournal, modeAtomic)
	}
	// Without the account's subject cache, as tally-node.
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, NoSublistCache: true}
	if mode != modeEcho {
		dir, err := os.MkdirTemp("", "natsecho-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		opts.JetStream, opts.StoreDir, opts.SyncInterval = true, dir, time.Second
	}
	if clustered {
		if err := cl.configure(opts); err != nil {
			return err
		}
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
	var jc *nats.Conn // appends, on a connection of their own
	if mode != modeEcho {
		if jc, err = connect(); err != nil {
			return err
		}
		defer jc.Close()
		if clustered {
			err = cl.createShard(ctx, jc, mode == modeAtomic)
		} else {
			err = createStream(ctx, jc, mode == modeAtomic)
		}
		if err != nil {
			return err
		}
	}
	// The appending loop, if any, ends with ctx and is waited for before
	// the connections close.
	var loops sync.WaitGroup
	defer loops.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	respond := func(m *nats.Msg) { answer(m, m.Data) }
	switch mode {
	case modeJournal:
		subject := journalSubject
		if clustered {
			subject = cl.subjectOf
		}
		if respond, err = appender(jc, subject); err != nil {
			return err
		}
	case modeFenced:
		if respond, err = fencedAppender(jc); err != nil {
			return err
		}
	case modeBatched:
		q := newQueue()
		respond = gather(q)
		loops.Go(func() { appendBatched(ctx, jc, q) })
	case modeAtomic:
		if clustered {
			respond = cl.gatherShards(ctx, jc, &loops)
			break
		}
		q := newQueue()
		respond = gather(q)
		loops.Go(func() { appendAtomic(ctx, jc, q, journalSubject, true) })
	}
	journaled := respond
	respond = func(m *nats.Msg) {
		// tally answers a get from the group's state in memory: so does
		// every mode, at once.
		if strings.HasSuffix(m.Subject, ".get") {
			answer(m, m.Data)
			return
		}
		journaled(m)
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
