package contract_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tallyhq/tally/contract"
)

func TestChecks(t *testing.T) {
	tests := []struct {
		name  string
		check func(string) error
		in    string
		want  error // nil: valid
	}{
		{"user", contract.CheckUserID, "alice", nil},
		{"user of 32 bytes", contract.CheckUserID, strings.Repeat("u", 32), nil},
		{"user of 33 bytes", contract.CheckUserID, strings.Repeat("u", 33), contract.ErrInvalidParameter},
		{"empty user", contract.CheckUserID, "", contract.ErrInvalidParameter},
		{"user with a dot", contract.CheckUserID, "a.b", contract.ErrInvalidParameter},
		{"user with a wildcard", contract.CheckUserID, "a*", contract.ErrInvalidParameter},
		{"user with a space", contract.CheckUserID, "a b", contract.ErrInvalidParameter},
		{"user with UTF-8", contract.CheckUserID, "é", contract.ErrInvalidParameter},
		{"Tencent group", contract.CheckGroupID, "@TGS#2abc", nil},
		{"group of 48 bytes", contract.CheckGroupID, strings.Repeat("g", 48), nil},
		{"group of 49 bytes", contract.CheckGroupID, strings.Repeat("g", 49), contract.ErrInvalidGroupID},
		{"group with >", contract.CheckGroupID, "g>", contract.ErrInvalidGroupID},
		{"key", contract.CheckKey, "likes 👍", nil},
		{"key of 128 bytes", contract.CheckKey, strings.Repeat("k", 128), nil},
		{"key of 129 bytes", contract.CheckKey, strings.Repeat("k", 129), contract.ErrInvalidParameter},
		{"empty key", contract.CheckKey, "", contract.ErrInvalidParameter},
		{"key with a raw 0xff", contract.CheckKey, "k\xff", contract.ErrInvalidParameter},
		{"key with a control character", contract.CheckKey, "k\n", contract.ErrInvalidParameter},
		{"key with a C1 control character", contract.CheckKey, "k\u0085", contract.ErrInvalidParameter},
		{"request ID", contract.CheckRequestID, strings.Repeat("r", 64), nil},
		{"no request ID", contract.CheckRequestID, "", nil},
		{"request ID of 65 bytes", contract.CheckRequestID, strings.Repeat("r", 65), contract.ErrInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check(tt.in)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("check(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// TestErrorsQuoteAShortPrefix checks that a refusal of a huge value stays
// small: replies quoting it must fit in a NATS message.
func TestErrorsQuoteAShortPrefix(t *testing.T) {
	huge := strings.Repeat("é", 300_000)
	for _, err := range []error{contract.CheckGroupID(huge), contract.CheckUserID(huge), contract.CheckKey(huge + "\n")} {
		if len(err.Error()) > 300 {
			t.Errorf("error of %d bytes: %.80s...", len(err.Error()), err)
		}
		if !strings.Contains(err.Error(), "(600000 bytes)") && !strings.Contains(err.Error(), "bytes, want") {
			t.Errorf("error %q does not say how long the value was", err)
		}
	}
	if got := contract.Quote("short"); got != `"short"` {
		t.Errorf("Quote(short) = %s", got)
	}
}

func TestIsInboxOf(t *testing.T) {
	for _, c := range []struct {
		subject, user string
		want          bool
	}{
		{"_INBOX_alice.abc", "alice", true},
		{"_INBOX_alice.a.b", "alice", true},
		{"_INBOX_alice.", "alice", false},
		{"_INBOX_alice", "alice", false},
		{"_INBOX_alicex.abc", "alice", false},
		{"_INBOX_al.abc", "alice", false},
		{"_INBOX_bob.abc", "alice", false},
		{"_INBOX.abc", "alice", false},
		{"tally.v1.updates.room", "alice", false},
		{"", "alice", false},
	} {
		if got := contract.IsInboxOf(c.subject, c.user); got != c.want {
			t.Errorf("IsInboxOf(%q, %q) = %v, want %v", c.subject, c.user, got, c.want)
		}
	}
}
