package e2e

import (
	"bytes"
	"strings"
	"sync"
)

// lineLog keeps the last lines written to it, for failure reports. It is an
// io.Writer so a process's output can be copied into it, and safe for
// concurrent use.
type lineLog struct {
	max  int
	skip func(line string) bool // drops known noise; nil keeps every line

	mu      sync.Mutex // guards partial, lines and dropped
	partial []byte
	lines   []string
	dropped int
}

// newLineLog returns a lineLog keeping at most max lines.
func newLineLog(max int) *lineLog {
	return &lineLog{max: max}
}

// Write splits p into lines and keeps them.
func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.addLocked(string(bytes.TrimRight(l.partial[:i], "\r")))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// Add keeps one line.
func (l *lineLog) Add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked(line)
}

func (l *lineLog) addLocked(line string) {
	if l.skip != nil && l.skip(line) {
		return
	}
	l.lines = append(l.lines, line)
	if len(l.lines) > l.max {
		n := len(l.lines) - l.max
		l.lines = append(l.lines[:0], l.lines[n:]...)
		l.dropped += n
	}
}

// String returns the kept lines, noting how many earlier ones were dropped.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	if l.dropped > 0 {
		b.WriteString("  … (earlier lines dropped)\n")
	}
	for _, line := range l.lines {
		b.WriteString("  ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if len(l.partial) > 0 {
		b.WriteString("  ")
		b.Write(l.partial)
		b.WriteByte('\n')
	}
	return b.String()
}
