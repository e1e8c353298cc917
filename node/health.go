package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Health timings: every probeEvery the node checks that its journal
// acknowledged an append within readyFor, and probes it with a write when
// it did not. A journal that stops taking writes makes the node unready
// within readyFor + probeEvery + probeTimeout.
const (
	probeEvery   = 500 * time.Millisecond
	probeTimeout = time.Second
	readyFor     = time.Second
)

// ErrStorage means the embedded NATS server's store takes no write after
// a storage error (a full disk, lost write permission), which only a
// restart of the server mends.
var ErrStorage = errors.New("the journal's store failed after a storage error (a full disk, or no write permission); a restart is needed once the cause is gone")

// health says whether the node can serve, and stops it when it never can
// again.
type health struct {
	ready  atomic.Bool
	reason atomic.Value // string: why not ready

	cancel context.CancelFunc
	wg     sync.WaitGroup

	unready  time.Time // since when the node is not ready; touched by the prober only
	disabled sync.Once // logs that JetStream is disabled, when the node does not exit for it

	failOnce sync.Once
	failed   chan struct{}
	err      error // set before failed is closed
}

// Ready reports whether the node can serve: its journal took a write (an
// append or a probe) within the last few seconds, and in a cluster it is a
// member that knows the others. When not, it says why.
func (n *Node) Ready() (bool, string) {
	if n.cluster != nil && !n.cluster.Ready() {
		return false, "not a member of the cluster yet"
	}
	if n.health.ready.Load() {
		return true, ""
	}
	r, _ := n.health.reason.Load().(string)
	return false, r
}

// Done is closed when the node fails for good and must be stopped; Err
// then says why.
func (n *Node) Done() <-chan struct{} { return n.health.failed }

// Err is why the node failed, once Done is closed.
func (n *Node) Err() error {
	select {
	case <-n.health.failed:
		return n.health.err
	default:
		return nil
	}
}

func (n *Node) fail(err error) {
	n.health.failOnce.Do(func() {
		n.health.err = err
		n.log.Error("the node cannot serve any more; stopping", slog.Any("error", err))
		close(n.health.failed)
	})
}

// watch checks the journal every probeEvery until Stop.
func (n *Node) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	n.health.cancel = cancel
	n.health.ready.Store(true)
	n.health.wg.Go(func() {
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.check(ctx)
			}
		}
	})
}

func (n *Node) check(ctx context.Context) {
	if n.cluster != nil {
		select {
		case err := <-n.cluster.Failed():
			n.setReady(false, err.Error())
			n.fail(err)
			return
		default:
		}
	}
	if n.ns != nil && !n.ns.JetStreamEnabled() {
		n.setReady(false, ErrStorage.Error())
		// A supervisor's restart re-enables JetStream, once the cause is
		// gone; this process cannot, so waiting out ExitUnreadyAfter
		// mends nothing. With 0 the node never exits: it stays unready.
		if n.cfg.ExitUnreadyAfter > 0 {
			n.fail(ErrStorage)
			return
		}
		n.health.disabled.Do(func() {
			n.log.Error("not ready until restarted: nats-server disabled JetStream; --exit-unready-after 0 keeps the node running", slog.Any("error", ErrStorage))
		})
		return
	}
	// How long since the journal took a write is on its monotonic clock:
	// a wall clock set back would keep a node whose journal takes no write
	// ready, one set forward would probe a healthy one.
	if since, ok := n.journal.SinceStored(); ok && since < readyFor {
		n.setReady(true, "")
		return
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	err := n.journal.Probe(pctx)
	if err == nil {
		n.setReady(true, "")
		return
	}
	n.setReady(false, err.Error())
	// After a write error the embedded server's stream takes no write
	// again until the server restarts, even once the disk has room: stop,
	// so that a supervisor restarts the node.
	if n.ns != nil && n.cfg.ExitUnreadyAfter > 0 && time.Since(n.health.unready) >= n.cfg.ExitUnreadyAfter {
		n.fail(fmt.Errorf("%w: the journal has taken no write for %v (%w)", ErrStorage, n.cfg.ExitUnreadyAfter, err))
	}
}

func (n *Node) setReady(ready bool, reason string) {
	if was := n.health.ready.Swap(ready); was != ready {
		n.health.unready = time.Now()
		if ready {
			n.log.Info("ready: the journal takes writes again")
		} else {
			n.log.Warn("not ready: the journal does not take writes", slog.String("reason", reason))
		}
	}
	n.health.reason.Store(reason)
}

// serveHTTP serves /healthz (the process is up) and /readyz (it can
// serve) on addr until Stop.
func (n *Node) serveHTTP(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--http %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/metrics", n.metrics.Handler())
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := n.Ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.health.wg.Go(func() {
		if err := n.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("health server", slog.Any("error", err))
		}
	})
	n.log.Info("serving health", slog.String("url", "http://"+l.Addr().String()+"/readyz"))
	return nil
}

// stopHealth stops the prober and the health server.
func (n *Node) stopHealth(ctx context.Context) {
	if n.health.cancel != nil {
		n.health.cancel()
	}
	if n.http != nil {
		n.http.Shutdown(ctx)
	}
	n.health.wg.Wait()
}
