// Package logtest captures a component's slog output in tests: every line
// is kept for assertions and shown in the test's own output.
package logtest

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Capture is the io.Writer behind a captured logger. It is safe for
// concurrent use.
type Capture struct {
	t  testing.TB
	mu sync.Mutex
	b  strings.Builder
}

// New returns a text logger at debug level that writes into the returned
// Capture (and, line by line, to t.Log).
func New(t testing.TB) (*slog.Logger, *Capture) {
	c := &Capture{t: t}
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})), c
}

// Write keeps p and logs it to the test; it never fails.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.b.Write(p)
	c.mu.Unlock()
	c.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// String returns everything logged so far.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// Count returns how often s occurs in what was logged.
func (c *Capture) Count(s string) int { return strings.Count(c.String(), s) }
