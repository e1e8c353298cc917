package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Lua scripts do per call what tally does: the per-user sliding window
// (a sorted set per user and kind), the 20-key check, the change, the
// update's PUBLISH and the event's XADD to a stream, the journal.
const (
	luaWindow = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 5000)
if redis.call('ZCARD', KEYS[1]) >= 20 then return redis.error_reply('2996 rate limited') end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 5000)
`
	luaIncrease = luaWindow + `
local key, group = ARGV[3], ARGV[5]
if redis.call('HEXISTS', KEYS[2], key) == 0 and redis.call('HLEN', KEYS[2]) >= 20 then
  return redis.error_reply('10004 21st key')
end
local v = redis.call('HINCRBY', KEYS[2], key, ARGV[4])
local seq = redis.call('XADD', KEYS[3], '*', 'g', group, 'op', 'inc', 'k', key, 'd', ARGV[4], 'v', v)
redis.call('PUBLISH', 'updates.' .. group, cjson.encode({groupID=group, key=key, value=v, seq=seq}))
return v
`
	luaSet = luaWindow + `
local group, fresh = ARGV[3], 0
for i = 4, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then fresh = fresh + 1 end
end
if redis.call('HLEN', KEYS[2]) + fresh > 20 then return redis.error_reply('10004 21st key') end
local args = {}
for i = 4, #ARGV do args[#args+1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(args))
local seq = redis.call('XADD', KEYS[3], '*', 'g', group, 'op', 'set', unpack(args))
for i = 4, #ARGV, 2 do
  redis.call('PUBLISH', 'updates.' .. group, cjson.encode({groupID=group, key=ARGV[i], value=tonumber(ARGV[i+1]), seq=seq}))
end
return #ARGV / 2 - 1
`
	luaGet = luaWindow + `
