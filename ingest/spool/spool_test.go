package spool

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/logtest"
)

// captureLog returns a logger whose output the test can read back.
func captureLog(t *testing.T) (*slog.Logger, *logtest.Capture) { return logtest.New(t) }

func openSpool(t *testing.T, cfg Config) *Spool {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// drainAll peeks and acks until the buffer is empty and returns what it
// handed out.
func drainAll(t *testing.T, b buffer, limit int) string {
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

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestSpoolPeekAck(t *testing.T) {
	s := openSpool(t, Config{Dir: t.TempDir()})
	if b, _ := s.Peek(nil, 1000); len(b) != 0 {
		t.Fatalf("empty spool peeked %q", b)
	}
	if st := s.Stats(); st.Batches != 0 || !st.Oldest.IsZero() || !st.Durable {
		t.Errorf("empty stats %+v", st)
	}
	t0 := time.Now()
	for i := 0; i < 20; i += 5 {
		if err := s.Append([]byte(lines(i, i+5))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.Notify():
	default:
		t.Error("Append did not notify")
	}
	st := s.Stats()
	if st.Batches != 4 || st.Points != 20 || st.Bytes != int64(len(lines(0, 20))) || st.Oldest.Before(t0.Add(-time.Second)) || st.Oldest.After(time.Now()) {
		t.Errorf("stats %+v", st)
	}
	var out strings.Builder
	for range 100 {
		b, tok := s.Peek(nil, 100)
		if len(b) == 0 {
			break
		}
		if again, tok2 := s.Peek(nil, 100); string(again) != string(b) || tok2 != tok {
			t.Fatalf("Peek is not idempotent: %q vs %q", again, b)
		}
		out.Write(b)
		s.Ack(tok)
	}
	if got, want := out.String(), lines(0, 20); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if st := s.Stats(); st.Bytes != 0 || st.Batches != 0 || s.Bytes() != 0 {
		t.Errorf("after acking everything: %+v", st)
	}
}

// TestSpoolStaysSmall: while everything is delivered, the spool's single
// segment is emptied now and then instead of growing to its full size.
func TestSpoolStaysSmall(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Config{Dir: dir})
	big := strings.Repeat("x", 1000)
	maxDisk := int64(0)
	for i := range 2000 { // 2 MB, half a segment
		s.Append([]byte(fmt.Sprintf("m v=\"%s\" %d\n", big, i)))
		b, tok := s.Peek(nil, 1<<20)
		if !strings.HasSuffix(string(b), fmt.Sprintf(" %d\n", i)) {
			t.Fatalf("append %d: peeked %q", i, b)
		}
		s.Ack(tok)
		maxDisk = max(maxDisk, s.Stats().DiskBytes)
	}
	if lim := int64(4<<20)/16 + 1100; maxDisk > lim {
		t.Errorf("the spool grew to %d bytes with nothing undelivered, want at most %d", maxDisk, lim)
	}
	s.Append([]byte(lines(0, 1)))
	s.Close()
	s = openSpool(t, Config{Dir: dir})
	if got := drainAll(t, s, 1<<20); got != lines(0, 1) {
		t.Errorf("after a restart: %q", got)
	}
}

// TestSpoolReopen: what was not acknowledged is delivered after a restart,
// exactly once, and what was acknowledged is not delivered again.
func TestSpoolReopen(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Config{Dir: dir})
	for i := range 10 {
		s.Append([]byte(lines(i*3, i*3+3)))
	}
	b, tok := s.Peek(nil, 40) // the first batch or so
	s.Ack(tok)
	delivered := string(b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append([]byte(lines(99, 100))); err != ErrClosed {
		t.Errorf("Append after Close: %v", err)
	}

	log, logs := captureLog(t)
	s = openSpool(t, Config{Dir: dir, Logger: log})
	if !strings.Contains(logs.String(), "undelivered points from a previous run") {
		t.Error("reopening a spool with data logs nothing")
	}
	s.Append([]byte(lines(30, 33)))
	rest := drainAll(t, s, 1<<20)
	if got, want := delivered+rest, lines(0, 33); got != want {
		t.Errorf("before and after the restart:\n%s\nwant\n%s", got, want)
	}
	s.Close()

	// Everything was delivered: a third run has nothing to send, and no
	// segment file is left behind but the one being appended to.
	s = openSpool(t, Config{Dir: dir})
	if b, _ := s.Peek(nil, 1<<20); len(b) != 0 {
		t.Errorf("delivered points handed out again: %q", b)
	}
	if f := segFiles(t, dir); len(f) > 1 {
		t.Errorf("segment files left: %v", f)
	}
}

// TestSpoolTornTail damages the end of the newest segment as a crash while
// writing would, and the middle of an older one as bit rot would: the spool
// opens, says what it truncated, keeps every whole record, and goes on.
func TestSpoolTornTail(t *testing.T) {
	tests := []struct {
		name   string
		damage func(data []byte, lastRec int) []byte
		keep   int // whole records kept of 5
		log    string
	}{
		{"payload cut short", func(d []byte, last int) []byte { return d[:len(d)-3] }, 4, "torn record"},
		{"header cut short", func(d []byte, last int) []byte { return d[:last+10] }, 4, "torn record"},
		{"only the header", func(d []byte, last int) []byte { return d[:last+recHeaderLen] }, 4, "torn record"},
		{"flipped byte", func(d []byte, last int) []byte { d[len(d)-2] ^= 0x40; return d }, 4, "checksum mismatch"},
		{"garbage after", func(d []byte, last int) []byte { return append(d, "\x05\x00\x00\x00garbage"...) }, 5, "torn record"},
		{"zeros after", func(d []byte, last int) []byte { return append(d, make([]byte, 4096)...) }, 5, "torn record"},
		{"first record damaged", func(d []byte, last int) []byte { d[segHeaderLen+recHeaderLen] ^= 1; return d }, -1, "checksum mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, Config{Dir: dir})
			for i := range 5 {
				s.Append([]byte(lines(i*2, i*2+2)))
			}
			s.Close()
			files := segFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("segments %v", files)
			}
			data, _ := os.ReadFile(files[0])
			lastRec := len(data) - (recHeaderLen + len(lines(8, 10)))
			os.WriteFile(files[0], tc.damage(data, lastRec), 0o640)

			log, logs := captureLog(t)
			s = openSpool(t, Config{Dir: dir, Logger: log})
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("no log line with %q", tc.log)
			}
			s.Append([]byte(lines(10, 12)))
			got := drainAll(t, s, 1<<20)
			want := lines(0, tc.keep*2) + lines(10, 12)
			if tc.keep < 0 { // only the first record is lost; the spool resynchronises on the second
				want = lines(2, 10) + lines(10, 12)
			}
			if got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}

	t.Run("middle segment", func(t *testing.T) {
		dir := t.TempDir()
		s := openSpool(t, Config{Dir: dir, MaxBytes: MinMaxBytes}) // 4 KiB segments
		var want []string
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range 12 {
			// Random text does not compress: each record stays 1 KiB.
			big := make([]byte, 1000)
			for k := range big {
				big[k] = 'a' + byte(rnd.IntN(26))
			}
			l := fmt.Sprintf("m v=\"%s\" %d\n", big, i)
			want = append(want, l)
			s.Append([]byte(l))
		}
		s.Close()
		files := segFiles(t, dir)
		if len(files) < 3 {
			t.Fatalf("want several segments, have %v", files)
		}
		data, _ := os.ReadFile(files[1])
		data[len(data)-5] ^= 0xff
		os.WriteFile(files[1], data, 0o640)

		log, logs := captureLog(t)
		s = openSpool(t, Config{Dir: dir, MaxBytes: MinMaxBytes, Logger: log})
		if !strings.Contains(logs.String(), "damaged records skipped") {
			t.Error("no log line for the damaged middle segment")
		}
		got := drainAll(t, s, 1<<20)
		// One record of segment 2 (its last) is lost, and only that one.
		perSeg := 3 // 3 records of 1 KiB in a 4 KiB segment
		wantGot := strings.Join(want[:2*perSeg-1], "") + strings.Join(want[2*perSeg:], "")
		if got != wantGot {
			t.Errorf("got %d lines, want %d", strings.Count(got, "\n"), strings.Count(wantGot, "\n"))
		}
	})
}

// TestSpoolCursorDamaged: an unreadable cursor costs duplicates, not data.
func TestSpoolCursorDamaged(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Config{Dir: dir})
	s.Append([]byte(lines(0, 3)))
	s.Append([]byte(lines(3, 6)))
	_, tok := s.Peek(nil, 10) // the first record only
	s.Ack(tok)
	s.Close()
	os.WriteFile(filepath.Join(dir, cursorName), []byte("0123456789abcdef"), 0o640)
	log, logs := captureLog(t)
	s = openSpool(t, Config{Dir: dir, Logger: log})
	if !strings.Contains(logs.String(), "cursor damaged") {
		t.Error("damaged cursor not logged")
	}
	if got, want := drainAll(t, s, 1<<20), lines(0, 6); got != want {
		t.Errorf("got %q, want everything again %q", got, want)
	}
}

