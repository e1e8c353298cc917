package usersig_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/usersig"
)

// snippet returns the fenced block that follows marker in docs/API.md.
func snippet(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- "+marker+" -->\n```")
	if !ok {
		t.Fatalf("docs/API.md has no block after <!-- %s -->", marker)
	}
	_, body, _ := strings.Cut(after, "\n")
	code, _, ok := strings.Cut(body, "```")
	if !ok {
		t.Fatalf("docs/API.md: the block after <!-- %s --> does not end", marker)
	}
	return code
}

// TestDocsMintSnippets runs the Node.js and Python minting snippets of
// docs/API.md, where node and python3 with cryptography are installed,
// and verifies what they mint.
func TestDocsMintSnippets(t *testing.T) {
	pub, _ := testKeys(t)
	tests := []struct {
		name, interpreter, flag, call string
	}{
		{"node", "node", "-e", "\nprocess.stdout.write(userSig(require('fs').readFileSync(process.argv[1]), 'alice', 3600));\n"},
		{"python", "python3", "-c", "\nimport sys\nsys.stdout.write(user_sig(open(sys.argv[1], 'rb').read(), 'alice', 3600))\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath(tt.interpreter); err != nil {
				t.Skipf("%s not installed", tt.interpreter)
			}
			code := snippet(t, "usersig-"+tt.name) + tt.call
			args := []string{tt.flag, code}
			if tt.name == "node" {
				args = append(args, "--")
			}
			out, err := exec.Command(tt.interpreter, append(args, "testdata/test.key")...).Output()
			if err != nil {
				if tt.name == "python" && strings.Contains(string(errOutput(err)), "No module named 'cryptography'") {
					t.Skip("python3 without cryptography")
				}
				t.Fatalf("%s: %v\n%s", tt.interpreter, err, errOutput(err))
			}
			c, err := usersig.Verify(pub, string(out), time.Now())
			if err != nil {
				t.Fatalf("Verify(%q) = %v", out, err)
			}
			if c.User != "alice" || c.Expires.Sub(c.IssuedAt) != time.Hour {
				t.Errorf("claims %+v, want alice for an hour", c)
			}
		})
	}
}

func errOutput(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
