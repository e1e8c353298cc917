package actors

import (
	"github.com/tallyhq/tally/metrics"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

// Journal is what the group actors need of the journal.
type Journal interface {
	// AppendAsync appends ev if the group's last event is at expected and
	// calls done with the new sequence or the error; done must not block.
	AppendAsync(group string, expected uint64, ev *messages.Event, done func(seq uint64, err error))
	Last(ctx context.Context, group string) (*messages.Event, uint64, error)
	At(ctx context.Context, group string, seq uint64) (*messages.Event, error)
}

// GroupReplayer is what a journal may offer beyond Journal: the events of
// one group since a time, up to its event at stream sequence last. A group
// that must learn the request IDs of many events reads them this way
// rather than one by one.
type GroupReplayer interface {
	ReplayGroup(ctx context.Context, group string, since time.Time, last uint64, fn func(seq uint64, ev *messages.Event) error) error
}

// Confirmer is what a replicated journal may offer beyond Journal: a
// check, through a write that only a quorum of the stream's replicas
// acknowledges, that a group's last event is at stream sequence seq, as
// Last said. Last is a read, and a stream leader cut off from the other
// replicas answers reads from what it had until it notices, seconds after
// the others elected a leader that stored more. ErrConflict (of the
// journal) says that the last event is elsewhere.
type Confirmer interface {
	Confirm(ctx context.Context, group string, seq uint64) error
}

// Leases tells the group actors of a cluster's node whether the node may
// serve a group: only while it holds the lease on the group's partition.
type Leases interface {
	Partition(id string) int
	// Lease reports whether the node holds partition p now, the lease's
	// epoch (the same for as long as it holds it without a break) and
	// since when, in unix nanos, it has held it: the wall clock now less
	// how long it has held it, so that a step of the wall clock does not
	// change how long ago that was.
	Lease(p int) (epoch uint64, since int64, ok bool)
}

// Publisher sends the updates of a committed change to subscribers. It must
// not block: it is called from inside a group actor.
type Publisher interface {
	// Subject returns the subject of a group's updates, which differs for
	// a group that has had members; a group actor asks once and passes it
	// to Wants and Publish.
	Subject(group string, membersOnly bool) string
	// Wants reports whether anyone may listen to updates on subject; when
	// it says no, the group builds and publishes none.
	Wants(subject string) bool
	Publish(subject string, updates []*messages.Update)
}

// MembersIndex is the user -> groups index (see package membership) that
// a group actor keeps in step with its members: Add after the journal
// took an add, Remove before it takes a remove.
type MembersIndex interface {
	Add(ctx context.Context, group string, users []string) error
	Remove(ctx context.Context, group string, users []string) error
}

// Clock tells the time; tests pass a fake one to move rate-limit windows
// without sleeping. Now, the wall clock, stamps events; Mono, a clock that
// never steps, times the rate limits and the dedupe window, so that a wall
// clock set back or forward neither refuses a user for an hour nor
// forgets a request ID early.
type Clock interface {
	Now() time.Time
	// Mono is nanoseconds on a clock that only moves forward, from an
	// arbitrary zero.
	Mono() int64
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// monoZero is the system clock's monotonic zero: time.Since reads Go's
// monotonic clock.
var monoZero = time.Now()

func (systemClock) Mono() int64 { return int64(time.Since(monoZero)) }

// expiry returns the monotonic time now and when an entry of the dedupe
// window for an event stamped at (unix nanoseconds, by the wall clock)
// expires.
func expiry(c Clock, window time.Duration, at int64) (now, expires int64) {
	now = c.Mono()
	age := max(c.Now().UnixNano()-at, 0)
	return now, now + int64(window) - age
}

// Config configures a Node.
type Config struct {
	// Journal stores every change; required.
	Journal Journal
	// Publisher gets the updates of every committed change; nil drops them.
	Publisher Publisher
	// Leases, in a cluster, say which groups the node may serve; nil
	// serves every group.
	Leases Leases
	// Clock defaults to the system clock.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics, when set, count appends, calls per append and reloads.
	Metrics *metrics.Metrics
	// Index, when set, is written with every change of a group's members.
	Index MembersIndex
	// MembersChanged, when set, is called once a members change is in the
	// journal and the index, with the users whose membership it changed
	// (and again by a retry of it): their connections hold grants of the
	// old membership. It runs off the group's actor and may block; an error
	// answers the change with ErrUnavailable, so that the caller retries.
	MembersChanged func(ctx context.Context, users []string) error

	// PassivateAfter is how long an idle group stays in memory; after it,
	// the group's next call reads it from the journal.
	PassivateAfter time.Duration
	// ActorIdle stops a group's actor that got no call for this long; until
	// PassivateAfter its state stays in memory in a compact snapshot, from
	// which the next call activates a new actor without reading the
	// journal.
	ActorIdle time.Duration
	// DedupeWindow is how long a write's requestID is remembered.
	DedupeWindow time.Duration
	// Timeout bounds loading a group from the journal and how long Change
	// and Get wait for an answer; the journal's AckTimeout bounds an
	// append.
	Timeout time.Duration
	// MaxBatch is the most commands one append carries.
	MaxBatch int
	// MaxEventBytes bounds an event's encoded size, which must stay below
	// the NATS server's max_payload with the append's headers.
	MaxEventBytes int
	// MinAppendGap, when positive, is the least time between the starts of
	// two appends of one group (commands meanwhile wait for the next one).
	// With a journal that keeps the last K events of each group, a gap of
	// DedupeWindow / K keeps every event of the window, and with them the
	// request IDs a restart recovers.
	MinAppendGap time.Duration
	// RecoverEvents bounds how many events a group reads back one by one to
	// learn the request IDs of another writer (after a conflict, or when the
	// node took the group's partition within the dedupe window); past it, a
	// journal that is a GroupReplayer replays the rest of the window.
	RecoverEvents int

	// WriteLimit writes (set, increase, decrease) and, separately,
	// ReadLimit gets per user within LimitWindow.
	WriteLimit  int
	ReadLimit   int
	LimitWindow time.Duration
	// Flood, when set, is told of a user whose calls were refused by the
	// rate limit FloodRefusals times within one LimitWindow: a client that
	// ignores 2996 and goes on sending. It is called at most once per
	// window per user, on a goroutine of its own.
	Flood         func(user string)
	FloodRefusals int
}

// maxSet is the largest set's counters, in size.
var maxSet = func() map[string]int64 {
	m := map[string]int64{}
	for i := range contract.MaxKeys {
		m[fmt.Sprintf("%0*d", contract.MaxKeyLen, i)] = 0
	}
	return m
}()

// DefaultConfig returns the contract's limits and the documented defaults.
// Journal must still be set.
func DefaultConfig() Config {
	return Config{
		Clock:          systemClock{},
		Logger:         slog.Default(),
		PassivateAfter: 5 * time.Minute,
		ActorIdle:      500 * time.Millisecond,
		DedupeWindow:   2 * time.Minute,
		Timeout:        5 * time.Second,
		MaxBatch:       512,
		MaxEventBytes:  14 << 10,
		RecoverEvents:  64,
		WriteLimit:     20,
		ReadLimit:      20,
		LimitWindow:    5 * time.Second,
		FloodRefusals:  100,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Journal == nil:
		return errors.New("actors: no journal")
	case c.Clock == nil || c.Logger == nil:
		return errors.New("actors: no clock or logger")
	case c.PassivateAfter <= 0:
		return fmt.Errorf("actors: passivate-after %v must be positive", c.PassivateAfter)
	case c.ActorIdle <= 0:
		return fmt.Errorf("actors: actor idle time %v must be positive", c.ActorIdle)
	case c.DedupeWindow < 0:
		return fmt.Errorf("actors: dedupe window %v must not be negative", c.DedupeWindow)
	case c.Timeout <= 0:
		return fmt.Errorf("actors: timeout %v must be positive", c.Timeout)
	case c.MaxBatch < 1:
		return fmt.Errorf("actors: max batch %d must be at least 1", c.MaxBatch)
	case c.MaxEventBytes < maxStateBytes+changeBytes(&messages.Change{Counters: maxSet}):
		return fmt.Errorf("actors: max event bytes %d cannot hold the largest set", c.MaxEventBytes)
	case c.MinAppendGap < 0:
		return fmt.Errorf("actors: min append gap %v must not be negative", c.MinAppendGap)
	case c.RecoverEvents < 0:
		return fmt.Errorf("actors: recover events %d must not be negative", c.RecoverEvents)
	case c.WriteLimit < 1 || c.ReadLimit < 1 || c.LimitWindow <= 0:
		return fmt.Errorf("actors: rate limits %d/%d per %v must be positive", c.WriteLimit, c.ReadLimit, c.LimitWindow)
	case c.Flood != nil && c.FloodRefusals < 1:
		return fmt.Errorf("actors: flood refusals %d must be at least 1", c.FloodRefusals)
	}
	return nil
}