// TestSpoolFull: the files never exceed MaxBytes; the oldest points go
// first, are counted exactly, and are logged.
func TestSpoolFull(t *testing.T) {
	dir := t.TempDir()
	log, logs := captureLog(t)
	const max = MinMaxBytes
	s := openSpool(t, Config{Dir: dir, MaxBytes: max, Logger: log})
	const n = 4000
	for i := range n {
		s.Append([]byte(lines(i, i+1)))
		if st := s.Stats(); st.DiskBytes > max {
			t.Fatalf("after %d appends the spool holds %d bytes, over %d", i+1, st.DiskBytes, max)
		}
	}
	var onDisk int64
	for _, f := range segFiles(t, dir) {
		fi, _ := os.Stat(f)
		onDisk += fi.Size()
	}
	st := s.Stats()
	if onDisk != st.DiskBytes || onDisk > max {
		t.Errorf("files hold %d bytes, Stats says %d, bound %d", onDisk, st.DiskBytes, max)
	}
	got := drainAll(t, s, 1<<20)
	kept := strings.Count(got, "\n")
	if kept == 0 || !strings.HasSuffix(got, lines(n-kept, n)) || got != lines(n-kept, n) {
		t.Errorf("kept %d lines, not the newest in order", kept)
	}
	if st.DroppedPoints != int64(n-kept) {
		t.Errorf("DroppedPoints %d, want %d", st.DroppedPoints, n-kept)
	}
	if logs.Count("spool full") == 0 {
		t.Error("drops not logged")
	}
}

