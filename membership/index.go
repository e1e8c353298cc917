package membership

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal"
)

// Bucket is the KV bucket of the user -> groups index.
const Bucket = "TALLY_MEMBERSHIP"

// Index is the user -> groups index: one key per (user, group) pair of a
// member and its group, <user>.<group> with each ID escaped into the
// characters a KV key may hold (see keyPart). It is safe for concurrent
// use.
type Index struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
}

// Config describes the index's bucket.
type Config struct {
	// Replicas is the bucket's replication factor: the journal's.
	Replicas int
	// Storage is file storage unless a test asks for memory.
	Storage jetstream.StorageType
}

// Open creates the index's bucket, or updates it to cfg, and returns the
// index.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Index, error) {
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("membership: replicas %d not in 1..5", cfg.Replicas)
	}
	// The bucket's stream is made here, as the cluster's buckets are, for
	// one difference from CreateOrUpdateKeyValue: direct gets only on one
	// replica, since a lagging replica answers them too.
	_, err := journal.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:              "KV_" + Bucket,
		Description:       "tally: the groups of each user who is a member of some",
		Subjects:          []string{"$KV." + Bucket + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           cfg.Storage,
		Replicas:          cfg.Replicas,
		AllowRollup:       true,
		DenyDelete:        true,
		Discard:           jetstream.DiscardNew,
		AllowDirect:       cfg.Replicas == 1,
	})
	if err != nil {
		return nil, fmt.Errorf("membership: bucket %s: %w", Bucket, err)
	}
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("membership: bucket %s: %w", Bucket, err)
	}
	return &Index{kv: kv, js: js}, nil
}

// Add records that users are members of group.
func (x *Index) Add(ctx context.Context, group string, users []string) error {
	return x.write(ctx, group, users, nil)
}

// Remove records that users are not members of group.
func (x *Index) Remove(ctx context.Context, group string, users []string) error {
	// A purge keeps one marker per key, where a delete would keep the
	// last value's history too.
	return x.write(ctx, group, users, purge)
}

// purge is the headers of a KV purge: a marker that rolls up the key.
var purge = nats.Header{"KV-Operation": []string{"PURGE"}, "Nats-Rollup": []string{"sub"}}

// write puts (header nil) or purges the keys of users in group, all at
// once, as the KV's own Put and Purge would one at a time, and waits for
// every acknowledgement.
func (x *Index) write(ctx context.Context, group string, users []string, header nats.Header) error {
	acks := make([]jetstream.PubAckFuture, 0, len(users))
	for _, u := range users {
		m := &nats.Msg{Subject: "$KV." + Bucket + "." + key(u, group), Header: header}
		f, err := x.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("membership: index %s in %s: %w", u, group, err)
		}
		acks = append(acks, f)
	}
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("membership: index %s in %s: %w", users[i], group, err)
		case <-ctx.Done():
			return fmt.Errorf("membership: index %s in %s: %w", users[i], group, ctx.Err())
		}
	}
	return nil
}

// GroupsOf returns the groups user is a member of, as far as the index
// knows, in no particular order.
func (x *Index) GroupsOf(ctx context.Context, user string) ([]string, error) {
	prefix := keyPart(user) + "."
	lister, err := x.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("membership: groups of %s: %w", user, err)
	}
	var groups []string
	for k := range lister.Keys() {
		g, ok := unescape(strings.TrimPrefix(k, prefix))
		if !ok {
			lister.Stop()
			return nil, fmt.Errorf("membership: groups of %s: key %q is not one the index writes", user, k)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func key(user, group string) string { return keyPart(user) + "." + keyPart(group) }

// keyPart escapes an ID of the contract (printable ASCII without . * >
// or space) into a KV key's characters: letters, digits, - and _ stay,
// every other byte becomes = and two hex digits, so that "@TGS#2abc" is
// "=40TGS=232abc". The escape is one-to-one, and a part never holds a
// dot, which separates user from group.
func keyPart(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func unescape(part string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(part); i++ {
		if part[i] != '=' {
			b.WriteByte(part[i])
			continue
		}
		if i+2 >= len(part) {
			return "", false
		}
		var v byte
		for _, c := range []byte(part[i+1 : i+3]) {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'A' && c <= 'F':
				v = v<<4 | (c - 'A' + 10)
			default:
				return "", false
			}
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), part != ""
}

// Bind returns the index of the account js reaches, making its bucket with
// one replica when there is none (a node makes it with its journal's
// replicas at start, and updates one made so).
func Bind(ctx context.Context, js jetstream.JetStream) (*Index, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return Open(ctx, js, Config{Replicas: 1, Storage: jetstream.FileStorage})
	}
	if err != nil {
		return nil, fmt.Errorf("membership: bucket %s: %w", Bucket, err)
	}
	return &Index{kv: kv, js: js}, nil
}

// Rebuild replaces the whole index with members (group -> its members),
// the journal's: after an import or a restore, which write the journal
// only. It returns how many memberships it wrote. Run it while no node
// changes members.
func (x *Index) Rebuild(ctx context.Context, members map[string][]string) (int, error) {
	stream, err := x.js.Stream(ctx, "KV_"+Bucket)
	if err != nil {
		return 0, fmt.Errorf("membership: bucket %s: %w", Bucket, err)
	}
	if err := stream.Purge(ctx); err != nil {
		return 0, fmt.Errorf("membership: empty bucket %s: %w", Bucket, err)
	}
	n := 0
	for group, users := range members {
		for len(users) > 0 {
			batch := users[:min(len(users), 1000)]
			if err := x.Add(ctx, group, batch); err != nil {
				return n, err
			}
			n += len(batch)
			users = users[len(batch):]
		}
	}
	return n, nil
}
