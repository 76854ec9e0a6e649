package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/spool"
	"github.com/p1logger/p1logger/internal/logtest"
)

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "m v=%di %d\n", i, i)
	}
	return b.String()
}

// captureLog returns a logger whose output the test can read back.
func captureLog(t *testing.T) (*slog.Logger, *logtest.Capture) { return logtest.New(t) }

func openSpool(t *testing.T, cfg spool.Config) *spool.Spool {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := spool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestWriterNeverBlocksSpool: with a spool, WriteLines still returns at once
// while InfluxDB hangs.
func TestWriterNeverBlocksSpool(t *testing.T) {
	release := make(chan struct{})
	f := &fakeInflux{respond: func(int, []byte) (int, http.Header) {
		<-release
		return 204, nil
	}}
	w, _ := newFakeWriterBuf(t, f, WriterConfig{}, openSpool(t, spool.Config{Dir: t.TempDir()}))
	defer close(release)
	runInBackground(t, w.Run)
	t0 := time.Now()
	for i := range 1000 {
		if err := w.WriteLines(context.Background(), []byte(lines(i, i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("1000 WriteLines took %s with InfluxDB hanging", d)
	}
}

// drainAll peeks and acks until the buffer is empty and returns what it
// handed out.
func drainAll(t *testing.T, b Buffer, limit int) string {
	t.Helper()
	var out strings.Builder
	for range 100000 {
		batch, tok := b.Peek(nil, limit)
		if len(batch) == 0 {
			return out.String()
		}
		out.Write(batch)
		b.Ack(tok)
	}
	t.Fatal("buffer never empties")
	return ""
}
