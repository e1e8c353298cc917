package main

import (
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEConfigurationNamesEveryFlag keeps the README's configuration
// table true: it names every flag of tally-node and each flag's
// environment variable, and no flag that tally-node does not have.
func TestREADMEConfigurationNamesEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "## Configuration")
	if start < 0 {
		t.Fatal("README has no Configuration section")
	}
	section := text[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	var fs *flag.FlagSet
	if _, _, err := parseFlags("tally-node", nil, func(string) string { return "" }, io.Discard, func(f *flag.FlagSet) { fs = f }); err != nil {
		t.Fatal(err)
	}
	envOf := regexp.MustCompile(`\(\$(TALLY_[A-Z_]+)\)$`)
	flags := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		flags[f.Name] = true
		if !regexp.MustCompile("`--" + regexp.QuoteMeta(f.Name) + "[`/]").MatchString(section) {
			t.Errorf("README's configuration does not name --%s", f.Name)
		}
		m := envOf.FindStringSubmatch(f.Usage)
		switch {
		case m == nil:
			t.Errorf("--%s names no environment variable in its help", f.Name)
		case !strings.Contains(section, "`"+m[1]+"`"):
			t.Errorf("README's configuration does not name $%s, the variable of --%s", m[1], f.Name)
		}
	})
	for _, m := range regexp.MustCompile("`--([a-z-]+)").FindAllStringSubmatch(section, -1) {
		if !flags[m[1]] && !strings.HasSuffix(m[1], "-") { // --users-*: a group of flags
			t.Errorf("README's configuration names --%s, which tally-node does not have", m[1])
		}
	}
	if len(flags) < 20 {
		t.Fatalf("only %d flags", len(flags))
	}
}
