package node

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tallyhq/tally/usersig"
)

// TestCalloutOptions checks the embedded server's callout settings: every
// user the node makes but the no-credentials one bypasses the callout,
// which delegates only USERS; the server's largest payload is raised for
// the callout while the node's accounts keep 16 KiB.
func TestCalloutOptions(t *testing.T) {
	pub, _, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := usersig.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.UserSigKey = filepath.Join(t.TempDir(), "user-sig.pub")
	if err := os.WriteFile(cfg.UserSigKey, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	callout, err := newCalloutKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, nodeKey, _ := newNodeUser()
	_, frontKey, _ := newNodeUser()
	opts, front, err := embeddedOptions(cfg, "tally.v1", nodeKey, frontKey, callout)
	if err != nil {
		t.Fatal(err)
	}
	ac := opts.AuthCallout
	if !front || ac == nil {
		t.Fatalf("front %v, callout %+v", front, ac)
	}
	for _, key := range []string{nodeKey, frontKey, callout.userKey} {
		if !slices.Contains(ac.AuthUsers, key) {
			t.Errorf("AuthUsers %v lacks the node's user %s", ac.AuthUsers, key)
		}
	}
	if slices.Contains(ac.AuthUsers, opts.NoAuthUser) {
		t.Errorf("AuthUsers has the no-credentials user %s", opts.NoAuthUser)
	}
	if !slices.Equal(ac.AllowedAccounts, []string{UsersAccount}) || ac.Account != CalloutAccount {
		t.Errorf("callout account %s, allowed accounts %v; want %s, [%s]", ac.Account, ac.AllowedAccounts, CalloutAccount, UsersAccount)
	}
	if opts.MaxPayload <= MaxPayload {
		t.Errorf("max payload %d, want it raised above %d for the callout's answers", opts.MaxPayload, MaxPayload)
	}
	for _, name := range []string{ServiceAccount, ClientAccount, UsersAccount, CalloutAccount} {
		if findAccount(opts, name) == nil {
			t.Errorf("no account %s", name)
		}
	}
}
