package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// recover reads the cursor and the segments.
func (s *Spool) recover() error {
	var err error
	s.cursor, err = s.open(filepath.Join(s.dir, cursorName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var cur [cursorLen]byte
	if n, err := s.cursor.ReadAt(cur[:], 0); n == cursorLen {
		if crc32.Checksum(cur[:8], castagnoli) == binary.LittleEndian.Uint32(cur[8:]) {
			s.ackSeq = binary.LittleEndian.Uint64(cur[:8])
		} else {
			s.log.Warn("spool: cursor damaged; delivering everything the spool holds again (points sent twice are harmless)",
				"dir", s.dir)
		}
	} else if n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		s.log.Warn("spool: cursor unreadable; delivering everything the spool holds again (points sent twice are harmless)",
			"dir", s.dir, "reason", err)
	}

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var nums []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) || !e.Type().IsRegular() {
			continue
		}
		num, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue
		}
		nums = append(nums, num)
	}
	slices.Sort(nums)
	minSeq := uint64(1)
	for i, num := range nums {
		seg, err := s.openSegment(num, minSeq, i == len(nums)-1)
		if err != nil {
			return err
		}
		if seg == nil {
			continue
		}
		if len(seg.recs) > 0 {
			minSeq = seg.recs[len(seg.recs)-1].seq + 1
		}
		s.segs = append(s.segs, seg)
		s.diskBytes += seg.size
		for _, r := range seg.recs {
			s.pend.add(r)
		}
	}
	s.nextSeq = max(s.ackSeq, minSeq, 1)
	// Writing the cursor now gives it its disk block, so that rewriting it
	// in place keeps working on a disk that fills up later.
	s.writeCursor()

	// Remove what was delivered; find the first undelivered record.
	s.skipDelivered(s.ackSeq)
	for s.diskBytes > s.max && len(s.segs) > 1 {
		s.dropHead("spool: larger than P1_SPOOL_MAX_BYTES; oldest points dropped")
	}
	if st := s.statsLocked(); st.Batches > 0 {
		s.log.Info("spool: undelivered points from a previous run; delivering them first, oldest first",
			"dir", s.dir, "points", st.Points, "batches", st.Batches, "bytes", st.Bytes,
			"stored_bytes", st.StoredBytes, "oldest", st.Oldest.Format(time.RFC3339))
	}
	return nil
}

// damage is a stretch of a segment that holds no intact record.
type damage struct {
	from, to int64 // byte range in the segment
	records  int64 // records lost, at least 1
	points   int64 // lines lost; -1 when unknown
	why      error
}

// openSegment opens and checks segment num. Records must have a sequence of
// at least minSeq. It returns nil for a file that holds nothing (removed).
func (s *Spool) openSegment(num, minSeq uint64, last bool) (*segment, error) {
	path := s.segPath(num)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var v1 bool
	switch {
	case bytes.HasPrefix(data, []byte(segMagic)):
	case bytes.HasPrefix(data, []byte(segMagicV1)):
		v1 = true
	case len(data) <= len(segMagic) && (strings.HasPrefix(segMagic, string(data)) || strings.HasPrefix(segMagicV1, string(data))):
		// Created, but the crash came before the first record.
		s.log.Warn("spool: removing an empty segment", "file", path)
		os.Remove(path)
		return nil, nil
	default:
		bad := path + ".corrupt"
		s.log.Error("spool: not a spool segment; set aside", "file", path, "renamed_to", bad)
		if err := os.Rename(path, bad); err != nil {
			return nil, fmt.Errorf("spool: set aside %s: %w", path, err)
		}
		return nil, nil
	}
	seg := &segment{num: num, v1: v1, size: int64(len(data))}
	var damages []damage
	if v1 {
		damages = scanV1(data, minSeq, seg)
	} else {
		damages = scan(data, minSeq, seg)
	}
	for _, d := range damages {
		s.countCorrupt(path, d, last && d.to == int64(len(data)))
	}
	// Damage at the end of the newest segment is cut off, so that new
	// records follow the last intact one; elsewhere it stays and is
	// skipped, as the segment is removed once delivered anyway. A format-1
	// segment ends at its first damage.
	if k := len(damages); k > 0 && damages[k-1].to == int64(len(data)) && (last || v1) {
		end := damages[k-1].from
		if err := os.Truncate(path, end); err != nil {
			s.log.Error("spool: cannot truncate", "file", path, "reason", err)
		} else {
			seg.size = end
		}
	}
	if len(seg.recs) == 0 && !last {
		os.Remove(path)
		return nil, nil
	}
	if seg.f, err = s.open(path, os.O_RDWR, 0o640); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return seg, nil
}

