package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cyclesOf returns n records' worth of realistic line protocol: cycle i
// holds points gateways lines.
func cycle(i, gateways int) string {
	var b strings.Builder
	for g := range gateways {
		fmt.Fprintf(&b, "p1,gateway=gw%04d,meter_id=E0031003000%04d taken_t1_kwh=%d.%03d,taken_t2_kwh=%d.%03d,power_taken_w=%d,voltage_l1_v=23%d.%d,tariff=2i %d\n",
			g, g, 12000+i, (g*7+i)%1000, 9000+i, (g*3+i)%1000, 300+(g*i)%2000, i%10, g%10, int64(1764547200+i*5)*1e9)
	}
	return b.String()
}

// dataRecs returns seg's records that hold lines (not its dictionary).
func dataRecs(seg *segment) []rec {
	var out []rec
	for _, r := range seg.recs {
		if r.codec != codecDict {
			out = append(out, r)
		}
	}
	return out
}

// TestSpoolDamageCostsOnlyTheDamagedRecord: a flipped byte in the middle of
// a segment, in a payload or in a header, costs the record it hits and no
// other; a cut segment costs its last record. Each loss is counted and
// logged with its byte range.
func TestSpoolDamageCostsOnlyTheDamagedRecord(t *testing.T) {
	const records, perRecord = 9, 10
	tests := []struct {
		name       string
		damage     func(data []byte, offs []int64) []byte
		lost       int // index of the record lost
		wantPoints int64
		log        string
	}{
		{"payload byte flipped", func(d []byte, o []int64) []byte { d[o[4]+recHeaderLen+5] ^= 0x10; return d }, 4, perRecord, "from_byte=" + "OFF4"},
		{"header byte flipped", func(d []byte, o []int64) []byte { d[o[4]+20] ^= 0x01; return d }, 4, perRecord, "from_byte=OFF4"},
		{"marker byte flipped", func(d []byte, o []int64) []byte { d[o[4]+1] ^= 0x01; return d }, 4, perRecord, "from_byte=OFF4"},
		{"truncated", func(d []byte, o []int64) []byte { return d[:o[8]+recHeaderLen+7] }, 8, perRecord, "torn record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, Config{Dir: dir})
			var want []string
			for i := range records {
				c := cycle(i, perRecord)
				s.Append([]byte(c))
				if i != tc.lost {
					want = append(want, c)
				}
			}
			var offs []int64
			for _, r := range dataRecs(s.segs[0]) {
				offs = append(offs, r.off)
			}
			s.Close()
			path := filepath.Join(dir, "00000000000000000001.seg")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(path, tc.damage(data, offs), 0o640)

			log, logs := captureLog(t)
			s = openSpool(t, Config{Dir: dir, Logger: log})
			st := s.Stats()
			if st.CorruptRecords != 1 || st.CorruptPoints != tc.wantPoints {
				t.Errorf("corrupt records %d points %d, want 1 and %d", st.CorruptRecords, st.CorruptPoints, tc.wantPoints)
			}
			if st.Points != int64((records-1)*perRecord) {
				t.Errorf("%d points waiting, want %d", st.Points, (records-1)*perRecord)
			}
			if w := strings.ReplaceAll(tc.log, "OFF4", fmt.Sprint(offs[4])); !strings.Contains(logs.String(), w) {
				t.Errorf("no log line with %q", w)
			}
			s.Append([]byte(cycle(100, perRecord)))
			got := drainAll(t, s, 1<<20)
			if w := strings.Join(want, "") + cycle(100, perRecord); got != w {
				t.Errorf("got %d lines, want %d", strings.Count(got, "\n"), strings.Count(w, "\n"))
			}
		})
	}
}

// TestSpoolDamageWhileRunning: a record damaged on disk after Open is found
// by Peek, counted and skipped; the records after it are delivered.
func TestSpoolDamageWhileRunning(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Config{Dir: dir})
	for i := range 5 {
		s.Append([]byte(cycle(i, 10)))
	}
	r := dataRecs(s.segs[0])[2]
	f, err := os.OpenFile(filepath.Join(dir, "00000000000000000001.seg"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff, 0xff}, r.off+recHeaderLen+3)
	f.Close()
	got := drainAll(t, s, 1<<20)
	want := cycle(0, 10) + cycle(1, 10) + cycle(3, 10) + cycle(4, 10)
	if got != want {
		t.Errorf("got %d lines, want %d", strings.Count(got, "\n"), strings.Count(want, "\n"))
	}
	if st := s.Stats(); st.CorruptRecords != 1 || st.CorruptPoints != 10 {
		t.Errorf("corrupt records %d points %d, want 1 and 10", st.CorruptRecords, st.CorruptPoints)
	}
}

// TestSpoolReadsFormat1: a spool written by p1logger before compression
// (testdata/v1, made by that version's Spool: 3 records of 4 points) is
// delivered whole after the upgrade, before what the new version appends.
func TestSpoolReadsFormat1(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"00000000000000000001.seg", "cursor"} {
		b, err := os.ReadFile(filepath.Join("testdata", "v1", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o640)
	}
	s := openSpool(t, Config{Dir: dir})
	if st := s.Stats(); st.Points != 12 || st.Batches != 3 {
		t.Fatalf("format-1 spool: %d points in %d batches, want 12 in 3", st.Points, st.Batches)
	}
	s.Append([]byte("m v=1i 1\n"))
	got := drainAll(t, s, 1<<20)
	var want strings.Builder
	for r := range 3 {
		for g := range 4 {
			fmt.Fprintf(&want, "p1,gateway=gw%d taken_kwh=%d.5,power_taken_w=%di %d\n", g, 1000+r, 300+g, int64(1764547200+r*5)*1e9)
		}
	}
	want.WriteString("m v=1i 1\n")
	if got != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got, want.String())
	}
	if files := segFiles(t, dir); len(files) != 1 || strings.HasSuffix(files[0], "01.seg") {
		t.Errorf("segments after delivery %v: the format-1 one should be gone", files)
	}
}

// TestCompressionRatio measures stored bytes per point for a cycle of a
// thousand gateways, the unit the README sizes the spool in.
func TestCompressionRatio(t *testing.T) {
	s := openSpool(t, Config{Dir: t.TempDir(), MaxBytes: 1 << 30})
	raw := 0
	for i := range 20 {
		c := cycle(i, 1000)
		raw += len(c)
		s.Append([]byte(c))
	}
	st := s.Stats()
	t.Logf("line protocol %.1f bytes/point, stored %.1f bytes/point (%.1fx)",
		float64(raw)/float64(st.Points), float64(st.DiskBytes)/float64(st.Points), float64(raw)/float64(st.DiskBytes))
	if st.DiskBytes*4 > int64(raw) {
		t.Errorf("stored %d bytes for %d of line protocol: compressed less than 4x", st.DiskBytes, raw)
	}
}
