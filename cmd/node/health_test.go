package main

import (
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

// TestFullDisk gives the embedded server a JetStream limit larger than
// its 4 MB disk, a quarter of it taken by another file, and writes until
// the disk is full. The journal then takes no write, even once the disk
// has room again, until its server restarts: the node stops being ready,
// then exits non-zero saying why, so that a supervisor restarts it. Once
// the other file is gone, the restarted node has every write it
// acknowledged and takes new ones.
func TestFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("a full disk needs a small tmpfs, which this machine does not let the test mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	data, filler := filepath.Join(mnt, "data"), filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "full.conf")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\njetstream { store_dir: \""+data+"\", max_file_store: 1GB }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startProc(t, "--nats-config", conf, "--exit-unready-after", "2s", "--http", addr)
	nc := journaltest.ConnectURL(t, p.url)
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
	// Not ready: /readyz says so, and $SRV.PING finds nobody.
	journaltest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
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
