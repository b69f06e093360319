// Package logbuf is a bytes.Buffer safe for one writer goroutine (a
// process's output copier, a logger) and a test reading it meanwhile.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer collects output for assertions.
type Buffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
