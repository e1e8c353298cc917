package journal

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config describes the journal's streams.
type Config struct {
	// Stream is the JetStream stream's name; a journal of several shards
	// names its streams Stream_0, Stream_1, ...
	Stream string
	// SubjectPrefix is followed by ".<group>" to make a group's subject,
	// or by ".<shard>.<group>" in a journal of several shards.
	SubjectPrefix string
	// Shards is how many streams a journal is made with when there is
	// none yet (see Layout); an existing journal keeps the number it was
	// made with, which Open reads from its streams.
	Shards int
	// Replicas is the stream's replication factor: 1 on a single server,
	// 3 on a NATS cluster.
	Replicas int
	// Storage is file storage unless a test asks for memory.
	Storage jetstream.StorageType
	// AckTimeout bounds how long AppendAsync waits for JetStream.
	AckTimeout time.Duration
	// Resend, when positive, sends an append again if no acknowledgement
	// came within it, until AckTimeout: an append sent to a replicated
	// stream's leader as it stepped down or died is otherwise lost, and
	// its group waits the whole AckTimeout. Every append then carries a
	// message ID (Nats-Msg-Id), by which the stream stores it once however
	// often it arrives within its duplicate window of 2 x AckTimeout.
	Resend time.Duration
	// KeepPerGroup is how many of each group's latest events the stream
	// keeps (JetStream's per-subject limit); 0 keeps every event. Every
	// event carries its group's whole state, so a group's state is never
	// lost to it.
	KeepPerGroup int
	// Syncer, when set, makes AppendAsync report an append only once it is
	// on disk; see Syncer. Only for a server embedded in this process.
	Syncer *Syncer
	// Clock times the appends' deadlines and resends and SinceStored; nil
	// is the system clock. Tests pass a fake one (actorstest.FakeClock) to
	// step the wall clock or move time on: appends then time out only as
	// its monotonic clock advances.
	Clock Clock
}

// Clock tells the time, as actors.Clock does (the same methods, so one
// clock drives both): Now is the wall clock, which may be stepped back or
// forward; Mono is nanoseconds on a clock that only moves forward, from an
// arbitrary zero. The journal times everything by Mono, so that a wall
// clock set back an hour neither leaves an append waiting an hour for its
// deadline nor keeps a node whose journal takes no write ready.
type Clock interface {
	Now() time.Time
	Mono() int64
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) Mono() int64    { return mono() }

// monoZero is the zero of mono: time.Since reads Go's monotonic clock,
// which time.UnixNano would drop.
var monoZero = time.Now()

// mono is nanoseconds since monoZero on the system's monotonic clock.
func mono() int64 { return int64(time.Since(monoZero)) }

// clock is cfg's clock, or the system's.
func (c Config) clock() Clock {
	if c.Clock == nil {
		return systemClock{}
	}
	return c.Clock
}

// DefaultConfig returns the contract's journal: stream TALLY_JOURNAL on
// tally.journal.>, one shard, file storage, one replica.
func DefaultConfig() Config {
	return Config{
		Stream:        "TALLY_JOURNAL",
		SubjectPrefix: "tally.journal",
		Shards:        1,
		Replicas:      1,
		Storage:       jetstream.FileStorage,
		AckTimeout:    5 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Stream == "" || strings.ContainsAny(c.Stream, ".*> \t"):
		return fmt.Errorf("journal: stream name %q is empty or has . * > or white space", c.Stream)
	case c.SubjectPrefix == "" || strings.ContainsAny(c.SubjectPrefix, "*> \t"):
		return fmt.Errorf("journal: subject prefix %q is empty or has wildcards or white space", c.SubjectPrefix)
	case c.Shards < 1 || c.Shards > MaxShards:
		return fmt.Errorf("journal: shards %d not in 1..%d", c.Shards, MaxShards)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("journal: replicas %d not in 1..5", c.Replicas)
	case c.AckTimeout <= 0:
		return fmt.Errorf("journal: ack timeout %v must be positive", c.AckTimeout)
	case c.Resend < 0 || (c.Resend > 0 && c.Resend >= c.AckTimeout):
		return fmt.Errorf("journal: resend %v must be 0 or shorter than the ack timeout %v", c.Resend, c.AckTimeout)
	case c.KeepPerGroup < 0 || c.KeepPerGroup == 1:
		return fmt.Errorf("journal: events kept per group %d: want 0 (all) or at least 2 (the last and the one it follows)", c.KeepPerGroup)
	}
	return nil
}

var errNoJetStream = errors.New("journal: no JetStream context")

// layout is the layout of a journal of cfg made with shards streams.
func (c Config) layout(shards int) Layout {
	return Layout{Stream: c.Stream, Prefix: c.SubjectPrefix, Shards: shards}
}
