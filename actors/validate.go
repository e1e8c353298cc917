package actors

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/tallyhq/tally/messages"
)

// Limits of the contract.
const (
	MaxUserIDLen    = 32
	MaxGroupIDLen   = 48
	MaxKeyLen       = 128
	MaxKeys         = 20
	MaxRequestIDLen = 64
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

// ValidateUserID checks a user ID taken from a request subject.
func ValidateUserID(user string) error {
	if !validID(user, MaxUserIDLen) {
		return fmt.Errorf("%w: user ID %q must be 1..%d bytes of printable ASCII without . * > or spaces",
			ErrInvalidParameter, user, MaxUserIDLen)
	}
	return nil
}

// ValidateGroupID checks a group ID.
func ValidateGroupID(group string) error {
	if !validID(group, MaxGroupIDLen) {
		return fmt.Errorf("%w: group ID %q must be 1..%d bytes of printable ASCII without . * > or spaces",
			ErrInvalidGroupID, group, MaxGroupIDLen)
	}
	return nil
}

func validateKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes, want 1..%d", ErrInvalidParameter, len(key), MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key %q is not UTF-8", ErrInvalidParameter, key)
	}
	for _, r := range key {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return fmt.Errorf("%w: key %q has a control character", ErrInvalidParameter, key)
		}
	}
	return nil
}

func validateRequestID(id string) error {
	if len(id) > MaxRequestIDLen {
		return fmt.Errorf("%w: requestID of %d bytes, want at most %d", ErrInvalidParameter, len(id), MaxRequestIDLen)
	}
	return nil
}

// ValidateChange checks everything about a write command that does not
// depend on the group's state. The group actor checks the rest (the 21st
// key, overflow) against the state it owns.
func ValidateChange(group string, c *messages.Change) error {
	if err := ValidateGroupID(group); err != nil {
		return err
	}
	if err := validateRequestID(c.GetRequestId()); err != nil {
		return err
	}
	switch c.GetOp() {
	case messages.Op_OP_SET:
		if n := len(c.GetCounters()); n == 0 || n > MaxKeys {
			return fmt.Errorf("%w: set of %d counters, want 1..%d", ErrInvalidParameter, n, MaxKeys)
		}
		for k := range c.GetCounters() {
			if err := validateKey(k); err != nil {
				return err
			}
		}
	case messages.Op_OP_INCREASE, messages.Op_OP_DECREASE:
		if err := validateKey(c.GetKey()); err != nil {
			return err
		}
		if c.GetAmount() < 0 {
			return fmt.Errorf("%w: value %d is negative, want 0..%d", ErrInvalidParameter, c.GetAmount(), int64(math.MaxInt64))
		}
	case messages.Op_OP_DELETE:
		if len(c.GetKeys()) > MaxKeys {
			return fmt.Errorf("%w: keyList of %d keys, want at most %d", ErrInvalidParameter, len(c.GetKeys()), MaxKeys)
		}
		for _, k := range c.GetKeys() {
			if err := validateKey(k); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: unknown operation %v", ErrInvalidParameter, c.GetOp())
	}
	return nil
}

// ValidateGet checks a get request.
func ValidateGet(req *messages.GetRequest) error {
	if err := ValidateGroupID(req.GetGroupId()); err != nil {
		return err
	}
	if len(req.GetKeyList()) > MaxKeys {
		return fmt.Errorf("%w: keyList of %d keys, want at most %d", ErrInvalidParameter, len(req.GetKeyList()), MaxKeys)
	}
	for _, k := range req.GetKeyList() {
		if err := validateKey(k); err != nil {
			return err
		}
	}
	return nil
}
