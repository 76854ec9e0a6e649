package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// appendCycles appends n cycles of gateways lines each and returns them.
func appendCycles(s *Spool, from, n, gateways int) string {
	var all strings.Builder
	for i := from; i < from+n; i++ {
		c := cycle(i, gateways)
		s.Append([]byte(c))
		all.WriteString(c)
	}
	return all.String()
}

// simCycles returns the cycles of testdata/sim-cycles.lp: the p1 line
// protocol p1logger wrote for 10 simulated gateways (p1sim -per-conn), in
// one-second cycles of 10 lines.
func simCycles(t *testing.T) []string {
	b, err := os.ReadFile("testdata/sim-cycles.lp")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	var out []string
	for len(lines) >= 10 {
		out = append(out, strings.Join(lines[:10], ""))
		lines = lines[10:]
	}
	return out
}

// TestSpoolDictionary: a segment begins with two copies of its dictionary,
// the records after them use it, it stores real cycles in far fewer bytes
// than records compressed alone, and it survives a restart.
func TestSpoolDictionary(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Config{Dir: dir})
	cycles := simCycles(t)
	var want string
	alone := 0
	for _, c := range cycles {
		s.Append([]byte(c))
		want += c
		z, _ := compress(nil, []byte(c))
		alone += len(z) + recHeaderLen
	}
	seg := s.segs[0]
	if len(seg.recs) != len(cycles)+2 || seg.recs[0].codec != codecDict || seg.recs[1].codec != codecDict {
		t.Fatalf("%d records, first codecs %d %d; want %d records beginning with 2 dictionaries", len(seg.recs), seg.recs[0].codec, seg.recs[1].codec, len(cycles)+2)
	}
	for _, r := range seg.recs[2:] {
		if r.codec != codecZstdDict {
			t.Fatalf("record %d has codec %d, want %d", r.seq, r.codec, codecZstdDict)
		}
	}
	st := s.Stats()
	t.Logf("%d cycles of 10 gateways: %d bytes of line protocol, %d stored alone (%.1f per point), %d with the dictionary (%.1f per point)",
		len(cycles), len(want), alone, float64(alone)/float64(st.Points), st.StoredBytes, float64(st.StoredBytes)/float64(st.Points))
	if st.StoredBytes*2 > int64(alone) {
		t.Errorf("stored %d bytes with the dictionary (copies included); want at most half of the %d compressed alone", st.StoredBytes, alone)
	}
	if st.Points != int64(10*len(cycles)) || st.Batches != int64(len(cycles)) {
		t.Errorf("%d points in %d batches waiting, want %d in %d (dictionaries are not batches)", st.Points, st.Batches, 10*len(cycles), len(cycles))
	}
	s.Close()

	s = openSpool(t, Config{Dir: dir})
	more := appendCycles(s, 40, 3, 20) // appended with the dictionary read back from disk
	if got := drainAll(t, s, 1<<20); got != want+more {
		t.Errorf("after a restart got %d lines, want %d", strings.Count(got, "\n"), strings.Count(want+more, "\n"))
	}
	if st := s.Stats(); st.CorruptRecords != 0 || st.Points != 0 {
		t.Errorf("corrupt %d, waiting %d; want 0 and 0", st.CorruptRecords, st.Points)
	}
}

// TestSpoolDictionaryDamage: one damaged copy of the dictionary costs no
// point; with both damaged, the records that need it are lost, counted and
// logged, and the spool goes on.
func TestSpoolDictionaryDamage(t *testing.T) {
	for _, copies := range []int{1, 2} {
		t.Run(map[int]string{1: "one copy", 2: "both copies"}[copies], func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, Config{Dir: dir})
			want := appendCycles(s, 0, 10, 20)
			recs := s.segs[0].recs
			s.Close()
			path := filepath.Join(dir, "00000000000000000001.seg")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range copies {
				data[recs[i].off+recHeaderLen+3] ^= 0x40
			}
			os.WriteFile(path, data, 0o640)

			log, logs := captureLog(t)
			s = openSpool(t, Config{Dir: dir, Logger: log})
			got := drainAll(t, s, 1<<20)
			st := s.Stats()
			if copies == 1 {
				if got != want || st.CorruptRecords != 1 || st.CorruptPoints != 0 {
					t.Errorf("got %d lines, corrupt records %d points %d; want %d lines, 1 record, 0 points",
						strings.Count(got, "\n"), st.CorruptRecords, st.CorruptPoints, strings.Count(want, "\n"))
				}
				return
			}
			// Recovery sees the two copies as one damaged stretch: with no
			// intact record before it, it cannot tell how many it held.
			if got != "" || st.CorruptRecords != 11 || st.CorruptPoints != 200 {
				t.Errorf("got %d lines, corrupt records %d points %d; want 0 lines, 11 records (the copies, 10 batches), 200 points",
					strings.Count(got, "\n"), st.CorruptRecords, st.CorruptPoints)
			}
			if !strings.Contains(logs.String(), "no intact copy of a segment's dictionary") {
				t.Errorf("the lost dictionary is not logged:\n%s", logs.String())
			}
			more := appendCycles(s, 10, 3, 20)
			if got := drainAll(t, s, 1<<20); got != more {
				t.Errorf("after the loss got %d lines, want %d", strings.Count(got, "\n"), strings.Count(more, "\n"))
			}
		})
	}
}

// TestSpoolDictionaryKeptThroughReset: while InfluxDB keeps up, the only
// segment is emptied again and again; each time its dictionary is written
// anew before the next record, so a restart can still read what follows.
func TestSpoolDictionaryKeptThroughReset(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Config{Dir: dir, MaxBytes: 1 << 20}) // segments of 32 KiB, emptied past 2 KiB
	d := (*dictCodec)(nil)
	for i := range 50 {
		appendCycles(s, i, 1, 20)
		if i == 0 {
			d = s.segs[0].dict
		}
		drainAll(t, s, 1<<20)
	}
	seg := s.segs[0]
	if seg.dict != d {
		t.Error("the dictionary was made again; want it kept through resets")
	}
	want := appendCycles(s, 50, 5, 20)
	if seg.recs[0].codec != codecDict || seg.recs[1].codec != codecDict {
		t.Fatalf("after resets the segment begins with codecs %d %d, want the 2 dictionary copies", seg.recs[0].codec, seg.recs[1].codec)
	}
	s.Close()
	s = openSpool(t, Config{Dir: dir})
	if got := drainAll(t, s, 1<<20); got != want {
		t.Errorf("after a restart got %d lines, want %d", strings.Count(got, "\n"), strings.Count(want, "\n"))
	}
}
