// Command node runs a tally node: by default with a NATS server and
// JetStream embedded (data in ./data, clients on 127.0.0.1:4222), or, with
// --nats-url, on an existing NATS server or cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tally-node:", err)
		os.Exit(1)
	}
}
