package main

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/invigil/invigil/internal/doctable"
)

// codeSpans are the `…` spans of Markdown text.
var codeSpans = regexp.MustCompile("`([^`]+)`")

// TestREADMERoutesDocumented: the README's "HTTP paths" names every
// route the node registers, as "`METHOD /path`".
func TestREADMERoutesDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## HTTP paths\n")
	if !ok {
		t.Fatal(`README.md has no "## HTTP paths"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	named := map[string]bool{}
	for _, m := range codeSpans.FindAllStringSubmatch(section, -1) {
		named[m[1]] = true
	}
	for _, rt := range newTestNode(t).routes.List() {
		if p := strings.TrimSuffix(rt.Pattern, "{$}"); !named[p] {
			t.Errorf("README.md's HTTP paths do not name `%s`", p)
		}
	}
}

// TestREADMEPackagesDocumented: the README's layout table has a row for
// every folder of the module that holds Go code (a row may be a pattern,
// `internal/test*`), and every row names folders that exist.
func TestREADMEPackagesDocumented(t *testing.T) {
	rows, err := doctable.Rows("../../README.md", "## Layout")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, r := range rows {
		for _, m := range codeSpans.FindAllStringSubmatch(r[0], -1) {
			patterns = append(patterns, m[1])
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		dir, _ := filepath.Rel(root, filepath.Dir(p))
		dir = filepath.ToSlash(dir)
		if dir == "." || used[dir] {
			return nil
		}
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, dir); ok {
				used[dir], used[pat] = true, true
				return nil
			}
		}
		used[dir] = true
		t.Errorf("README.md's layout table has no row for %s", dir)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pat := range patterns {
		if !used[pat] {
			t.Errorf("README.md's layout table names %s, which holds no Go code", pat)
		}
	}
}

// mdLinks are the targets of Markdown links: [text](target).
var mdLinks = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinksDocumented: README.md and docs/ stand on their own: every
// link that is not a web address leads to a file or folder of the
// repository.
func TestDocLinksDocumented(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range append(docs, filepath.Join(root, "README.md")) {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, doc)
		for _, m := range mdLinks.FindAllStringSubmatch(string(raw), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p := filepath.Clean(filepath.Join(filepath.Dir(doc), target))
			if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", name, m[1])
			} else if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links %s, which the repository does not have", name, m[1])
			}
		}
	}
}