// scan indexes the intact format-2 records of data into seg and returns
// the damaged stretches between them. After a damaged record it searches
// for the next marker that starts an intact record.
func scan(data []byte, minSeq uint64, seg *segment) []damage {
	var damages []damage
	off := segHeaderLen
	var prev *rec
	for off < int64(len(data)) {
		r, headerOK, err := parseRecord(data[off:], off)
		if err == nil && r.seq < minSeq {
			err = errSeqBack
		}
		if err == nil {
			seg.recs = append(seg.recs, r)
			if r.codec != codecDict {
				seg.data++
			}
			seg.lines = int64(r.before) + int64(r.lines)
			prev = &seg.recs[len(seg.recs)-1]
			minSeq = r.seq + 1
			off += r.size(false)
			continue
		}
		d := damage{from: off, why: err, records: 1, points: -1}
		if headerOK {
			d.points = int64(r.lines)
		}
		next, nr := nextRecord(data, off+1, minSeq)
		d.to = next
		if nr != nil {
			// The next intact record says how many records and lines
			// came before it.
			if prev != nil {
				d.records = max(int64(nr.seq-prev.seq-1), 1)
				d.points = int64(nr.before) - int64(prev.before) - int64(prev.lines)
			} else {
				d.points = int64(nr.before)
			}
		} else if errors.Is(err, errNoSync) {
			// Bytes after the last record that do not begin one: a
			// record whose marker was hit, or data that never was one.
			d.records = 0
		}
		damages = append(damages, d)
		off = next
	}
	return damages
}

// nextRecord finds the first intact record at or after from, with a
// sequence of at least minSeq. It returns len(data) and nil if there is none.
func nextRecord(data []byte, from int64, minSeq uint64) (int64, *rec) {
	for from < int64(len(data)) {
		i := bytes.Index(data[from:], []byte(recSync))
		if i < 0 {
			break
		}
		at := from + int64(i)
		if r, _, err := parseRecord(data[at:], at); err == nil && r.seq >= minSeq {
			return at, &r
		}
		from = at + 1
	}
	return int64(len(data)), nil
}

// scanV1 indexes the records of a format-1 segment into seg; its first
// damage ends it (format 1 has no marker to resynchronise on).
func scanV1(data []byte, minSeq uint64, seg *segment) []damage {
	off := segHeaderLen
	for off < int64(len(data)) {
		r, err := parseRecordV1(data[off:], off)
		if err == nil && r.seq < minSeq {
			err = errSeqBack
		}
		if err != nil {
			return []damage{{from: off, to: int64(len(data)), records: 1, points: -1, why: err}}
		}
		seg.recs = append(seg.recs, r)
		seg.data++
		minSeq = r.seq + 1
		off += r.size(true)
	}
	return nil
}

// countCorrupt counts and logs a damaged stretch. tail says it ends the
// newest segment, where a power cut while writing leaves a torn record.
func (s *Spool) countCorrupt(path string, d damage, tail bool) {
	s.corruptRecords.Add(d.records)
	if d.points > 0 {
		s.corruptPoints.Add(d.points)
	}
	msg := "spool: damaged records skipped; the intact records around them are kept"
	level := slog.LevelError
	if tail {
		msg = "spool: torn record at the end of the spool (the process or the machine stopped while writing it); truncated"
		level = slog.LevelWarn
	}
	points := any(d.points)
	if d.points < 0 {
		points = "unknown"
	}
	s.log.Log(context.Background(), level, msg, "file", path, "from_byte", d.from, "to_byte", d.to,
		"bytes", d.to-d.from, "records_lost", d.records, "points_lost", points, "reason", d.why.Error())
}
