package main

import (
	"fmt"
	"strings"
)

// pattern is how the load generator calls a system: conns connections,
// each with inFlight calls in flight. 64x1 is many clients with one call
// each; 1x64 and 4x64 are the service pattern, a back end multiplexing
// concurrent calls on few connections (nats.go's RequestMsg, a pipelining
// Redis client). The load runs conns×inFlight callers, caller w on
// connection w % conns.
type pattern struct {
	conns, inFlight int
}

func (p pattern) String() string { return fmt.Sprintf("%dx%d", p.conns, p.inFlight) }

// callers is the number of calls in flight.
func (p pattern) callers() int { return p.conns * p.inFlight }

// service reports whether p multiplexes calls on its connections.
func (p pattern) service() bool { return p.inFlight > 1 }

// parsePatterns reads a comma-separated list such as "64x1,1x64".
func parsePatterns(s string) ([]pattern, error) {
	var out []pattern
	seen := map[pattern]bool{}
	for _, f := range strings.Split(s, ",") {
		var p pattern
		f = strings.TrimSpace(f)
		if _, err := fmt.Sscanf(f, "%dx%d", &p.conns, &p.inFlight); err != nil || p.String() != f || p.conns < 1 || p.inFlight < 1 {
			return nil, fmt.Errorf("pattern %q: want connections x calls in flight per connection, such as 64x1 or 1x64", f)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}
