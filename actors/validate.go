package actors

import (
	"fmt"
	"math"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

// MaxKeys is the most counters a group may have.
const MaxKeys = contract.MaxKeys

// ValidateChange checks everything about a write command that does not
// depend on the group's state. The group actor checks the rest (the 21st
// key, overflow) against the state it owns.
func ValidateChange(group string, c *messages.Change) error {
	if err := contract.CheckGroupID(group); err != nil {
		return err
	}
	return validateCommand(c)
}

// validateCommand checks what ValidateChange checks of c itself.
func validateCommand(c *messages.Change) error {
	if err := contract.CheckRequestID(c.GetRequestId()); err != nil {
		return err
	}
	switch c.GetOp() {
	case messages.Op_OP_SET:
		if n := len(c.GetCounters()); n == 0 || n > MaxKeys {
			return fmt.Errorf("%w: set of %d counters, want 1..%d", ErrInvalidParameter, n, MaxKeys)
		}
		for k := range c.GetCounters() {
			if err := contract.CheckKey(k); err != nil {
				return err
			}
		}
	case messages.Op_OP_INCREASE, messages.Op_OP_DECREASE:
		if err := contract.CheckKey(c.GetKey()); err != nil {
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
			if err := contract.CheckKey(k); err != nil {
				return err
			}
		}
	case messages.Op_OP_MEMBERS_ADD, messages.Op_OP_MEMBERS_REMOVE:
		if n := len(c.GetMembers()); n == 0 || n > MaxMembersPerCall {
			return fmt.Errorf("%w: userIDs of %d users, want 1..%d", ErrInvalidParameter, n, MaxMembersPerCall)
		}
		for _, u := range c.GetMembers() {
			if err := contract.CheckUserID(u); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: unknown operation %v", ErrInvalidParameter, c.GetOp())
	}
	return nil
}

// MaxMembersPerCall is the most user IDs one members.add or
// members.remove names.
const MaxMembersPerCall = 100

// MaxListMembers is the most members one members.list returns, and
// DefaultListMembers how many it returns when the request sets no limit.
const (
	MaxListMembers     = 1000
	DefaultListMembers = 100
)

// ValidateList checks a members.list request.
func ValidateList(req *messages.ListMembersRequest) error {
	if err := contract.CheckGroupID(req.GetGroupId()); err != nil {
		return err
	}
	if req.GetLimit() > MaxListMembers {
		return fmt.Errorf("%w: limit %d, want 1..%d", ErrInvalidParameter, req.GetLimit(), MaxListMembers)
	}
	if a := req.GetAfter(); a != "" {
		if err := contract.CheckUserID(a); err != nil {
			return fmt.Errorf("after: %w", err)
		}
	}
	return nil
}

// ValidateGet checks a get request.
func ValidateGet(req *messages.GetRequest) error {
	if err := contract.CheckGroupID(req.GetGroupId()); err != nil {
		return err
	}
	if len(req.GetKeyList()) > MaxKeys {
		return fmt.Errorf("%w: keyList of %d keys, want at most %d", ErrInvalidParameter, len(req.GetKeyList()), MaxKeys)
	}
	for _, k := range req.GetKeyList() {
		if err := contract.CheckKey(k); err != nil {
			return err
		}
	}
	return nil
}
