package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

// linInput is one call of the history: a write or a get of counter k of
// a group.
type linInput struct {
	group  string
	op     string // set, increase, decrease, get
	amount int64
}

// linOutput is what the call returned: the counter's value after a write
// or as read, or unknown for a write that was never answered.
type linOutput struct {
	value   int64
	unknown bool
}

// counterModel is one counter per group, starting at 0 (an absent key).
var counterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byGroup := map[string][]porcupine.Operation{}
		for _, op := range history {
			g := op.Input.(linInput).group
			byGroup[g] = append(byGroup[g], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byGroup {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(int64), input.(linInput), output.(linOutput)
		next := s
		switch in.op {
		case "set":
			next = in.amount
		case "increase":
			next = s + in.amount
		case "decrease":
			next = s - in.amount
		}
		return out.unknown || out.value == next, next
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if out.unknown {
			return fmt.Sprintf("%s %s %d -> ?", in.group, in.op, in.amount)
		}
		return fmt.Sprintf("%s %s %d -> %d", in.group, in.op, in.amount, out.value)
	},
}

// history collects the operations of concurrent clients.
type history struct {
	mu  sync.Mutex
	ops []porcupine.Operation
}

func (h *history) add(client int, in linInput, call, ret time.Time, out linOutput) {
	op := porcupine.Operation{ClientId: client, Input: in, Call: call.UnixNano(), Output: out, Return: ret.UnixNano()}
	if out.unknown {
		op.Return = math.MaxInt64 // it may take effect at any time after its call
	}
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// runClient makes random calls on a few groups until stop is closed. A
// write is retried under its request ID until answered (for at most 30 s)
// and counts from its first attempt to its answer; a get that fails is
// left out, since it constrains nothing.
func runClient(t *testing.T, id int, a *client.Admin, groups []string, h *history, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	ctx := context.Background()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		in := linInput{group: groups[rng.IntN(len(groups))]}
		switch r := rng.IntN(10); {
		case r < 4:
			in.op, in.amount = "increase", int64(1+rng.IntN(5))
		case r < 5:
			in.op, in.amount = "decrease", int64(1+rng.IntN(5))
		case r < 6:
			in.op, in.amount = "set", int64(rng.IntN(100))
		default:
			in.op = "get"
		}
		call := time.Now()
		if in.op == "get" {
			got, err := a.GetGroupCounters(ctx, in.group, "k")
			if err == nil {
				h.add(id, in, call, time.Now(), linOutput{value: got["k"]})
			}
			continue
		}
		rid := client.WithRequestID(fmt.Sprintf("c%d-%d", id, seq))
		out := linOutput{unknown: true}
		for deadline := call.Add(30 * time.Second); time.Now().Before(deadline); {
			var v int64
			var err error
			switch in.op {
			case "set":
				_, err = a.SetGroupCounters(ctx, in.group, map[string]int64{"k": in.amount}, rid)
				v = in.amount
			case "increase":
				v, err = a.IncreaseGroupCounter(ctx, in.group, "k", in.amount, rid)
			case "decrease":
				v, err = a.DecreaseGroupCounter(ctx, in.group, "k", in.amount, rid)
			}
			if err == nil {
				out = linOutput{value: v}
				break
			}
			if errors.Is(err, client.ErrInvalidParameter) {
				t.Errorf("client %d: %s %s: %v", id, in.op, in.group, err)
				return
			}
			time.Sleep(20 * time.Millisecond) // a client's back-off
		}
		h.add(id, in, call, time.Now(), out)
	}
}

// TestClusterLinearizable runs random sets, increases, decreases and gets
// on twelve groups from two clients on every node of a cluster while one
// node is killed with SIGKILL and started again, one is paused with
// SIGSTOP for longer than a lease and resumed, and one is stopped with
// SIGTERM and started again. Porcupine must find the history of every
// group linearizable.
func TestClusterLinearizable(t *testing.T) {
	checkLinearizable(t, startCluster(t, 3, false))
}

// TestExternalClusterLinearizable is the same on three nodes that use an
// existing three-server NATS cluster, which the faults leave alone: a
// paused or killed node's leases lapse while the journal stays up.
func TestExternalClusterLinearizable(t *testing.T) {
	checkLinearizable(t, startExternalCluster(t))
}

func checkLinearizable(t *testing.T, c *testCluster) {
	// Enough groups that every node holds some.
	var groups []string
	for i := range 12 {
		groups = append(groups, fmt.Sprintf("lin-%d", i))
	}
	h := &history{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 * len(c.members) {
		// One client per node notices a dead server fast and moves on; the
		// other keeps nats.go's default ping of 2 minutes, so that it stays
		// on a paused server and its calls reach that node when it resumes.
		nc := c.connect(i % len(c.members))
		if i >= len(c.members) {
			nc = c.connectWith(i % len(c.members))
		}
		a, err := client.NewAdmin(nc, client.WithTimeout(time.Second), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { runClient(t, i, a, groups, h, stop) })
	}
	progress := func(n int) {
		t.Helper()
		h.mu.Lock()
		want := len(h.ops) + n
		h.mu.Unlock()
		journaltest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.ops) < want {
				return fmt.Errorf("%d calls recorded, want %d", len(h.ops), want)
			}
			return nil
		})
	}
	progress(100)

	killed := c.members[0]
	if err := killed.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-killed.p.done
	c.restart(killed)
	progress(100)

	paused := c.members[1]
	if err := sigstop(t, paused.p.cmd.Process); err != nil {
		t.Fatal(err)
	}
	// Longer than a lease (4 s): the others take its partitions meanwhile.
	pause := time.Now()
	progress(50)
	time.Sleep(6*time.Second - time.Since(pause)) // the pause is the fault itself
	if err := sigcont(paused.p.cmd.Process); err != nil {
		t.Fatal(err)
	}
	progress(100)

	stopped := c.members[2]
	if err := stopped.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := stopped.p.wait(t); code != 0 {
		t.Errorf("%s exited %d after SIGTERM", stopped.name, code)
	}
	c.restart(stopped)
	progress(100)
	close(stop)
	wg.Wait()

	h.mu.Lock()
	ops := h.ops
	h.mu.Unlock()
	unknown := 0
	for _, op := range ops {
		if op.Output.(linOutput).unknown {
			unknown++
		}
	}
	res, info := porcupine.CheckOperationsVerbose(counterModel, ops, time.Minute)
	t.Logf("%d calls (%d writes never answered), porcupine: %s", len(ops), unknown, res)
	if res != porcupine.Ok {
		if path := t.TempDir() + "/history.html"; porcupine.VisualizePath(counterModel, info, path) == nil {
			t.Logf("history: %s", path)
		}
		t.Errorf("porcupine says %s: the history is not linearizable", res)
	}
}
