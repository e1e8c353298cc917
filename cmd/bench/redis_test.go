package main

import (
	"fmt"
	"os/exec"
	"sync"
	"testing"
)

// TestRedisPipeMatchesReplies checks that concurrent callers sharing one
// pipelined connection each get the reply to their own command. It runs
// when redis-server is installed (make bench installs it).
func TestRedisPipeMatchesReplies(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	srv, err := startRedis(t.TempDir(), "everysec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	const callers, calls = 64, 200
	p, err := dialRedisPipe(srv.url, callers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				want := fmt.Sprintf("%d:%d", c, i)
				got, err := p.do("ECHO", want)
				if err != nil || got != want {
					errs <- fmt.Errorf("ECHO %s = %v, %v; want %s", want, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
