package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

const contentTypeProtobuf = "application/protobuf"

// Client calls tally as one user. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	opts    options
	subject string // prefix of the request subjects, ending in "."
	inbox   *inbox
}

// New returns a client acting as userID on nc. Its replies come on
// _INBOX_<userID>.>, so NATS permissions can let each user read only its
// own (subscribe: _INBOX_alice.>). A user ID the service would refuse is
// refused here. New chains a handler in front of nc's error handler, to fail
// the calls the server's permissions refuse (see the package doc).
func New(nc *nats.Conn, userID string, opts ...Option) (*Client, error) {
	if err := contract.CheckUserID(userID); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	o, err := apply(opts)
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, opts: o, subject: o.prefix + ".user." + userID + ".", inbox: newInbox(nc, contract.InboxPrefix(userID))}, nil
}

func apply(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// SetGroupCounters sets 1..20 counters of a group at once, all or none, and
// returns the counters set.
func (c *Client) SetGroupCounters(ctx context.Context, groupID string, counters map[string]int64, opts ...WriteOption) (map[string]int64, error) {
	keys := make([]string, 0, len(counters))
	for k := range counters {
		keys = append(keys, k)
	}
	if err := check(groupID, keys...); err != nil {
		return nil, err
	}
	id, err := requestID(opts)
	if err != nil {
		return nil, err
	}
	req := &messages.SetRequest{GroupId: groupID, Counters: counters, RequestId: id}
	var reply messages.SetReply
	if err := c.call(ctx, "set", req, &reply); err != nil {
		return nil, err
	}
	return reply.GetCounters(), nil
}

// IncreaseGroupCounter adds value (0..MaxInt64) to a counter, which starts
// at 0 when absent, and returns the counter's new value.
func (c *Client) IncreaseGroupCounter(ctx context.Context, groupID, key string, value int64, opts ...WriteOption) (int64, error) {
	return c.change(ctx, "increase", groupID, key, value, opts)
}

// DecreaseGroupCounter subtracts value (0..MaxInt64) from a counter, which
// starts at 0 when absent and may go below zero, and returns its new value.
func (c *Client) DecreaseGroupCounter(ctx context.Context, groupID, key string, value int64, opts ...WriteOption) (int64, error) {
	return c.change(ctx, "decrease", groupID, key, value, opts)
}

func (c *Client) change(ctx context.Context, op, groupID, key string, value int64, opts []WriteOption) (int64, error) {
	if err := check(groupID, key); err != nil {
		return 0, err
	}
	id, err := requestID(opts)
	if err != nil {
		return 0, err
	}
	req := &messages.ChangeRequest{GroupId: groupID, Key: key, Value: value, RequestId: id}
	var reply messages.ChangeReply
	if err := c.call(ctx, op, req, &reply); err != nil {
		return 0, err
	}
	return reply.GetValue(), nil
}

// GetGroupCounters returns the listed counters of a group, or all of them
// when no keys are given. Absent keys are left out.
func (c *Client) GetGroupCounters(ctx context.Context, groupID string, keys ...string) (map[string]int64, error) {
	s, err := c.GetGroupSnapshot(ctx, groupID, keys...)
	return s.Counters, err
}

// Snapshot is a group's counters as of one change.
type Snapshot struct {
	Counters map[string]int64
	// Seq is the group's change sequence the counters reflect, 0 for a
	// group never changed: updates with a greater Seq came after them.
	Seq uint64
	// Members is true for a group that has had members: only members may
	// call it, and its updates go to members only.
	Members bool
}

// GetGroupSnapshot is GetGroupCounters with the change sequence the
// counters reflect, to line them up with the updates that follow.
func (c *Client) GetGroupSnapshot(ctx context.Context, groupID string, keys ...string) (Snapshot, error) {
	if err := check(groupID, keys...); err != nil {
		return Snapshot{}, err
	}
	var reply messages.GetReply
	if err := c.call(ctx, "get", &messages.GetRequest{GroupId: groupID, KeyList: keys}, &reply); err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Counters: reply.GetCounters(), Seq: reply.GetSeq(), Members: reply.GetMembers()}
	if s.Counters == nil {
		s.Counters = map[string]int64{}
	}
	return s, nil
}

// Update is a GROUP_COUNTER_UPDATED event: one key of one committed change.
type Update struct {
	GroupID string `json:"groupID"`
	Key     string `json:"key"`
	Value   int64  `json:"value"`
	// Seq is the group's change sequence: consecutive changes have
	// consecutive numbers, so a gap means a missed update.
	Seq uint64 `json:"seq"`
	// Deleted is true when the change removed the key.
	Deleted bool `json:"deleted,omitempty"`
}

