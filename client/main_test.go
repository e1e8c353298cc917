package client_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/tallyhq/tally/gateway/gatewaytest"
)

// tallyURL is the NATS URL of the tally node the examples talk to.
var tallyURL string

func TestMain(m *testing.M) {
	node, err := gatewaytest.Start(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tallyURL = node.URL
	code := m.Run()
	if err := node.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// groups numbers the groups fresh makes.
var groups atomic.Int64

// fresh returns a group ID made of name that no earlier test wrote to the
// one node the tests share, also under go test -count.
func fresh(name string) string { return fmt.Sprintf("%s-%d", name, groups.Add(1)) }
