// Package doctable reads the Markdown tables of the project's docs, for
// the tests that keep a doc and the code that it describes in step
// (routes, error codes, message types, the package table).
package doctable

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Rows returns the body rows of the first table after the heading line
// heading (e.g. "## Errors") in the Markdown file at path: one slice of
// trimmed cells per row, the header and the |---| line left out.
func Rows(path, heading string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found, inTable := false, false
	var rows [][]string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case !found:
			found = line == heading
		case strings.HasPrefix(line, "|"):
			inTable = true
			rows = append(rows, Cells(line))
		case inTable:
			return body(rows), nil
		case strings.HasPrefix(line, "#"):
			return nil, fmt.Errorf("%s: no table under %q", path, heading)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s: no heading %q", path, heading)
	}
	return body(rows), nil
}

// body drops a table's header row and its |---| line.
func body(rows [][]string) [][]string {
	if len(rows) < 2 {
		return nil
	}
	return rows[2:]
}

// Cells splits one table row into its trimmed cells.
func Cells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	parts := strings.Split(line, "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

// Code returns the text of a cell written as `code`, and whether it was.
func Code(cell string) (string, bool) {
	if len(cell) >= 2 && strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`") {
		return cell[1 : len(cell)-1], true
	}
	return "", false
}

// ByCode reads the table as Rows does and keys its rows by their first
// cell, which must be written as `code`; every row must have columns
// cells.
func ByCode(path, heading string, columns int) (map[string][]string, error) {
	rows, err := Rows(path, heading)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(rows))
	for _, r := range rows {
		key, ok := Code(r[0])
		if !ok || len(r) != columns {
			return nil, fmt.Errorf("%s, table under %q: row %q: want %d cells, the first in backticks", path, heading, r, columns)
		}
		out[key] = r
	}
	return out, nil
}
