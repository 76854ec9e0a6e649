package source_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

// open parses address and opens it, failing the test on error.
func open(t *testing.T, address string) (source.Source, source.Conn) {
	t.Helper()
	src, err := source.Parse(address, source.Options{DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Parse(%q): %v", address, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := src.Open(ctx)
	if err != nil {
		t.Fatalf("Open(%s): %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return src, c
}

// frames reads n telegrams from c, framed as the reader frames them, each
// within timeout.
func frames(t *testing.T, c source.Conn, n int, timeout time.Duration) [][]byte {
	t.Helper()
	var sp parser.Splitter
	sc := bufio.NewScanner(deadlineReader{c, timeout})
	sc.Buffer(make([]byte, 0, 4096), parser.MaxTelegramSize)
	sc.Split(sp.Split)
	var out [][]byte
	for len(out) < n && sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	if len(out) < n {
		t.Fatalf("got %d telegrams, want %d: %v", len(out), n, sc.Err())
	}
	return out
}

// deadlineReader sets a read deadline before every read.
type deadlineReader struct {
	c source.Conn
	d time.Duration
}

func (r deadlineReader) Read(p []byte) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(r.d))
	return r.c.Read(p)
}

// sentLog collects what a simulator reports sent.
type sentLog struct {
	mu   sync.Mutex
	sent []sim.Sent
}

func (l *sentLog) add(s sim.Sent) {
	l.mu.Lock()
	l.sent = append(l.sent, s)
	l.mu.Unlock()
}

func (l *sentLog) frames() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	for _, s := range l.sent {
		out = append(out, s.Frame)
	}
	return out
}

// run runs f(ctx) until the test ends.
func run(t *testing.T, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("simulator: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("simulator did not stop")
		}
	})
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := t.TempDir() + "/" + name
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
