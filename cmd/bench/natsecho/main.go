// Command natsecho is the benchmark's ceiling: a NATS server embedded the
// way tally-node embeds it, with a responder on an in-process connection
// that answers every request on tally's user subjects with its own payload
// at once. No actor, no journal: what request/reply alone costs on the
// machine.
//
// It prints "natsecho: serving on <url>" once it answers, and stops on
// SIGINT or SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "natsecho:", err)
		os.Exit(1)
	}
}

func run() error {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		return fmt.Errorf("server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.QueueSubscribe("tally.v1.user.*.*", "echo", func(m *nats.Msg) {
		m.Respond(m.Data)
	})
	if err != nil {
		return err
	}
	sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		return err
	}
	fmt.Println("natsecho: serving on", ns.ClientURL())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	return nil
}
