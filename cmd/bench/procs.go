package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proc is a server under test, run as a process of its own so that its CPU
// time and memory can be read from /proc apart from the load generator's.
type proc struct {
	name  string
	cmd   *exec.Cmd
	url   string // how clients reach it
	pprof string // the net/http/pprof address, if any
	http  string // the address of /metrics, if any
	log   bytes.Buffer
	done  chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process with SIGTERM and waits for it.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func start(name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &p.log
	if cmd.Stdout == nil {
		cmd.Stdout = &p.log
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// build compiles a Go main package of this module into dir.
func build(ctx context.Context, dir, pkg, name string) (string, error) {
	return buildIn(ctx, "", dir, pkg, name)
}

// buildIn compiles a Go main package of the module in src (this one when
// empty) into dir.
func buildIn(ctx context.Context, src, dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return out, nil
}

// startEcho starts a natsecho ceiling and waits until it serves.
func startEcho(binary string, args ...string) (*proc, error) {
	return startServing("natsecho", exec.Command(binary, args...), "natsecho: serving on ")
}

// startTally starts a node on a fresh or existing data directory, with
// extra flags, and waits until it serves.
func startTally(binary, data, sync string, profile bool, extra ...string) (*proc, error) {
	args := append([]string{"--data", data, "--listen", "127.0.0.1:0", "--sync", sync, "--passivate-after", "1h", "--log-level", "warn"}, extra...)
	var pprofAddr string
	if profile {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
		args = append(args, "--pprof", pprofAddr)
	}
	p, err := startServing("tally", exec.Command(binary, args...), "tally: serving on ")
	if err != nil {
		return nil, err
	}
	p.pprof = pprofAddr
	return p, nil
}

// startServing starts cmd and waits until it prints prefix and its URL,
// at most 60 s.
func startServing(name string, cmd *exec.Cmd, prefix string) (*proc, error) {
	return startServingWithin(name, cmd, prefix, 60*time.Second)
}

// startServingWithin is startServing waiting at most limit.
func startServingWithin(name string, cmd *exec.Cmd, prefix string, limit time.Duration) (*proc, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := start(name, cmd)
	if err != nil {
		return nil, err
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				urls <- url
			}
		}
	}()
	select {
	case p.url = <-urls:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited: %s", name, p.log.String())
	case <-time.After(limit):
		p.stop()
		return nil, fmt.Errorf("%s not serving after %v", name, limit)
	}
}

// startNATS starts nats-server with JetStream on a free port.
func startNATS(binary, dir, sync string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	interval := "1s"
	if sync == "always" {
		interval = "always"
	}
	conf := filepath.Join(dir, "nats.conf")
	// Without the account's subject cache, as tally-node runs its server:
	// the counters' subjects are one per group, and replies one per request.
	body := fmt.Sprintf("listen: 127.0.0.1:%d\nno_sublist_cache: true\njetstream { store_dir: %q, sync_interval: %s }\n", port, filepath.Join(dir, "js"), interval)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	p, err := start("nats-server", exec.Command(binary, "-c", conf))
	if err != nil {
		return nil, err
	}
	p.url = fmt.Sprintf("nats://127.0.0.1:%d", port)
	return p, waitTCP(p, port)
}

// startRedis starts redis-server with an append-only file synced as asked
// (everysec or always), installing Debian's redis-server when missing.
func startRedis(dir, fsync string) (*proc, error) {
	binary, err := exec.LookPath("redis-server")
	if err != nil {
		if err := installRedis(); err != nil {
			return nil, err
		}
		if binary, err = exec.LookPath("redis-server"); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := start("redis-server", exec.Command(binary,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--protected-mode", "no"))
	if err != nil {
		return nil, err
	}
	p.url = fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitTCP(p, port); err != nil {
		return nil, err
	}
	return p, waitRedisLoaded(p)
}

// waitRedisLoaded waits until Redis has loaded its append-only file.
func waitRedisLoaded(p *proc) error {
	c, err := dialRedis(p.url)
	if err != nil {
		return err
	}
	defer c.c.Close()
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); {
		if _, err := c.do("PING"); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return errors.New("redis still loading after 5 minutes")
}

func installRedis() error { return installDebian("redis-server", "redis-server") }

// installDebian installs a Debian package, and stops the system-wide
// service the package starts: the benchmark runs its own.
func installDebian(pkg, service string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is missing and installing it needs root", pkg)
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", args[0], err, out)
		}
	}
	exec.Command("service", service, "stop").Run()
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(p *proc, port int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.stop()
	return fmt.Errorf("%s not listening on %d after 30 s", p.name, port)
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// resetPeakRSS restarts the process's peak resident set measurement.
func resetPeakRSS(pid int) {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0o200)
}

// memory returns the process's resident set size and its peak, in bytes.
func memory(pid int) (rss, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			peak = kb * 1024
		}
	}
	return rss, peak
}

// startProfile collects a CPU profile and an allocation profile of a
// tally node into -out/name.pprof and -out/name.allocs.pprof over the
// warm-up and the measurement (w4, which runs for as long as its gets
// take, may end sooner); the returned function waits for both.
func (b *bench) startProfile(p *proc, name string) func() {
	if p.pprof == "" {
		return func() {}
	}
	secs := int((b.o.warmup + b.o.duration).Seconds())
	var wg sync.WaitGroup
	wg.Go(func() { b.fetchProfile(p, fmt.Sprintf("profile?seconds=%d", secs), name+".pprof") })
	wg.Go(func() { b.fetchProfile(p, fmt.Sprintf("allocs?seconds=%d", secs), name+".allocs.pprof") })
	return wg.Wait
}

// heapProfile writes the live heap of a tally node, after a garbage
// collection, to -out/name.heap.pprof.
func (b *bench) heapProfile(p *proc, name string) {
	if p.pprof != "" {
		b.fetchProfile(p, "heap?gc=1", name+".heap.pprof")
	}
}

// fetchProfile writes the node's /debug/pprof/<query> to -out/file.
func (b *bench) fetchProfile(p *proc, query, file string) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", p.pprof, query))
	if err != nil {
		b.logf("profile %s: %v", file, err)
		return
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		b.logf("profile %s: %v", file, err)
		return
	}
	f, err := os.Create(filepath.Join(b.o.out, file))
	if err != nil {
		b.logf("profile %s: %v", file, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.logf("profile %s: %v", file, err)
	}
}
