package main

import (
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
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestHealthEndpoints checks --http: /healthz and /readyz answer 200 on a
// serving node.
func TestHealthEndpoints(t *testing.T) {
	addr := freeAddr(t)
	startProc(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--http", addr)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+addr+path); code != http.StatusOK {
			t.Errorf("%s = %d %s, want 200", path, code, body)
		}
	}
}

// smallDisk mounts a tmpfs of size bytes for a test, or skips the test
// where it may not mount one, and returns a nats-server configuration
// with the store on it and a JetStream limit larger than the disk.
func smallDisk(t *testing.T, size int) (mnt, conf string) {
	t.Helper()
	mnt = t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("skipped: filling a disk needs a small tmpfs, and mounting one needs root or CAP_SYS_ADMIN (mount -t tmpfs: %v %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	conf = filepath.Join(t.TempDir(), "full.conf")
	data := filepath.Join(mnt, "data")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\njetstream { store_dir: \""+data+"\", max_file_store: 1GB }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return mnt, conf
}

// fill writes a file at path until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			return // no space left
		}
	}
}

// awaitUnready waits until /readyz answers 503 and $SRV.PING finds
// nobody, and returns how long that took.
func awaitUnready(t *testing.T, addr, url string) time.Duration {
	t.Helper()
	nc := journaltest.ConnectURL(t, url)
	start := time.Now()
	journaltest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz = %d", res.StatusCode)
		}
		if _, err := nc.Request("$SRV.PING.tally", nil, 200*time.Millisecond); err == nil {
			return errors.New("$SRV.PING.tally answered while not ready")
		}
		return nil
	})
	return time.Since(start)
}

// awaitStorageExit waits for the node to exit non-zero saying why.
func awaitStorageExit(t *testing.T, p *proc) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the node did not exit")
	}
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("node exit = %v, want a non-zero code", p.err)
	}
	if !strings.Contains(p.stderr.String(), "storage error") {
		t.Errorf("stderr does not say why the node stopped:\n%s", p.stderr)
	}
}

// TestFullDisk gives the embedded server a JetStream limit larger than
// its 4 MB disk, a quarter of it taken by another file, and writes until
// the disk is full. The journal then takes no write, even once the disk
// has room again, until its server restarts: the node stops being ready,
// then exits non-zero saying why, so that a supervisor restarts it. Once
// the other file is gone, the restarted node has every write it
// acknowledged and takes new ones.
func TestFullDisk(t *testing.T) {
	mnt, conf := smallDisk(t, 4<<20)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startProc(t, "--nats-config", conf, "--exit-unready-after", "2s", "--http", addr)
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, p.url), client.WithRetries(0), client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("%0128d", 0)
	big := map[string]int64{}
	for i := range 20 {
		big[fmt.Sprintf("%0128d", i)] = 0
	}
	var acked int64
	for {
		big[key] = acked + 1
		if _, err := admin.SetGroupCounters(context.Background(), "g", big); err != nil {
			break
		}
		acked++
	}
	awaitUnready(t, addr, p.url)
	awaitStorageExit(t, p)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	again := startProc(t, "--nats-config", conf)
	a2, _ := client.NewAdmin(journaltest.ConnectURL(t, again.url))
	got, err := a2.GetGroupCounters(context.Background(), "g", key)
	if err != nil {
		t.Fatal(err)
	}
	if got[key] < acked {
		t.Errorf("after the restart the counter is %d, but %d writes were acknowledged", got[key], acked)
	}
	if _, err := a2.IncreaseGroupCounter(context.Background(), "g", key, 1); err != nil {
		t.Errorf("a write after the restart: %v", err)
	}
	t.Logf("%d writes acknowledged before the disk filled", acked)
}

// TestDiskFilledAfterStart fills the disk of a node that is taking writes
// with another file: the journal's store fails, the node stops being
// ready and exits saying why, and once the file is gone the restarted
// node has every write it acknowledged. (A probe of a store of its own
// would still find room in its last page and call the node ready.)
func TestDiskFilledAfterStart(t *testing.T) {
	mnt, conf := smallDisk(t, 16<<20)
	addr := freeAddr(t)
	p := startProc(t, "--nats-config", conf, "--exit-unready-after", "3s", "--http", addr)
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, p.url), client.WithRetries(0), client.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Writes go on through the fill: each group's counter counts the
	// writes acknowledged.
	stop := make(chan struct{})
	done := make(chan struct{})
	acked := map[string]int64{}
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			g := fmt.Sprintf("g%d", i%5)
			if _, err := admin.IncreaseGroupCounter(context.Background(), g, "k", 1); err == nil {
				acked[g]++
			}
		}
	}()
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if code, _ := httpGet(t, "http://"+addr+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz = %d", code)
		}
		return nil
	})
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	took := awaitUnready(t, addr, p.url)
	t.Logf("not ready %v after the disk filled", took)
	awaitStorageExit(t, p)
	close(stop)
	<-done
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	again := startProc(t, "--nats-config", conf)
	a2, _ := client.NewAdmin(journaltest.ConnectURL(t, again.url))
	for g, n := range acked {
		got, err := a2.GetGroupCounters(context.Background(), g)
		if err != nil {
			t.Fatal(err)
		}
		if got["k"] < n {
			t.Errorf("after the restart %s is %d, but %d writes were acknowledged", g, got["k"], n)
		}
	}
	if _, err := a2.IncreaseGroupCounter(context.Background(), "g0", "k", 1); err != nil {
		t.Errorf("a write after the restart: %v", err)
	}
	t.Logf("writes acknowledged: %v", acked)
}
