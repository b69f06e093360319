package archcheck

import (
	"bufio"
	"bytes"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/invigil/invigil/internal/doctable"
)

const module = "github.com/invigil/invigil"

// rule is one row of the package table.
type rule struct {
	project   map[string]bool // project packages, relative to the module
	anyImport bool            // "any" project package (cmd/invigil)
	modules   map[string]bool // third-party modules, without their /vN
	anyModule bool            // "any" module
}

// majorSuffix is a module path's major-version element (/v2, /v5 …).
var majorSuffix = regexp.MustCompile(`/v[0-9]+$`)

// readTable parses docs/architecture.md's package table.
func readTable(t *testing.T) map[string]rule {
	t.Helper()
	// `package` | owns | project imports | third-party modules
	rows, err := doctable.ByCode("../../docs/architecture.md", "## Packages and who calls whom", 4)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]rule{}
	for pkg, r := range rows {
		ru := rule{project: names(r[2]), modules: names(r[3])}
		ru.anyImport = r[2] == "any"
		ru.anyModule = r[3] == "any"
		for m := range ru.modules {
			delete(ru.modules, m)
			ru.modules[majorSuffix.ReplaceAllString(m, "")] = true
		}
		rules[pkg] = ru
	}
	return rules
}

// names collects the `code` items of a cell ("—" and prose around them
// are ignored).
func names(cell string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
		out[m[1]] = true
	}
	return out
}

// pkg is one package of the module as go list sees it.
type pkg struct {
	path    string   // relative to the module
	imports []string // of its non-test files
}

// goList lists the module's packages and, for every package they import,
// its module ("" for the standard library).
func goList(t *testing.T) (pkgs []pkg, moduleOf map[string]string) {
	t.Helper()
	run := func(args ...string) []string {
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return lines
	}
	for _, line := range run("list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", "./...") {
		path, imports, _ := strings.Cut(line, "|")
		p := pkg{path: strings.TrimPrefix(strings.TrimPrefix(path, module), "/")}
		if imports != "" {
			p.imports = strings.Split(imports, ",")
		}
		pkgs = append(pkgs, p)
	}
	moduleOf = map[string]string{}
	for _, line := range run("list", "-deps", "-f", "{{.ImportPath}}|{{if .Module}}{{.Module.Path}}{{end}}|{{.Standard}}", "./...") {
		parts := strings.Split(line, "|")
		if len(parts) == 3 && parts[2] != "true" {
			moduleOf[parts[0]] = parts[1]
		}
	}
	return pkgs, moduleOf
}

// TestPackageTable: every package has a row, and imports only what its
// row allows: an arrow the table does not draw, or a module it does not
// list, fails here (and so `make lint` and CI).
func TestPackageTable(t *testing.T) {
	rules := readTable(t)
	pkgs, moduleOf := goList(t)
	var seen []string
	for _, p := range pkgs {
		seen = append(seen, p.path)
		ru, ok := rules[p.path]
		if !ok {
			t.Errorf("package %s has no row in docs/architecture.md's package table", p.path)
			continue
		}
		for _, imp := range p.imports {
			mod, external := moduleOf[imp]
			switch {
			case !external:
				// the standard library
			case mod == module:
				rel := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
				if !ru.anyImport && !ru.project[rel] {
					t.Errorf("%s imports %s: the package table allows it %v", p.path, rel, keys(ru.project))
				}
			default:
				if !ru.anyModule && !ru.modules[majorSuffix.ReplaceAllString(mod, "")] {
					t.Errorf("%s imports %s (module %s): the package table allows it %v", p.path, imp, mod, keys(ru.modules))
				}
			}
		}
	}
	for path := range rules {
		if !slices.Contains(seen, path) {
			t.Errorf("docs/architecture.md's package table has a row for %s, which does not exist", path)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