// TestSpoolDropInFlight: a segment dropped while its batch is in flight is
// not removed twice by the batch's Ack.
func TestSpoolDropInFlight(t *testing.T) {
	s := openSpool(t, Config{Dir: t.TempDir(), MaxBytes: MinMaxBytes})
	s.Append([]byte(lines(0, 4)))
	_, tok := s.Peek(nil, 1<<20)
	for i := 4; i < 3000; i++ { // pushes the peeked records out
		s.Append([]byte(lines(i, i+1)))
	}
	before, _ := s.Peek(nil, 1<<20)
	s.Ack(tok)
	after, _ := s.Peek(nil, 1<<20)
	if string(before) != string(after) || strings.Contains(string(before), "m v=0i 0\n") {
		t.Errorf("Ack of a dropped batch removed newer data: %d bytes before, %d after", len(before), len(after))
	}
}

// TestSpoolLocked: two processes (or two spools) never share a directory.
func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Config{Dir: dir})
	if _, err := Open(Config{Dir: dir, Logger: discardLogger()}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second OpenSpool: %v, want an in-use error", err)
	}
	s.Close()
	s2 := openSpool(t, Config{Dir: dir})
	s2.Close()
}

// failFS makes the spool's files fail with ENOSPC while full is set, as a
// full disk does.
type failFS struct {
	full   atomic.Bool
	writes atomic.Int64
}

