package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tallyhq/tally/journal/journaltest"
)

// binary is the node built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tally-node-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tally-node")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tally-node:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process to write while a test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running node process.
type proc struct {
	cmd    *exec.Cmd
	args   []string
	url    string
	urls   chan string
	stderr *syncBuffer
	done   chan struct{}
	err    error // the process's exit, once done is closed
}

// startProc starts the node with args and waits until it serves.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := launch(t, args...)
	p.serving(t)
	return p
}

// launch starts the node with args; serving waits until it serves.
func launch(t *testing.T, args ...string) *proc {
	t.Helper()
	return launchEnv(t, nil, args...)
}

// launchEnv is launch with variables added to the test's environment.
func launchEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), args: args, stderr: &syncBuffer{}, done: make(chan struct{}), urls: make(chan string, 1)}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "tally: serving on "); ok {
				p.urls <- url
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() || os.Getenv("TALLY_TEST_LOGS") == "1" {
			t.Logf("node %v stderr:\n%s", args, p.stderr)
		}
	})
	return p
}

// serving waits until the node serves, at most a minute.
func (p *proc) serving(t *testing.T) {
	t.Helper()
	select {
	case p.url = <-p.urls:
	case <-p.done:
		t.Fatalf("node %v exited before serving: %v\n%s", p.args, p.err, p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("node %v not serving after 60 s\n%s", p.args, p.stderr)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("node did not exit within 60 s")
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func TestPingOnceServing(t *testing.T) {
	p := startProc(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	nc := journaltest.ConnectURL(t, p.url)
	m, err := nc.Request("$SRV.PING.tally", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("$SRV.PING.tally: %v", err)
	}
	if !strings.Contains(string(m.Data), `"name":"tally"`) {
		t.Errorf("$SRV.PING.tally = %s", m.Data)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code after SIGINT = %d, want 0", code)
	}
}

func TestBadConfiguration(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clustered := filepath.Join(t.TempDir(), "clustered.conf")
	if err := os.WriteFile(clustered, []byte("listen: 127.0.0.1:-1\ncluster { listen: 127.0.0.1:-1 }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown sync", []string{"--sync", "sometimes"}, nil, `--sync "sometimes"`},
		{"sync from the environment", nil, []string{"TALLY_SYNC=never"}, `--sync "never"`},
		{"negative passivation", []string{"--passivate-after", "-1s"}, nil, "--passivate-after"},
		{"zero actor idle", []string{"--actor-idle", "0s"}, nil, "--actor-idle"},
		{"negative journal shards", []string{"--journal-shards", "-1"}, nil, "--journal-shards -1"},
		{"too many journal shards", []string{"--journal-shards", "100000"}, nil, "--journal-shards 100000"},
		{"journal shards from the environment", nil, []string{"TALLY_JOURNAL_SHARDS=three"}, "$TALLY_JOURNAL_SHARDS"},
		{"bad duration in the environment", nil, []string{"TALLY_DEDUPE_WINDOW=soon"}, "$TALLY_DEDUPE_WINDOW"},
		{"data is a file", []string{"--data", file}, nil, "cannot create it"},
		{"bad listen address", []string{"--listen", "nowhere"}, nil, "--listen"},
		{"unknown flag", []string{"--colour"}, nil, "flag provided but not defined"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
		{"a cluster in the NATS configuration alone", []string{"--nats-config", clustered}, nil, "give the node --cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, tt.args...)
			cmd.Env = append(os.Environ(), tt.env...)
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("node %v exited with %v, want a non-zero code", tt.args, err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output %q does not mention %q", out, tt.want)
			}
		})
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	env := map[string]string{"TALLY_SYNC": "always", "TALLY_PASSIVATE_AFTER": "1m", "TALLY_DATA": "/srv/tally"}
	c, err := parseConfig([]string{"--sync", "interval"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	n := c.node
	if n.Sync != "interval" || n.PassivateAfter != time.Minute || n.DataDir != "/srv/tally" {
		t.Errorf("config = sync %s, passivate %v, data %s; want interval (flag), 1m and /srv/tally (environment)", n.Sync, n.PassivateAfter, n.DataDir)
	}
	if n.DedupeWindow != 2*time.Minute || n.Listen != "127.0.0.1:4222" {
		t.Errorf("defaults = dedupe %v, listen %s", n.DedupeWindow, n.Listen)
	}
}
