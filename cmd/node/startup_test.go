package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// runToExit runs the node with args until it exits and returns its exit
// code and its output.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestSecondNodeOnOneDataDirectory starts a node on a data directory that
// a running node holds: it exits at once, naming the directory and the
// holder's process ID, and the first node goes on serving.
func TestSecondNodeOnOneDataDirectory(t *testing.T) {
	data := t.TempDir()
	first := startProc(t, "--data", data, "--listen", "127.0.0.1:0")
	code, out := runToExit(t, "--data", data, "--listen", "127.0.0.1:0")
	if code == 0 {
		t.Fatalf("second node exited 0:\n%s", out)
	}
	pid := strconv.Itoa(first.cmd.Process.Pid)
	if !strings.Contains(out, data) || !strings.Contains(out, "process "+pid) {
		t.Errorf("second node's output does not name %s and process %s:\n%s", data, pid, out)
	}
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, first.url))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := admin.IncreaseGroupCounter(context.Background(), "g", "k", 1); err != nil || v != 1 {
		t.Errorf("first node after the second's attempt: increase = %d, %v", v, err)
	}
}

// TestStartFailures gives the node a port that is taken and a store it
// cannot use: each ends start-up with a non-zero exit and the NATS
// server's own reason.
func TestStartFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	blocked := t.TempDir()
	if err := os.WriteFile(filepath.Join(blocked, "jetstream"), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"taken port", []string{"--data", t.TempDir(), "--listen", l.Addr().String()}, "address already in use"},
		{"store is not a directory", []string{"--data", blocked, "--listen", "127.0.0.1:0"}, "JetStream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runToExit(t, tt.args...)
			if code == 0 {
				t.Fatalf("node exited 0:\n%s", out)
			}
			if !strings.Contains(out, tt.want) || strings.Contains(out, "is the port taken") {
				t.Errorf("output does not give the server's reason (%q):\n%s", tt.want, out)
			}
		})
	}
}

// TestSignalDuringStartUp fills a journal with 200,000 recent events, so
// that a node's start-up spends a while reading back their request IDs,
// and sends SIGINT once the node's NATS server has started: the node stops
// without serving, saying so, and exits 0.
func TestSignalDuringStartUp(t *testing.T) {
	data := t.TempDir()
	func() {
		n, nc := inProcess(t, data)
		defer n.Stop(context.Background()) // the data directory is the next node's
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200_000 {
			ev, err := proto.Marshal(&messages.Event{
				UnixNano: time.Now().UnixNano(),
				Changes:  []*messages.Change{{Seq: 1, Op: messages.Op_OP_INCREASE, Key: "k", Amount: 1, Value: 1, RequestId: strconv.Itoa(i)}},
				State:    &messages.GroupState{Counters: map[string]int64{"k": 1}, Version: 1},
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.PublishAsync("tally.journal.g"+strconv.Itoa(i), ev); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			t.Fatal("writing the events timed out")
		}
	}()

	cmd := exec.Command(binary, "--data", data, "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "embedded NATS server started") {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	if err != nil {
		t.Errorf("node exit after SIGINT during start-up = %v, want 0\n%s", err, log.String())
	}
	if strings.Contains(stdout.String(), "serving on") || !strings.Contains(log.String(), "stopped during start-up") {
		t.Errorf("the node did not stop during start-up:\nstdout %s\n%s", stdout.String(), log.String())
	}
}