type failFile struct {
	*os.File
	fs *failFS
}

func (f failFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.writes.Add(1)
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if f.fs.full.Load() && off+int64(len(p)) > fi.Size() {
		// A full disk still overwrites blocks it has (the cursor), but
		// takes only part of a write that needs new ones, then refuses.
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

func (fs *failFS) open(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return failFile{f, fs}, nil
}

// TestSpoolDiskFull: with the disk full, Append goes on in memory, the
// failure is logged once and counted; once the disk has room, the points
// held in memory move to it; nothing is lost, reordered or duplicated, also
// across a restart.
func TestSpoolDiskFull(t *testing.T) {
	dir := t.TempDir()
	fs := &failFS{}
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	log, logs := captureLog(t)
	cfg := Config{Dir: dir, Logger: log, openFile: fs.open, now: clock}
	s := openSpool(t, cfg)
	next := 0
	add := func(k int) {
		for range k {
			if err := s.Append([]byte(lines(next, next+1))); err != nil {
				t.Fatal(err)
			}
			next++
			now.Add(int64(100 * time.Millisecond))
		}
	}
	add(10)
	// A batch is in flight when the disk fills up.
	inflight, tok := s.Peek(nil, 50)
	fs.full.Store(true)
	add(50) // 5 s: no retry yet
	st := s.Stats()
	if !st.MemoryFallback || st.DiskErrors != 1 || st.Points != 60 || st.MemoryBytes != int64(len(lines(10, 60))) {
		t.Errorf("disk full: %+v", st)
	}
	if n := logs.Count("cannot write to the spool directory"); n != 1 {
		t.Errorf("the failure was logged %d times, want once", n)
	}
	// Delivery goes on, oldest first, across disk and memory.
	s.Ack(tok)
	b, tok := s.Peek(nil, 200)
	if got := string(inflight) + string(b); !strings.HasPrefix(lines(0, 60), got) || len(got) < 200 {
		t.Errorf("peek across disk and memory: %q", got)
	}
	s.Ack(tok)
	delivered := string(inflight) + string(b)

	add(100) // 10 s: a retry, which fails again
	if st := s.Stats(); !st.MemoryFallback || st.DiskErrors < 2 {
		t.Errorf("retry on a full disk: %+v", st)
	}
	fs.full.Store(false)
	now.Add(int64(diskRetry))
	add(5)
	st = s.Stats()
	if st.MemoryFallback || st.MemoryBytes != 0 {
		t.Errorf("disk back: %+v", st)
	}
	if !strings.Contains(logs.String(), "can be written again") {
		t.Error("recovery not logged")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything not delivered is on disk now.
	s = openSpool(t, Config{Dir: dir})
	if got, want := delivered+drainAll(t, s, 1<<20), lines(0, next); got != want {
		t.Errorf("delivered %d lines of %d:\n%s", strings.Count(got, "\n"), next, got)
	}
}

// TestSpoolMemoryFallbackBound: the memory that stands in for a full disk
// is bounded too.
func TestSpoolMemoryFallbackBound(t *testing.T) {
	fs := &failFS{}
	fs.full.Store(true)
	log, logs := captureLog(t)
	s := openSpool(t, Config{Dir: t.TempDir(), Logger: log, openFile: fs.open, MemoryBytes: 1000})
	for i := range 500 {
		s.Append([]byte(lines(i, i+1)))
	}
	st := s.Stats()
	if st.MemoryBytes > 1000 || st.DroppedPoints == 0 || st.DroppedPoints+st.Points != 500 {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "memory full") {
		t.Error("memory drops not logged")
	}
	if got := drainAll(t, s, 1<<20); !strings.HasSuffix(got, lines(499, 500)) {
		t.Errorf("newest point lost: %q", got)
	}
}

// TestSpoolKill9 runs a child process that appends numbered lines as fast
// as it can and reports each Append that returned; it is killed with
// SIGKILL at a random moment. Every reported line must be in the spool,
// in order, once.
func TestSpoolKill9(t *testing.T) {
	if dir := os.Getenv("P1_SPOOL_KILL_CHILD"); dir != "" {
		spoolChild(dir)
		return
	}
	dir := t.TempDir()
	total := 0
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolKill9$")
		cmd.Env = append(os.Environ(), "P1_SPOOL_KILL_CHILD="+dir, "P1_SPOOL_KILL_FROM="+strconv.Itoa(total))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		reported := total
		want := 200 + round*700 // kill at different points
		for sc.Scan() && reported < total+want {
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				reported = n
			}
		}
		cmd.Process.Kill()
		for sc.Scan() { // what the child wrote before it died
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				reported = n
			}
		}
		cmd.Wait()
		if reported == total {
			t.Fatal("child reported no append")
		}

		s := openSpool(t, Config{Dir: dir})
		got, _ := s.Peek(nil, 64<<20)
		s.Close()
		// Lines 0 … reported-1 were acknowledged by Append; the next one
		// may have been written before the kill and not yet reported.
		want2 := lines(0, reported)
		if !bytes.HasPrefix(got, []byte(want2)) {
			t.Fatalf("round %d: %d acknowledged lines, spool holds %d and not them in order", round, reported, bytes.Count(got, []byte{'\n'}))
		}
		if extra := string(got[len(want2):]); extra != "" && extra != lines(reported, reported+1) {
			t.Fatalf("round %d: after the acknowledged lines: %q", round, extra)
		}
		total = bytes.Count(got, []byte{'\n'})
		t.Logf("round %d: killed after %d acknowledged appends; spool holds %d lines", round, reported, total)
	}
}