return redis.call('HGETALL', KEYS[2])
`
)

// redisCaller sends a command to Redis and waits for its reply.
type redisCaller interface {
	do(args ...string) (any, error)
	close()
}

// redisConn is a minimal RESP client with one request in flight, for the
// patterns with one call in flight per connection.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialRedis(addr string) (*redisConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &redisConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}, nil
}

func (rc *redisConn) do(args ...string) (any, error) {
	writeCommand(rc.w, args)
	if err := rc.w.Flush(); err != nil {
		return nil, err
	}
	return rc.read()
}

func (rc *redisConn) close() { rc.c.Close() }

func writeCommand(w *bufio.Writer, args []string) {
	fmt.Fprintf(w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a)
	}
}

// redisPipe is one Redis connection shared by concurrent callers, as a
// multiplexing client (rueidis) shares it, for the service patterns: a
// call writes its command into the buffer and queues for its reply, a
// flusher sends whatever is buffered at once, and a reader hands Redis's
// replies, which come in the order of the commands, to the queue in that
// order.
type redisPipe struct {
	rc      *redisConn
	mu      sync.Mutex // orders the buffer's commands with the queue
	err     error      // the connection's failure, under mu
	pending chan chan redisReply
	flush   chan struct{} // a token when the buffer may hold commands
	done    chan struct{}
}

type redisReply struct {
	v   any
	err error
}

// dialRedisPipe connects and starts the pipe's flusher and reader, which
// end when it closes.
func dialRedisPipe(addr string, callers int) (*redisPipe, error) {
	rc, err := dialRedis(addr)
	if err != nil {
		return nil, err
	}
	p := &redisPipe{rc: rc, pending: make(chan chan redisReply, callers), flush: make(chan struct{}, 1), done: make(chan struct{})}
	go p.flusher()
	go p.reader()
	return p, nil
}

func (p *redisPipe) do(args ...string) (any, error) {
	reply := make(chan redisReply, 1)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return nil, p.err
	}
	writeCommand(p.rc.w, args)
	p.pending <- reply // never blocks: at most one call in flight per caller
	p.mu.Unlock()
	select {
	case p.flush <- struct{}{}:
	default:
	}
	r := <-reply
	return r.v, r.err
}

func (p *redisPipe) flusher() {
	for {
		select {
		case <-p.done:
			return
		case <-p.flush:
		}
		p.mu.Lock()
		if err := p.rc.w.Flush(); err != nil && p.err == nil {
			p.err = err
			p.rc.c.Close() // the reader fails the calls waiting
		}
		p.mu.Unlock()
	}
}

func (p *redisPipe) reader() {
	for {
		v, err := p.rc.read()
		var re redisError
		if err != nil && !errors.As(err, &re) {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			for len(p.pending) > 0 {
				(<-p.pending) <- redisReply{err: p.err}
			}
			p.mu.Unlock()
			return
		}
		(<-p.pending) <- redisReply{v, err}
	}
}

func (p *redisPipe) close() {
	close(p.done)
	p.rc.c.Close()
}

type redisError string

func (e redisError) Error() string { return string(e) }

func (rc *redisConn) read() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, redisError(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		out := make([]any, 0, max(n, 0))
		for range n {
			v, err := rc.read()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unknown reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func sha(script string) string {
	h := sha1.Sum([]byte(script))
	return hex.EncodeToString(h[:])
}

var shas = map[string]string{luaIncrease: sha(luaIncrease), luaSet: sha(luaSet), luaGet: sha(luaGet)}

// redisClient drives Redis with a pattern's connections, caller w on
// connection w % connections.
type redisClient struct {
	conns []redisCaller
	seq   []uint64 // per caller, for unique window members
}

func newRedisClient(addr string, p pattern) (*redisClient, error) {
	r := &redisClient{conns: make([]redisCaller, p.conns), seq: make([]uint64, p.callers())}
	for i := range r.conns {
		var err error
		if p.service() {
			r.conns[i], err = dialRedisPipe(addr, p.inFlight)
		} else {
			r.conns[i], err = dialRedis(addr)
		}
		if err != nil {
			r.close()
			return nil, err
		}
	}
	for _, s := range []string{luaIncrease, luaSet, luaGet} {
		if _, err := r.conns[0].do("SCRIPT", "LOAD", s); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

func (r *redisClient) close() {
	for _, c := range r.conns {
		if c != nil {
			c.close()
		}
	}
}

func (r *redisClient) eval(w int, script string, keys []string, args ...string) error {
	r.seq[w]++
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	member := strconv.Itoa(w) + ":" + strconv.FormatUint(r.seq[w], 10)
	cmd := append([]string{"EVALSHA", shas[script], strconv.Itoa(len(keys))}, keys...)
	cmd = append(cmd, now, member)
	cmd = append(cmd, args...)
	_, err := r.conns[w%len(r.conns)].do(cmd...)
	var re redisError
	if errors.As(err, &re) && strings.HasPrefix(string(re), "2996") {
		return errRefused
	}
	return err
}

func (r *redisClient) workload(name string) op {
	user := names("u", users)
	switch name {
	case "w1":
		groups := names("w1-", w1Groups)
		return func(w int, n uint64) error {
			u, g := user[n%users], groups[n%w1Groups]
			return r.eval(w, luaIncrease, []string{"rl:w:" + u, "g:" + g, "journal"}, "likes", "1", g)
		}
	case "w2":
		return func(w int, n uint64) error {
			u := user[n%users]
			return r.eval(w, luaIncrease, []string{"rl:w:" + u, "g:w2-hot", "journal"}, "likes", "1", "w2-hot")
		}
	default:
		groups := names("w3-", w3Groups)
		return func(w int, n uint64) error {
			u, g := user[(n/10)%users], groups[(n/10)%w3Groups]
			switch n % 10 {
			case 8:
				return r.eval(w, luaSet, []string{"rl:w:" + u, "g:" + g, "journal"}, g, "a", strconv.FormatUint(n, 10), "b", "1", "c", "2")
			case 9:
				return r.eval(w, luaGet, []string{"rl:r:" + u, "g:" + g})
			default:
				return r.eval(w, luaIncrease, []string{"rl:w:" + u, "g:" + g, "journal"}, "likes", "1", g)
			}
		}
	}
}

// fill writes n groups of keys counters each, not measured.
func (r *redisClient) fill(prefix string, n, keys int) error {
	res := runN(len(r.seq), uint64(n), 0, func(w int, i uint64) error {
		args := []string{"HSET", prefix + strconv.FormatUint(i, 10)}
		for k := range keys {
			args = append(args, "k"+strconv.Itoa(k), strconv.Itoa(k))
		}
		_, err := r.conns[w%len(r.conns)].do(args...)
		return err
	})
	if res.Failed > 0 {
		return fmt.Errorf("fill: %s", res.FirstErr)
	}
	return nil
}

func (r *redisClient) coldGets(prefix string) op {
	return func(w int, i uint64) error {
		_, err := r.conns[w%len(r.conns)].do("HGETALL", prefix+strconv.FormatUint(i, 10))
		return err
	}
}
