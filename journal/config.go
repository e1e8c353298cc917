package journal

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config describes the journal's stream.
type Config struct {
	// Stream is the JetStream stream's name.
	Stream string
	// SubjectPrefix is followed by ".<group>" to make a group's subject.
	SubjectPrefix string
	// Replicas is the stream's replication factor: 1 on a single server,
	// 3 on a NATS cluster.
	Replicas int
	// Storage is file storage unless a test asks for memory.
	Storage jetstream.StorageType
	// AckTimeout bounds how long AppendAsync waits for JetStream.
	AckTimeout time.Duration
	// KeepPerGroup is how many of each group's latest events the stream
	// keeps (JetStream's per-subject limit); 0 keeps every event. Every
	// event carries its group's whole state, so a group's state is never
	// lost to it.
	KeepPerGroup int
	// Syncer, when set, makes AppendAsync report an append only once it is
	// on disk; see Syncer. Only for a server embedded in this process.
	Syncer *Syncer
}

// DefaultConfig returns the contract's journal: stream TALLY_JOURNAL on
// tally.journal.>, file storage, one replica.
func DefaultConfig() Config {
	return Config{
		Stream:        "TALLY_JOURNAL",
		SubjectPrefix: "tally.journal",
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
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("journal: replicas %d not in 1..5", c.Replicas)
	case c.AckTimeout <= 0:
		return fmt.Errorf("journal: ack timeout %v must be positive", c.AckTimeout)
	case c.KeepPerGroup < 0 || c.KeepPerGroup == 1:
		return fmt.Errorf("journal: events kept per group %d: want 0 (all) or at least 2 (the last and the one it follows)", c.KeepPerGroup)
	}
	return nil
}

var errNoJetStream = errors.New("journal: no JetStream context")