// spoolChild appends line after line to the spool in dir, printing the
// number of lines acknowledged after each Append, until it is killed.
func spoolChild(dir string) {
	from, _ := strconv.Atoi(os.Getenv("P1_SPOOL_KILL_FROM"))
	s, err := Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(30 * time.Second)
	for i := from; time.Now().Before(deadline); i++ {
		if err := s.Append([]byte(lines(i, i+1))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(w, i+1)
		w.Flush()
	}
	os.Exit(2)
}

// FuzzSpoolOpen: whatever a segment file holds, OpenSpool neither fails nor
// panics, and hands out only whole lines of records whose checksum holds.
func FuzzSpoolOpen(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(Config{Dir: dir, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	s.Append([]byte(lines(0, 3)))
	s.Append([]byte(lines(3, 4)))
	s.Close()
	seed, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%020d%s", 1, segSuffix)))
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	// A segment with a dictionary (two copies, then records that use it).
	ddir := f.TempDir()
	if s, err = Open(Config{Dir: ddir, Logger: discardLogger()}); err != nil {
		f.Fatal(err)
	}
	s.Append([]byte(cycle(0, 4)))
	s.Append([]byte(cycle(1, 4)))
	s.Close()
	dseed, _ := os.ReadFile(filepath.Join(ddir, fmt.Sprintf("%020d%s", 1, segSuffix)))
	f.Add(dseed)
	f.Add([]byte(segMagic))
	f.Add([]byte("P1SP"))
	f.Add([]byte("not a spool"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d%s", 7, segSuffix)), data, 0o640)
		s, err := Open(Config{Dir: dir, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Append([]byte("last v=1 1\n"))
		got, _ := s.Peek(nil, 1<<20)
		if !bytes.HasSuffix(got, []byte("last v=1 1\n")) {
			t.Errorf("a new append is not handed out last: %q", got)
		}
	})
}
