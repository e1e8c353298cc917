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

// redisConn is a minimal RESP client: one request in flight per connection,
// like every other client in the benchmark.
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
	fmt.Fprintf(rc.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(rc.w, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := rc.w.Flush(); err != nil {
		return nil, err
	}
	return rc.read()
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

// redisClient drives Redis with one connection per worker.
type redisClient struct {
	conns []*redisConn
	seq   []uint64 // per worker, for unique window members
}

func newRedisClient(addr string, workers int) (*redisClient, error) {
	r := &redisClient{conns: make([]*redisConn, workers), seq: make([]uint64, workers)}
	for i := range r.conns {
		c, err := dialRedis(addr)
		if err != nil {
			r.close()
			return nil, err
		}
		r.conns[i] = c
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
			c.c.Close()
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
	_, err := r.conns[w].do(cmd...)
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
	res := runN(len(r.conns), uint64(n), 0, func(w int, i uint64) error {
		args := []string{"HSET", prefix + strconv.FormatUint(i, 10)}
		for k := range keys {
			args = append(args, "k"+strconv.Itoa(k), strconv.Itoa(k))
		}
		_, err := r.conns[w].do(args...)
		return err
	})
	if res.Failed > 0 {
		return fmt.Errorf("fill: %s", res.FirstErr)
	}
	return nil
}

func (r *redisClient) coldGets(prefix string) op {
	return func(w int, i uint64) error {
		_, err := r.conns[w].do("HGETALL", prefix+strconv.FormatUint(i, 10))
		return err
	}
}
