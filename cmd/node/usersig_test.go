package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/usersig"
)

// usersigCmd runs tally-node usersig with args and returns its stdout,
// stderr and exit status.
func usersigCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"usersig"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("tally-node usersig %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// keygen writes a key pair into a new directory and returns the paths of
// its private and public key.
func keygen(t *testing.T) (key, pub string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if out, errOut, code := usersigCmd(t, "keygen", "--out", dir); code != 0 {
		t.Fatalf("usersig keygen = %d: %s%s", code, out, errOut)
	}
	return filepath.Join(dir, "user-sig.key"), filepath.Join(dir, "user-sig.pub")
}

// TestUsersigCommand writes a key pair, mints a signature with the private
// key and checks it with the public one; keygen never overwrites a key,
// and bad arguments exit 2 with a reason.
func TestUsersigCommand(t *testing.T) {
	key, pub := keygen(t)
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key %v, %v; want mode 0600", fi.Mode(), err)
	}
	out, errOut, code := usersigCmd(t, "--key", key, "--user", "alice", "--ttl", "2h")
	if code != 0 {
		t.Fatalf("usersig = %d: %s", code, errOut)
	}
	data, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := usersig.ParsePublicKey(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := usersig.Verify(pk, strings.TrimSpace(out), time.Now())
	if err != nil {
		t.Fatalf("Verify(%q) = %v", out, err)
	}
	if c.User != "alice" || c.Expires.Sub(c.IssuedAt) != 2*time.Hour {
		t.Errorf("claims = %+v, want alice for 2h", c)
	}

	_, errOut, code = usersigCmd(t, "keygen", "--out", filepath.Dir(key))
	if code == 0 || !strings.Contains(errOut, "exists") {
		t.Errorf("keygen over an existing key = %d %q, want a refusal", code, errOut)
	}
	if again, err := os.ReadFile(pub); err != nil || !bytes.Equal(again, data) {
		t.Errorf("keygen refused but changed the public key")
	}

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no key", []string{"--user", "alice"}, 2, "--key and --user"},
		{"bad user", []string{"--key", key, "--user", "a.b"}, 2, "user ID"},
		{"ttl too long", []string{"--key", key, "--user", "alice", "--ttl", "800h"}, 2, "ttl"},
		{"public key as private", []string{"--key", pub, "--user", "alice"}, 1, "PRIVATE KEY"},
		{"keygen without out", []string{"keygen"}, 2, "--out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := usersigCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) || out != "" {
				t.Errorf("usersig %v = %d, stdout %q, stderr %q; want %d mentioning %q", tt.args, code, out, errOut, tt.code, tt.want)
			}
		})
	}
}
