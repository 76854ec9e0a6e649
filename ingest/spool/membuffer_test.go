package spool

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "m v=%di %d\n", i, i)
	}
	return b.String()
}

func TestMemBufferPeekAck(t *testing.T) {
	m := NewMemBuffer(1<<20, 64, testLogger(t))
	if b, _ := m.Peek(nil, 1000); len(b) != 0 {
		t.Fatalf("empty buffer peeked %q", b)
	}
	in := lines(0, 20) // 20 lines of 10-11 bytes: several 64-byte chunks
	m.Append([]byte(in))
	select {
	case <-m.Notify():
	default:
		t.Error("Append did not notify")
	}
	var out strings.Builder
	for range 100 {
		b, tok := m.Peek(nil, 100)
		if len(b) == 0 {
			break
		}
		if len(b) > 100 || b[len(b)-1] != '\n' {
			t.Fatalf("peek returned %d bytes not ending a line: %q", len(b), b)
		}
		// A second Peek before Ack returns the same batch.
		if again, _ := m.Peek(nil, 100); string(again) != string(b) {
			t.Fatalf("Peek is not idempotent: %q vs %q", again, b)
		}
		out.Write(b)
		m.Ack(tok)
	}
	if out.String() != in {
		t.Errorf("got\n%s\nwant\n%s", out.String(), in)
	}
	if m.Bytes() != 0 {
		t.Errorf("Bytes() = %d after acking everything", m.Bytes())
	}
}

// TestMemBufferAppendWhilePeeked: lines appended after a Peek are not lost
// by the Ack of that Peek (they must not be merged into a peeked chunk).
func TestMemBufferAppendWhilePeeked(t *testing.T) {
	m := NewMemBuffer(1<<20, 1<<10, testLogger(t))
	m.Append([]byte(lines(0, 2)))
	b, tok := m.Peek(nil, 1<<10)
	m.Append([]byte(lines(2, 3)))
	m.Ack(tok)
	rest, _ := m.Peek(nil, 1<<10)
	if got, want := string(b)+string(rest), lines(0, 3); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMemBufferFull: a full buffer drops its oldest chunks, counts the lines,
// and keeps the newest.
func TestMemBufferFull(t *testing.T) {
	m := NewMemBuffer(200, 100, testLogger(t))
	for i := range 50 {
		m.Append([]byte(lines(i, i+1)))
	}
	if st := m.Stats(); st.StoredBytes > 200 {
		t.Errorf("StoredBytes = %d, over the 200 bound", st.StoredBytes)
	}
	b, _ := m.Peek(nil, 1000)
	if !strings.HasSuffix(string(b), lines(49, 50)) {
		t.Errorf("newest line lost: %q", b)
	}
	kept := strings.Count(string(b), "\n")
	if got := m.DroppedLines(); got != int64(50-kept) || got == 0 {
		t.Errorf("DroppedLines() = %d, want %d", got, 50-kept)
	}
}

// TestMemBufferDropInFlight: data dropped while a batch is in flight is not
// removed twice by the batch's Ack.
func TestMemBufferDropInFlight(t *testing.T) {
	m := NewMemBuffer(100, 50, testLogger(t))
	m.Append([]byte(lines(0, 4))) // 4 lines, ~40 bytes: one chunk
	_, tok := m.Peek(nil, 50)
	for i := 4; i < 30; i++ { // pushes the peeked chunk out
		m.Append([]byte(lines(i, i+1)))
	}
	before, _ := m.Peek(nil, 1000)
	m.Ack(tok)
	after, _ := m.Peek(nil, 1000)
	if string(before) != string(after) {
		t.Errorf("Ack of a dropped chunk removed newer data:\nbefore %q\nafter  %q", before, after)
	}
}

func TestMemBufferLongLine(t *testing.T) {
	m := NewMemBuffer(1<<20, 16, testLogger(t))
	long := "m v=\"" + strings.Repeat("x", 40) + "\" 1\n"
	m.Append([]byte("a v=1 1\n" + long + "b v=2 2\n"))
	var got []string
	for {
		b, tok := m.Peek(nil, 16)
		if len(b) == 0 {
			break
		}
		got = append(got, string(b))
		m.Ack(tok)
	}
	want := []string{"a v=1 1\n", long, "b v=2 2\n"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMemStats: points, batches and the oldest time follow appends,
// acks and drops.
func TestMemStats(t *testing.T) {
	m := NewMemBuffer(200, 100, testLogger(t))
	t0 := time.Now()
	m.Append([]byte(lines(0, 3)))
	if st := m.Stats(); st.Points != 3 || st.Batches != 1 || st.Bytes != int64(len(lines(0, 3))) || st.Oldest.Before(t0) || st.Durable {
		t.Errorf("after one append: %+v", st)
	}
	_, tok := m.Peek(nil, 1000)
	m.Append([]byte(lines(3, 5)))
	m.Ack(tok)
	if st := m.Stats(); st.Points != 2 || st.Batches != 1 {
		t.Errorf("after the ack: %+v", st)
	}
	for i := 5; i < 50; i++ {
		m.Append([]byte(lines(i, i+1)))
	}
	st := m.Stats()
	b, _ := m.Peek(nil, 1000)
	if st.Points != int64(strings.Count(string(b), "\n")) || st.DroppedPoints == 0 || st.Points+st.DroppedPoints != 47 {
		t.Errorf("after drops: %+v, buffer holds %d lines", st, strings.Count(string(b), "\n"))
	}
}

// TestMemBufferReusesChunks: once warm, a steady cycle (a thousand
// gateways' lines appended one gateway at a time, and a rollup's, then
// peeked and acked) allocates nothing; and what is kept for reuse stays
// bounded after a backlog drains.
func TestMemBufferReusesChunks(t *testing.T) {
	m := NewMemBuffer(64<<20, 1<<20, nil)
	line := append(bytes.Repeat([]byte("x"), 699), '\n')
	dst := make([]byte, 0, 8<<20)
	rollup := bytes.Repeat(line, 1000) // 0.7 MB in one append
	cycle := func() {
		for range 1000 {
			m.Append(line)
		}
		m.Append(rollup)
		batch, token := m.Peek(dst[:0], 8<<20)
		if len(batch) != 2000*len(line) {
			t.Fatalf("peeked %d bytes, want %d", len(batch), 2000*len(line))
		}
		m.Ack(token)
	}
	cycle()
	// Compressing each sealed chunk allocates its compressed copy: the
	// line protocol storage is what is reused.
	if a := testing.AllocsPerRun(5, cycle); a > 200 {
		t.Errorf("%v allocations per warm cycle, want at most one per chunk", a)
	}

	// A 40 MB backlog (an outage) drains: no more than 2 MiB is kept.
	for range 60000 {
		m.Append(line)
	}
	for m.Bytes() > 0 {
		_, token := m.Peek(dst[:0], 4<<20)
		m.Ack(token)
	}
	if m.freeCap > 2<<20 {
		t.Errorf("kept %d bytes for reuse after the backlog, want at most 2 MiB", m.freeCap)
	}
	total := 0
	for _, b := range m.free {
		total += cap(b)
	}
	if total != m.freeCap {
		t.Errorf("freeCap %d, free chunks hold %d", m.freeCap, total)
	}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// buffer is what the tests use of Spool and MemBuffer alike.
type buffer interface {
	Append(lines []byte) error
	Peek(dst []byte, limit int) ([]byte, uint64)
	Ack(token uint64)
	Stats() Stats
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
