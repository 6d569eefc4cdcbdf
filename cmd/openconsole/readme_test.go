package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readme is the project's README.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestREADMEListsEveryCommand: the README's CLI block and the usage list every command.
func TestREADMEListsEveryCommand(t *testing.T) {
	text := readme(t)
	_, block, _ := strings.Cut(text, "## The CLI\n\n```\n")
	block, _, _ = strings.Cut(block, "```")
	if block == "" {
		t.Fatal("README has no CLI block under \"## The CLI\"")
	}
	for name := range commands {
		words := strings.Fields(name)
		prefix := strings.Join(words[:len(words)-1], " ")
		if prefix != "" {
			prefix += " "
		}
		// "license suspend|resume|revoke KEY" lists three commands.
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(prefix) + `(\S+\|)*` + regexp.QuoteMeta(words[len(words)-1]) + `(\||\s|$)`)
		if !re.MatchString(block) {
			t.Errorf("the README's CLI block does not list %q", name)
		}
		if !re.MatchString(usage) {
			t.Errorf("the usage does not list %q", name)
		}
	}
	if strings.Contains(text, "../shared") {
		t.Errorf("the README points at ../shared: the project documents itself in docs/")
	}
}

// helpFlagRE finds a flag in the help and its default: package flag's (default "X"), or a
// number the usage text gives as "default 30,30)".
var helpFlagRE = regexp.MustCompile(`(?m)^  --(\S+)[^\n]*\n\s+\t[^\n]*?(?:\(default "([^"]*)"\)|default (\d[\d,.]*)\))?$`)

// TestREADMEListsEveryServeFlag: every flag of serve is in the README, and where a README table
// gives a flag's default, it is the code's.
func TestREADMEListsEveryServeFlag(t *testing.T) {
	text := readme(t)
	r := run(t, "", "serve", "--help")
	flags := helpFlagRE.FindAllStringSubmatch(r.stdout, -1)
	if len(flags) < 10 {
		t.Fatalf("found %d flags in serve --help:\n%s", len(flags), r.stdout)
	}
	for _, f := range flags {
		name, def := f[1], f[2]+f[3]
		if !strings.Contains(text, "`--"+name+"`") {
			t.Errorf("the README does not document serve --%s", name)
			continue
		}
		row := regexp.MustCompile("(?m)^\\| [^|]*`--" + regexp.QuoteMeta(name) + "`[^|]*\\| ([^|]*) \\|").FindStringSubmatch(text)
		if row == nil || def == "" {
			continue
		}
		if d, err := time.ParseDuration(def); err == nil {
			if cell, err := time.ParseDuration(strings.Trim(row[1], "` ")); err != nil || cell != d {
				t.Errorf("README: serve --%s defaults to %q, the code to %v", name, row[1], d)
			}
		} else if !strings.Contains(strings.ToLower(row[1]), strings.ToLower(def)) { // slog prints levels in upper case
			t.Errorf("README: serve --%s defaults to %q, the code to %q", name, row[1], def)
		}
	}
	// Defaults the help says in words.
	for flag, want := range map[string]string{"db-max-conns": "SQLite 8, PostgreSQL 16"} {
		row := regexp.MustCompile("(?m)^\\| `--" + flag + "` \\| ([^|]*) \\|").FindStringSubmatch(text)
		if row == nil || !strings.Contains(row[1], want) {
			t.Errorf("README: --%s default %v, want %q (sqlstore.Options)", flag, row, want)
		}
	}
}
