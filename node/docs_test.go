package node_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPackageMapNamesEveryPackage keeps docs/architecture.md's map of the
// packages true: it names every Go package of the repository, and no
// package that is gone.
func TestPackageMapNamesEveryPackage(t *testing.T) {
	root := filepath.Join("..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9/]+)` \\|")
	var mapped []string
	for _, m := range row.FindAllSubmatch(doc, -1) {
		mapped = append(mapped, string(m[1]))
	}
	var packages []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "data":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		dir, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		if dir = filepath.ToSlash(dir); dir != "." && !slices.Contains(packages, dir) {
			packages = append(packages, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packages {
		if !slices.Contains(mapped, p) {
			t.Errorf("docs/architecture.md's package map does not name %s", p)
		}
	}
	for _, p := range mapped {
		if !slices.Contains(packages, p) {
			t.Errorf("docs/architecture.md's package map names %s, which has no Go files", p)
		}
	}
	if len(packages) < 10 {
		t.Fatalf("found only %d packages: %v", len(packages), packages)
	}
}

// TestDocsLinksResolve checks every relative link of the README and the
// docs: the file exists and, for a link with a #fragment, the file has a
// heading of that name (GitHub's anchors: lower case, punctuation dropped,
// spaces as hyphens).
func TestDocsLinksResolve(t *testing.T) {
	root := filepath.Join("..")
	files := []string{"README.md", "deploy/README.md", "web/sdk/README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, filepath.ToSlash(rel))
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, f := range files {
		text, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllSubmatch(text, -1) {
			target := string(m[1])
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, fragment, _ := strings.Cut(target, "#")
			file := f
			if path != "" {
				file = filepath.ToSlash(filepath.Join(filepath.Dir(f), path))
			}
			info, err := os.Stat(filepath.Join(root, file))
			if err != nil {
				t.Errorf("%s links to %s: %v", f, target, err)
				continue
			}
			checked++
			if fragment == "" || info.IsDir() {
				continue
			}
			body, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(anchors(string(body)), fragment) {
				t.Errorf("%s links to %s: %s has no heading #%s", f, target, file, fragment)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d links", checked)
	}
}

// anchors returns the GitHub anchors of a Markdown file's headings.
func anchors(markdown string) []string {
	var out []string
	inCode := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