// OnGroupCounterUpdated calls handler, one call at a time, for every update
// of the group's counters until the returned unsubscribe is called. Updates
// are not stored: one missed while unsubscribed or disconnected is gone,
// and shows as a gap in Seq. It subscribes to both subjects a group's
// updates go to (contract.UpdatesSubject; with AsEndUser, the second is
// contract.MemberUpdatesSubject): a group that gets its first member moves
// from the first to the second.
func (c *Client) OnGroupCounterUpdated(groupID string, handler func(Update)) (unsubscribe func() error, err error) {
	if err := check(groupID); err != nil {
		return nil, err
	}
	// One handler for both subscriptions: nats.go runs each on its own
	// goroutine, so a lock keeps the calls one at a time.
	var mu sync.Mutex
	on := func(m *nats.Msg) {
		// An update always has a seq; anything else on the subject is not
		// the service's update (a reply that a client of the same account
		// directed there, say).
		var u Update
		if json.Unmarshal(m.Data, &u) == nil && u.Seq > 0 && u.GroupID == groupID {
			mu.Lock()
			defer mu.Unlock()
			handler(u)
		}
	}
	var subs []*nats.Subscription
	unsubscribe = func() error {
		var errs []error
		for _, s := range subs {
			errs = append(errs, s.Unsubscribe())
		}
		return errors.Join(errs...)
	}
	subjects := []string{contract.UpdatesSubject(c.opts.prefix, groupID, false), contract.UpdatesSubject(c.opts.prefix, groupID, true)}
	if c.opts.endUser {
		subjects[1] = contract.MemberUpdatesSubject(c.opts.prefix, groupID)
	}
	for _, subject := range subjects {
		sub, err := c.nc.Subscribe(subject, on)
		if err != nil {
			unsubscribe()
			return nil, fmt.Errorf("client: subscribe to updates of %s: %w", groupID, err)
		}
		subs = append(subs, sub)
	}
	// Make sure the server has the subscriptions before returning, so no
	// update that follows this call is missed.
	if err := c.nc.Flush(); err != nil {
		unsubscribe()
		return nil, fmt.Errorf("client: subscribe to updates of %s: %w", groupID, err)
	}
	return unsubscribe, nil
}

// check validates a group ID and keys with the service's own rules, so a
// call the service would refuse is refused without a round trip.
func check(groupID string, keys ...string) error {
	err := contract.CheckGroupID(groupID)
	for _, k := range keys {
		if err != nil {
			break
		}
		err = contract.CheckKey(k)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, contract.ErrInvalidGroupID):
		return &Error{Code: ErrInvalidGroupID.Code, Message: err.Error()}
	default:
		return &Error{Code: ErrInvalidParameter.Code, Message: err.Error()}
	}
}

// requestID returns the write's request ID, or a new one.
func requestID(opts []WriteOption) (string, error) {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.requestID == "" {
		return nuid.Next(), nil
	}
	if err := contract.CheckRequestID(o.requestID); err != nil {
		return "", &Error{Code: ErrInvalidParameter.Code, Message: err.Error()}
	}
	return o.requestID, nil
}

// call sends req to subject+op and decodes the reply into reply, retrying
// what may succeed on a second try: ErrInternal, a timeout, no responders.
//
// "No responders" means that nobody serves the subject right now: a node
// that is starting, or, in a cluster, the partition of a node that died,
// until the others count it gone and take its users (at most 3 s). The
// call then waits for a node to serve it, trying again with a growing
// pause (from the backoff up to maxSilentWait) for as long as the call's
// timeout, and only then spends its retries.
func (c *Client) call(ctx context.Context, op string, req, reply proto.Message) error {
	data, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("client: encode %s: %w", op, err)
	}
	var silent time.Time // when an unbroken run of "no responders" began
	for attempt, quiet := 0, 0; ; {
		err = c.once(ctx, c.subject+op, data, reply)
		if !retryable(err) {
			return err
		}
		var wait time.Duration
		if !errors.Is(err, nats.ErrNoResponders) {
			silent = time.Time{}
		} else if silent.IsZero() {
			silent = time.Now()
		}
		if !silent.IsZero() && time.Since(silent) < c.opts.timeout {
			wait = min(c.opts.backoff<<min(quiet, 10), maxSilentWait)
			quiet++
		} else {
			if attempt >= c.opts.retries {
				return err
			}
			attempt++
			wait = c.opts.backoff * time.Duration(attempt)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// maxSilentWait is the longest pause between two calls that found nobody
// serving their subject.
const maxSilentWait = 500 * time.Millisecond

func retryable(err error) bool {
	return errors.Is(err, ErrInternal) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}

func (c *Client) once(ctx context.Context, subject string, data []byte, reply proto.Message) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.timeout)
		defer cancel()
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set("Content-Type", contentTypeProtobuf)
	res, err := c.inbox.request(ctx, msg)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", nats.ErrTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("client: %s: %w", subject, err)
	}
	if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
		return replyError(code, res)
	}
	if err := proto.Unmarshal(res.Data, reply); err != nil {
		return fmt.Errorf("client: %s: decode reply: %w", subject, err)
	}
	return nil
}

func replyError(code string, res *nats.Msg) error {
	var body messages.Error
	if proto.Unmarshal(res.Data, &body) == nil && body.GetCode() != 0 {
		return &Error{Code: int(body.GetCode()), Message: body.GetMessage()}
	}
	n, _ := strconv.Atoi(code)
	return &Error{Code: n, Message: res.Header.Get(micro.ErrorHeader)}
}
