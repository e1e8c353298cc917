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
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		// An error may quote text from the journal or the command line.
		for line := range strings.Lines(err.Error()) {
			fmt.Fprintln(os.Stderr, "tally-node:", printable(strings.TrimSuffix(line, "\n")))
		}
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
