package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/messages"
)

const (
	// users: w1..w3 spread their calls round robin over these. At 20 writes
	// per user per 5 s, 10,000 users cap the offered load at 40,000
	// writes/s, which Redis reaches; 20,000 keep every system below the
	// limit, so no call is refused.
	users     = 20_000
	w1Groups  = 10_000
	w3Groups  = 1_000
	reqTimout = 10 * time.Second
	// loaders: the callers that write what a workload needs first (not
	// measured), whatever the pattern.
	loaders = 64
)

var protoHeader = nats.Header{"Content-Type": []string{"application/protobuf"}}

// tallyClient drives a tally node over NATS with protobuf requests, caller
// w on connection w % connections: one caller per connection, or several
// whose concurrent requests nats.go multiplexes on it.
type tallyClient struct {
	conns []*nats.Conn
	subj  map[string][]string // op -> subject per user
	// keep, when set, picks the user and group IDs the workloads use:
	// those of the partitions one node owns.
	keep func(id string) bool
}

func dialNATS(url string, n int) ([]*nats.Conn, error) {
	conns := make([]*nats.Conn, n)
	for i := range conns {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench-%d", i)))
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns[i] = nc
	}
	return conns, nil
}

func closeAll(conns []*nats.Conn) {
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}

func newTallyClient(url string, conns int) (*tallyClient, error) {
	return newTallyClientOn([]string{url}, conns)
}

// newTallyClientOn spreads its connections over the nodes at urls.
func newTallyClientOn(urls []string, workers int) (*tallyClient, error) {
	return newTallyClientKeeping(urls, workers, nil)
}

// newTallyClientKeeping is newTallyClientOn with workloads on the user and
// group IDs keep accepts.
func newTallyClientKeeping(urls []string, workers int, keep func(string) bool) (*tallyClient, error) {
	conns := make([]*nats.Conn, 0, workers)
	for i := range workers {
		c, err := dialNATS(urls[i%len(urls)], 1)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c...)
	}
	t := &tallyClient{conns: conns, subj: map[string][]string{}, keep: keep}
	ids := t.ids("u%05d", users)
	for _, op := range []string{"set", "increase", "get"} {
		s := make([]string, users)
		for u, id := range ids {
			s[u] = "tally.v1.user." + id + "." + op
		}
		t.subj[op] = s
	}
	return t, nil
}

func (t *tallyClient) close() { closeAll(t.conns) }

func (t *tallyClient) call(w int, subject string, req proto.Message) error {
	data, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	return outcome(t.conns[w%len(t.conns)].RequestMsg(&nats.Msg{Subject: subject, Data: data, Header: protoHeader}, reqTimout))
}

// outcome is a call's error: the request's, or the contract error of its
// reply (errRefused for 2996).
func outcome(res *nats.Msg, err error) error {
	if err != nil {
		return err
	}
	switch code := res.Header.Get("Nats-Service-Error-Code"); code {
	case "":
		return nil
	case "2996":
		return errRefused
	default:
		return fmt.Errorf("tally error %s: %s", code, res.Header.Get("Nats-Service-Error"))
	}
}

// workload returns the operation of a workload: w1 uniform increases over
// 10,000 groups, w2 one hot group, w3 80% increase, 10% set of 3 keys, 10%
// get over 1,000 groups.
func (t *tallyClient) workload(name string) op {
	inc := t.subj["increase"]
	switch name {
	case "w1":
		groups := t.ids("w1-%d", w1Groups)
		return func(w int, n uint64) error {
			return t.call(w, inc[n%users], &messages.ChangeRequest{GroupId: groups[n%w1Groups], Key: "likes", Value: 1})
		}
	case "w2":
		hot := "w2-hot"
		if t.keep != nil {
			hot = t.ids("w2-hot%d", 1)[0]
		}
		return func(w int, n uint64) error {
			return t.call(w, inc[n%users], &messages.ChangeRequest{GroupId: hot, Key: "likes", Value: 1})
		}
	default:
		groups := t.ids("w3-%d", w3Groups)
		set, get := t.subj["set"], t.subj["get"]
		return func(w int, n uint64) error {
			// A user makes 10 consecutive calls, so the gets are spread
			// over every user as well.
			u, g := (n/10)%users, groups[(n/10)%w3Groups]
			switch n % 10 {
			case 8:
				return t.call(w, set[u], &messages.SetRequest{GroupId: g, Counters: map[string]int64{"a": int64(n), "b": 1, "c": 2}})
			case 9:
				return t.call(w, get[u], &messages.GetRequest{GroupId: g})
			default:
				return t.call(w, inc[u], &messages.ChangeRequest{GroupId: g, Key: "likes", Value: 1})
			}
		}
	}
}

// fill writes n groups of keys counters each through the admin subject,
// not measured.
func (t *tallyClient) fill(prefix string, n, keys int) error {
	return t.fillRange(prefix, 0, n, keys)
}

// fillRange writes groups from..to-1.
func (t *tallyClient) fillRange(prefix string, from, to, keys int) error {
	counters := map[string]int64{}
	for k := range keys {
		counters[fmt.Sprintf("k%d", k)] = int64(k)
	}
	res := runN(loaders, uint64(to-from), 0, func(w int, i uint64) error {
		g := prefix + strconv.Itoa(from+int(i))
		return t.call(w, "tally.v1.admin.set", &messages.SetRequest{GroupId: g, Counters: counters})
	})
	if res.Failed > 0 {
		return fmt.Errorf("fill %s: %d writes failed: %s", prefix, res.Failed, res.FirstErr)
	}
	return nil
}

// coldGets reads every group once through the admin subject.
func (t *tallyClient) coldGets(prefix string, n int) op {
	groups := names(prefix, n)
	return func(w int, i uint64) error {
		return t.call(w, "tally.v1.admin.get", &messages.GetRequest{GroupId: groups[i]})
	}
}

// ids returns n IDs made by format from 0, 1, ..., skipping those keep
// refuses.
func (t *tallyClient) ids(format string, n int) []string {
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		if id := fmt.Sprintf(format, i); t.keep == nil || t.keep(id) {
			out = append(out, id)
		}
	}
	return out
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}
