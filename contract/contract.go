// Package contract holds the rules of tally's wire contract that both ends
// check: the limits of IDs, keys and request IDs. The server validates every
// request with these functions and the Go client validates its arguments
// with the same ones, so the two can never disagree.
package contract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the contract.
const (
	MaxUserIDLen    = 32
	MaxGroupIDLen   = 48
	MaxKeyLen       = 128
	MaxKeys         = 20
	MaxRequestIDLen = 64
)

var (
	// ErrInvalidParameter (10004) is wrapped by every refusal of a user ID,
	// key or request ID.
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrInvalidGroupID (10015) is wrapped by every refusal of a group ID.
	ErrInvalidGroupID = errors.New("invalid group ID")
)

// validID reports whether id is 1..max bytes of printable ASCII without
// . * > or white space, so that it is one NATS subject token.
func validID(id string, maxLen int) bool {
	if len(id) == 0 || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c > '~' || c == '.' || c == '*' || c == '>' {
			return false
		}
	}
	return true
}

// InboxPrefix is the prefix of a user's reply subjects: its inboxes are
// <prefix>.<anything>, so that NATS permissions can let each user read its
// own replies only.
func InboxPrefix(user string) string { return inboxPrefix + user }

const inboxPrefix = "_INBOX_"

// IsInboxOf reports whether subject is one of user's inboxes
// (InboxPrefix(user) + "." + anything), without building the prefix.
func IsInboxOf(subject, user string) bool {
	rest, ok := strings.CutPrefix(subject, inboxPrefix)
	return ok && len(rest) > len(user)+1 && rest[len(user)] == '.' && rest[:len(user)] == user
}

// CheckUserID checks a user ID: 1..32 bytes of printable ASCII without
// . * > or spaces.
func CheckUserID(user string) error {
	if !validID(user, MaxUserIDLen) {
		return fmt.Errorf("%w: user ID %s must be 1..%d bytes of printable ASCII without . * > or spaces",
			ErrInvalidParameter, Quote(user), MaxUserIDLen)
	}
	return nil
}

// CheckGroupID checks a group ID: 1..48 bytes, the user ID's alphabet.
func CheckGroupID(group string) error {
	if !validID(group, MaxGroupIDLen) {
		return fmt.Errorf("%w: group ID %s must be 1..%d bytes of printable ASCII without . * > or spaces",
			ErrInvalidGroupID, Quote(group), MaxGroupIDLen)
	}
	return nil
}

// CheckKey checks a counter key: 1..128 bytes of UTF-8 without control
// characters.
func CheckKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes, want 1..%d", ErrInvalidParameter, len(key), MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key %s is not UTF-8", ErrInvalidParameter, Quote(key))
	}
	for _, r := range key {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return fmt.Errorf("%w: key %s has a control character", ErrInvalidParameter, Quote(key))
		}
	}
	return nil
}

// CheckRequestID checks a write's request ID: at most 64 bytes; empty means
// none.
func CheckRequestID(id string) error {
	if len(id) > MaxRequestIDLen {
		return fmt.Errorf("%w: requestID of %d bytes, want at most %d", ErrInvalidParameter, len(id), MaxRequestIDLen)
	}
	return nil
}

// quoteMax is the most of a bad value an error message quotes.
const quoteMax = 64

// Quote quotes s for an error message, at most its first 64 bytes, so that
// a reply quoting a huge bad value still fits in a NATS message.
func Quote(s string) string {
	if len(s) <= quoteMax {
		return strconv.Quote(s)
	}
	cut := quoteMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// MemberUpdatesSubject is where an end user receives a members-only group's
// updates, which the service publishes on <prefix>.updates.<group>.members:
// the account of end users imports them to this subject. They must not
// stay under <prefix>.updates., because NATS checks a subscription's
// subject against the allow list token by token, so the grant
// <prefix>.updates.* (every open group) also allows a subscription to
// <prefix>.updates.>, which would then receive every group's updates.
func MemberUpdatesSubject(prefix, group string) string {
	return prefix + ".member-updates." + group
}

// UpdatesSubject is the subject of a group's updates under prefix
// ("tally.v1"): <prefix>.updates.<group>, and for a group that has had
// members <prefix>.updates.<group>.members, so that NATS permissions can
// let every signed-in user see the first and only members the second.
func UpdatesSubject(prefix, group string, membersOnly bool) string {
	if membersOnly {
		return prefix + ".updates." + group + ".members"
	}
	return prefix + ".updates." + group
}

// Partitions is how many partitions user and group IDs hash into: the
// FNV-1a hash of the ID modulo Partitions (journal.PartitionOf).
const Partitions = 64

// UserMapping is the subject mapping a cluster's servers apply to users'
// calls in every account clients publish from: prefix.user.<user>.<op>
// becomes prefix.u.<partition of user>.<user>.<op>, so that the servers
// deliver a call straight to the node that holds its user's partition,
// the only one subscribed to it. NATS's partition() is the same FNV-1a
// hash as tally's.
func UserMapping(prefix string) (from, to string) {
	return prefix + ".user.*.*", fmt.Sprintf("%s.u.{{partition(%d,1)}}.{{wildcard(1)}}.{{wildcard(2)}}", prefix, Partitions)
}

// PartitionedUserSubject is the subject a user's call has once mapped
// (see UserMapping); partition "*" matches every partition's.
func PartitionedUserSubject(prefix, partition, user, op string) string {
	return prefix + ".u." + partition + "." + user + "." + op
}
