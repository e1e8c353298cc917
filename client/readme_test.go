package client_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestREADMEExample checks that the README's Go example is, byte for byte,
// the function counters of example_test.go, which Example_readme compiles
// and runs against a node: the README cannot show code that does not
// compile or does not do what it says.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlocks(string(readme))
	if len(blocks) != 1 {
		t.Fatalf("README.md has %d ```go blocks, want 1 (the example, which this test keeps compiling)", len(blocks))
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	want := funcSource(t, src, "counters")
	if diff := cmp.Diff(want, blocks[0]); diff != "" {
		t.Errorf("README.md's ```go block differs from counters in example_test.go (-example +README):\n%s", diff)
	}
}

// goBlocks returns the contents of the ```go fenced blocks of markdown.
func goBlocks(markdown string) []string {
	var blocks []string
	var b *strings.Builder
	for line := range strings.Lines(markdown) {
		switch {
		case b == nil && strings.TrimRight(line, "\n") == "```go":
			b = new(strings.Builder)
		case b != nil && strings.TrimRight(line, "\n") == "```":
			blocks = append(blocks, b.String())
			b = nil
		case b != nil:
			b.WriteString(line)
		}
	}
	return blocks
}

// funcSource returns the source of the top-level function name in src,
// with its doc comment and a final newline.
func funcSource(t *testing.T, src []byte, name string) string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "example_test.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != name || fn.Recv != nil {
			continue
		}
		start := fn.Pos()
		if fn.Doc != nil {
			start = fn.Doc.Pos()
		}
		return string(src[fset.Position(start).Offset:fset.Position(fn.End()).Offset]) + "\n"
	}
	t.Fatalf("example_test.go has no function %s", name)
	return ""
}
