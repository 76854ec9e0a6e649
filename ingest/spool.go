package ingest

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
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSpoolMaxBytes bounds a Spool when SpoolConfig.MaxBytes is 0: a week
// of one meter at the default 5 s cycle is about 75 MB (a three-phase p1
// point of ~550 bytes every 5 s, gas every 5 min, health and rollups every
// minute, record headers), so 128 MiB holds a week with room for longer
// names and more M-Bus devices.
const DefaultSpoolMaxBytes = 128 << 20

// MinSpoolMaxBytes is the smallest size bound OpenSpool accepts.
const MinSpoolMaxBytes = 64 << 10

// ErrSpoolClosed is returned by Append after Close.
var ErrSpoolClosed = errors.New("spool is closed")

const (
	segMagic     = "P1SPOOL\x01" // file header of a segment: name and format version
	segHeaderLen = int64(len(segMagic))
	recHeaderLen = 32
	segSuffix    = ".seg"
	cursorName   = "cursor"
	lockName     = "lock"
	cursorLen    = 16
	// diskRetry is how often a Spool whose disk failed tries it again.
	diskRetry = 10 * time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SpoolConfig configures OpenSpool. Zero fields take the defaults noted.
type SpoolConfig struct {
	// Dir holds the spool (P1_SPOOL_DIR). It is created if missing.
	Dir string
	// MaxBytes bounds the segment files on disk (P1_SPOOL_MAX_BYTES).
	// Default DefaultSpoolMaxBytes; at least MinSpoolMaxBytes.
	MaxBytes int64
	// SyncInterval is the longest time between fsyncs of appended data:
	// Append calls fsync when the last one is at least this old. Default 1s;
	// negative: fsync on every Append.
	SyncInterval time.Duration
	// RecordBytes bounds one record: a larger Append is cut at line ends.
	// Peek hands out at least one record, so it should not exceed the
	// Writer's MaxBatchBytes. Default 1 MiB (and at most MaxBytes/32).
	RecordBytes int
	// MemoryBytes bounds the memory that holds new points while the disk
	// cannot be written (full, read-only, failing). Default 64 MiB.
	MemoryBytes int64
	// Logger receives recoveries, drops and disk errors. Default slog.Default().
	Logger *slog.Logger

	// openFile replaces os.OpenFile, so that tests can make the disk fail.
	openFile func(name string, flag int, perm os.FileMode) (spoolFile, error)
	// now replaces time.Now, for tests.
	now func() time.Time
}

// spoolFile is what a Spool needs of an open file; *os.File has it.
type spoolFile interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Spool is a Buffer on disk (P1_SPOOL_DIR): every batch handed to Append is
// written to an append-only segment file before Append returns, so points
// survive InfluxDB outages, restarts and crashes of p1logger, and are
// delivered oldest first once InfluxDB answers again.
//
// # Files
//
// Dir holds segment files named by a 20-digit number that grows
// (00000000000000000001.seg, …), a cursor file, and a lock file that keeps
// a second p1logger from using the same directory. A segment starts with the
// 8 bytes "P1SPOOL\x01" and holds records, one per Append (a large one is
// cut at line ends into pieces of at most RecordBytes):
//
//	offset  size  field
//	0       4     payload length n (little endian)
//	4       4     CRC-32C of bytes 8 … 32+n
//	8       8     sequence number, +1 per record across all segments
//	16      8     append time, Unix nanoseconds
//	24      4     number of lines in the payload
//	28      4     zero
//	32      n     line protocol, whole lines
//
// The cursor file holds the sequence number below which every record was
// delivered (8 bytes) and its CRC-32C (4 bytes). Ack rewrites it in place and
// removes segments that hold only delivered records. A new segment is begun
// when the current one would exceed MaxBytes/32 (at most 4 MiB), so that
// dropping the oldest segment when full frees a small part of the spool.
// While InfluxDB keeps up, the only segment is emptied (truncated) once it
// holds more than a sixteenth of that, all of it delivered, so the files
// stay small and their size shows the backlog.
//
// # Durability
//
// Append writes with write(2) before it returns: once a batch is appended,
// a crash of the process (kill -9, out of memory, a panic) loses nothing,
// because the data is in the kernel. fsync is called by Append when the
// last fsync is at least SyncInterval (1 s) old, by the rotation to a new
// segment, and by Close: a power cut loses at most the appends of the last
// SyncInterval plus one cycle. The cursor is not fsynced: after a power cut
// it may be older than the deliveries, which only means some points are
// sent again.
//
// Sending a point again is harmless: InfluxDB identifies a point by
// measurement, tag set and timestamp, and a write of a point that exists
// replaces its field values with the same values. Every point p1logger
// writes carries an explicit timestamp (the time its telegram was received),
// so a batch delivered twice, after a crash between the write and its Ack
// or after a 413 split, leaves exactly one point per timestamp.
//
// # Recovery
//
// OpenSpool reads every segment and checks every record's length, CRC and
// sequence. After a damaged record (a crash while writing it, bit rot, a
// file cut short or edited) it resynchronises on the next intact record:
// the segment is rewritten without the damaged bytes (to a temporary file,
// fsynced, renamed over it), so only what was damaged is lost. Each loss is
// logged with the file and byte range and counted (Stats().CorruptRecords
// and CorruptPoints, also in DroppedPoints): exactly from the sequence
// numbers and the damaged record's own header where it survived, estimated
// from the lines per record otherwise; records below the cursor were
// delivered and are not counted. The same repair runs when a record cannot
// be read back while running. An unreadable cursor makes the spool deliver
// everything it holds again. A
// corrupt spool never stops p1logger.
//
// # Limits and failures
//
// The segment files never exceed MaxBytes: when an Append does not fit, the
// oldest segments are removed, undelivered points included; they are counted
// (Stats().DroppedPoints) and logged as errors. When the disk cannot be
// written (full, read-only, failing), Append logs it once, counts it, and
// keeps new batches in memory (bounded by MemoryBytes, oldest dropped) in
// order after those on disk; it tries the disk again every 10 s and then
// moves the batches held in memory to it. Append never blocks on InfluxDB
// and never fails before Close.
//
// A Spool is safe for concurrent use.
type Spool struct {
	dir      string
	max      int64
	segBytes int64
	recMax   int
	syncIvl  time.Duration
	memMax   int64
	log      *slog.Logger
	open     func(name string, flag int, perm os.FileMode) (spoolFile, error)
	now      func() time.Time
	unlock   func() error

	mu        sync.Mutex
	segs      []*segment // oldest first; the last one is appended to
	cursor    spoolFile
	nextSeq   uint64
	ackSeq    uint64 // records below this were delivered (or dropped)
	readOff   int64  // offset in segs[0] of its first undelivered record
	headAcked totals // records of segs[0] before readOff
	diskBytes int64  // sizes of all segment files
	mem       []memRecord
	memBytes  int64
	failing   bool // the disk failed: new batches go to mem
	lastTry   time.Time
	lastSync  time.Time
	dirDirty  bool
	closed    bool
	hdr       [recHeaderLen]byte
	wbuf      []byte // header and payload of the record being written
	dropLog   rateLimit
	errLog    rateLimit
	failLog   rateLimit

	notify         chan struct{}
	dropped        atomic.Int64 // points dropped: the spool was full, or damaged
	corruptRecords atomic.Int64 // records lost to damage (scanSegment)
	corruptPoints  atomic.Int64 // points in those records
	diskErrors     atomic.Int64
}

// segment is one segment file.
type segment struct {
	num   uint64
	f     spoolFile
	size  int64  // valid bytes, header included
	first uint64 // sequence of the first record; 0 when empty
	next  uint64 // one past the sequence of the last record
	all   totals // every record in the file
	dirty bool   // written since the last fsync
	// accounted is, after recovery, one past the last sequence number the
	// file held or was counted as lost in; a gap from there to the next
	// segment's first record is records lost with the end of this one.
	accounted uint64
	cutShort  bool // recovery found its end damaged
}

// totals counts records.
type totals struct {
	records, lines, payload int64
}

func (t *totals) add(lines, payload int64) {
	t.records++
	t.lines += lines
	t.payload += payload
}

func (t totals) minus(u totals) totals {
	return totals{t.records - u.records, t.lines - u.lines, t.payload - u.payload}
}

// memRecord is a record held in memory while the disk fails.
type memRecord struct {
	seq   uint64
	at    time.Time
	lines int64
	data  []byte
}

// recHeader is a decoded record header.
type recHeader struct {
	n     int64
	crc   uint32
	seq   uint64
	at    time.Time
	lines int64
}

var _ Buffer = (*Spool)(nil)

// OpenSpool opens the spool in cfg.Dir, creating it if needed, and recovers
// what a previous run left: undelivered records are handed out first. It
// fails when the directory cannot be created or locked (another p1logger
// uses it) or a file cannot be opened; damaged records are not an error
// (they are truncated away and logged).
func OpenSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultSpoolMaxBytes
	}
	if cfg.MaxBytes < MinSpoolMaxBytes {
		return nil, fmt.Errorf("spool: size bound %d bytes is below the minimum of %d", cfg.MaxBytes, MinSpoolMaxBytes)
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.openFile == nil {
		cfg.openFile = func(name string, flag int, perm os.FileMode) (spoolFile, error) {
			return os.OpenFile(name, flag, perm)
		}
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	s := &Spool{
		dir:      cfg.Dir,
		max:      cfg.MaxBytes,
		segBytes: min(max(cfg.MaxBytes/32, 4<<10), 4<<20),
		syncIvl:  cfg.SyncInterval,
		memMax:   cfg.MemoryBytes,
		log:      cfg.Logger,
		open:     cfg.openFile,
		now:      cfg.now,
		notify:   make(chan struct{}, 1),
	}
	if cfg.RecordBytes <= 0 {
		cfg.RecordBytes = 1 << 20
	}
	s.recMax = int(min(s.segBytes-segHeaderLen-recHeaderLen, int64(cfg.RecordBytes)))
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	unlock, err := lockDir(filepath.Join(s.dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", s.dir, err)
	}
	s.unlock = unlock
	if err := s.recover(); err != nil {
		s.closeFiles()
		unlock()
		return nil, err
	}
	return s, nil
}

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
		if n := len(s.segs); n > 0 && seg.all.records > 0 {
			// A segment cut short (truncated, or its end damaged) loses
			// records the next segment's sequence numbers reveal. Only
			// then: other gaps are points already counted as dropped
			// (the memory fallback's, when the disk was unusable).
			prev := s.segs[n-1]
			if from := max(prev.accounted, s.ackSeq); prev.cutShort && seg.first > from {
				lost := int64(seg.first - from)
				var sc segScan
				sc.all = prev.all
				points := sc.estimatePoints(lost, nil)
				s.log.Error("spool: records missing at the end of a segment (cut short); lost",
					"file", s.segPath(prev.num), "offset", prev.size, "records_lost", lost, "points_lost", points,
					"points_estimated_from", "lines per record of the segment")
				s.countCorrupt(lost, points)
			}
		}
		if seg.all.records > 0 {
			minSeq = seg.next
		}
		s.segs = append(s.segs, seg)
		s.diskBytes += seg.size
	}
	s.nextSeq = max(s.ackSeq, minSeq, 1)
	// Writing the cursor now gives it its disk block, so that rewriting it
	// in place keeps working on a disk that fills up later.
	s.writeCursor()

	// Remove what was delivered; find the first undelivered record.
	for len(s.segs) > 0 && s.segs[0].next <= s.ackSeq {
		s.removeHead()
	}
	s.readOff = segHeaderLen
	if len(s.segs) > 0 {
		s.skipDelivered(s.ackSeq)
	}
	for s.diskBytes > s.max && len(s.segs) > 1 {
		s.dropHead("spool: larger than P1_SPOOL_MAX_BYTES; oldest points dropped")
	}
	if st := s.statsLocked(); st.Batches > 0 {
		s.log.Info("spool: undelivered points from a previous run; delivering them first, oldest first",
			"dir", s.dir, "points", st.Points, "batches", st.Batches, "bytes", st.Bytes,
			"oldest", st.Oldest.Format(time.RFC3339))
	}
	return nil
}

// openSegment opens and checks segment num. Records must have a sequence of
// at least minSeq. It returns nil for a file that holds nothing (removed).
func (s *Spool) openSegment(num, minSeq uint64, last bool) (*segment, error) {
	path := s.segPath(num)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if len(data) < len(segMagic) || string(data[:len(segMagic)]) != segMagic {
		if len(data) <= len(segMagic) && strings.HasPrefix(segMagic, string(data)) {
			// Created, but the crash came before the first record.
			s.log.Warn("spool: removing an empty segment", "file", path)
			os.Remove(path)
			return nil, nil
		}
		bad := path + ".corrupt"
		s.log.Error("spool: not a spool segment; set aside", "file", path, "renamed_to", bad)
		if err := os.Rename(path, bad); err != nil {
			return nil, fmt.Errorf("spool: set aside %s: %w", path, err)
		}
		return nil, nil
	}
	seg := &segment{num: num}
	sc := scanSegment(data, minSeq, s.ackSeq)
	seg.all, seg.first, seg.next, seg.accounted = sc.all, sc.first, sc.next, sc.accounted
	end := sc.end
	if n := len(sc.damage); n > 0 && sc.damage[n-1].to == int64(len(data)) {
		seg.cutShort = true
	}
	for _, d := range sc.damage {
		msg := "spool: damaged record in the middle of the spool; skipped, the intact records after it are kept"
		level := slog.LevelError
		if d.to == int64(len(data)) {
			if last {
				msg = "spool: torn record at the end of the spool (the process stopped while writing it); truncated"
				level = slog.LevelWarn
			} else {
				msg = "spool: damaged record in the middle of the spool; the end of its segment is lost"
			}
		}
		s.log.Log(context.Background(), level, msg, "file", path, "offset", d.from, "bytes_removed", d.to-d.from,
			"records_lost", d.records, "points_lost", d.points, "reason", d.why)
		s.countCorrupt(d.records, d.points)
	}
	if len(sc.damage) > 0 {
		var err error
		if end, err = rewriteSegment(path, data, sc); err != nil {
			return nil, fmt.Errorf("spool: repair %s: %w", path, err)
		}
	}
	seg.size = end
	if seg.all.records == 0 && !last {
		os.Remove(path)
		return nil, nil
	}
	if seg.f, err = s.open(path, os.O_RDWR, 0o640); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return seg, nil
}

// segScan is what scanSegment found in a segment file.
type segScan struct {
	all         totals
	first, next uint64     // sequence of the first record, one past the last
	end         int64      // size of the segment once the damage is cut out
	keep        [][2]int64 // byte ranges of the intact records, in order
	accounted   uint64     // one past the last sequence kept or counted as lost
	damage      []damage
}

// damage is a byte range of a segment that holds no intact record.
type damage struct {
	from, to        int64
	records, points int64 // lost; see scanSegment for how they are counted
	why             string
}

// resyncWindow bounds how far ahead of the expected sequence number a
// record found while resynchronising may be. A real record after damage is
// at most a segment's worth of records ahead (a few thousand); random bytes
// pass this, the zero padding and the checksum together about once in 2^70.
const resyncWindow = 1 << 24

// scanSegment checks the records of a segment's data (the whole file,
// header included). Records must have a sequence of at least minSeq, each
// one above the one before.
//
// After a damaged record (a checksum mismatch, a length past the end, a
// sequence that goes back) it resynchronises: it looks, byte by byte, for
// the next offset where an intact record starts, and goes on from there, so
// one flipped byte costs one record and not the rest of the segment. A
// record header is 32 bytes with 4 bytes of zeros, a sequence number close
// above the last good one and a CRC-32C over header and payload: finding one
// by chance in damaged bytes does not happen in practice (resyncWindow).
//
// What a damaged range held is counted, exactly where it can be: the lost
// records are the gap in sequence numbers to the next intact record (or 1
// when a plausible header starts the range and nothing follows); the lost
// points are the line count of the range's own header when it is one
// record with a readable header, and otherwise an estimate: the records
// times the lines per intact record, or the line ends left in the range
// where those are more.
func scanSegment(data []byte, minSeq, ackSeq uint64) segScan {
	var sc segScan
	size := int64(len(data))
	off := segHeaderLen
	sc.end = segHeaderLen
	for off < size {
		h, why := recordAt(data, off, minSeq)
		if why == "" {
			if sc.all.records == 0 {
				sc.first = h.seq
			}
			sc.all.add(h.lines, h.n)
			sc.keep = append(sc.keep, [2]int64{off, off + recHeaderLen + h.n})
			sc.end += recHeaderLen + h.n
			minSeq = h.seq + 1
			sc.next = minSeq
			off += recHeaderLen + h.n
			continue
		}
		next := size
		var nh recHeader
		for p := off + 1; p+recHeaderLen <= size; p++ {
			if c, w := recordAt(data, p, minSeq); w == "" && c.seq-minSeq < resyncWindow {
				next, nh = p, c
				break
			}
		}
		d := damage{from: off, to: next, why: why}
		own := decodeHeaderIfWhole(data, off)
		ownOK := own.seq == minSeq && own.lines <= own.n
		lostTo := minSeq // one past the last lost sequence number
		switch {
		case next < size:
			lostTo = nh.seq
		case ownOK && own.n > 0:
			lostTo = minSeq + 1
		}
		d.records = int64(lostTo - minSeq)
		switch {
		case d.records == 0:
		case ownOK && d.records == 1:
			d.points = own.lines
		default:
			d.points = -1 // estimated below, from the intact records
		}
		if lostTo <= ackSeq {
			d.records, d.points = 0, 0 // delivered before the damage: nothing lost
		}
		minSeq = max(minSeq, lostTo)
		sc.damage = append(sc.damage, d)
		off = next
	}
	sc.accounted = minSeq
	for i := range sc.damage {
		if d := &sc.damage[i]; d.points < 0 {
			d.points = sc.estimatePoints(d.records, data[d.from:d.to])
		}
	}
	return sc
}

// estimatePoints is the number of points in n lost records whose bytes (what
// is left of them) are b: n times the lines per intact record of the
// segment, or the line ends in b where those are more.
func (sc *segScan) estimatePoints(n int64, b []byte) int64 {
	est := int64(0)
	if sc.all.records > 0 {
		est = (n*sc.all.lines + sc.all.records/2) / sc.all.records
	}
	return max(est, int64(bytes.Count(b, []byte{'\n'})))
}

// recordAt checks the record at off of data: it returns its header, or why
// it is not an intact record with a sequence of at least minSeq.
func recordAt(data []byte, off int64, minSeq uint64) (recHeader, string) {
	rest := data[off:]
	if len(rest) < recHeaderLen {
		return recHeader{}, "record header cut short"
	}
	h := decodeHeader(rest)
	if h.n > int64(len(rest)-recHeaderLen) {
		return h, "record cut short"
	}
	if binary.LittleEndian.Uint32(rest[28:]) != 0 || h.lines > h.n {
		return h, "record header damaged"
	}
	if crc32.Checksum(rest[8:recHeaderLen+h.n], castagnoli) != h.crc {
		return h, "checksum mismatch"
	}
	if h.seq < minSeq {
		return h, "sequence number goes back"
	}
	return h, ""
}

// decodeHeaderIfWhole decodes the header at off, or returns a zero header
// when fewer than its 32 bytes are left.
func decodeHeaderIfWhole(data []byte, off int64) recHeader {
	if int64(len(data))-off < recHeaderLen {
		return recHeader{}
	}
	return decodeHeader(data[off:])
}

// rewriteSegment replaces the segment file at path by one that holds only
// the intact records of sc, written to a temporary file, fsynced and renamed
// over the old one, so a crash during the repair leaves one or the other.
// It returns the new size.
func rewriteSegment(path string, data []byte, sc segScan) (int64, error) {
	out := make([]byte, 0, sc.end)
	out = append(out, data[:segHeaderLen]...)
	for _, r := range sc.keep {
		out = append(out, data[r[0]:r[1]]...)
	}
	tmp := path + ".repair"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, err
	}
	if _, err = f.Write(out); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return int64(len(out)), nil
}

func decodeHeader(b []byte) recHeader {
	return recHeader{
		n:     int64(binary.LittleEndian.Uint32(b[0:])),
		crc:   binary.LittleEndian.Uint32(b[4:]),
		seq:   binary.LittleEndian.Uint64(b[8:]),
		at:    time.Unix(0, int64(binary.LittleEndian.Uint64(b[16:]))),
		lines: int64(binary.LittleEndian.Uint32(b[24:])),
	}
}

func (s *Spool) segPath(num uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", num, segSuffix))
}

// Append implements Buffer: it writes lines to the newest segment (or, while
// the disk fails, to memory) and returns nil. It fails only after Close.
func (s *Spool) Append(lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSpoolClosed
	}
	now := s.now()
	for len(lines) > 0 {
		n := cutLines(lines, s.recMax)
		s.appendRecord(lines[:n], now)
		lines = lines[n:]
	}
	s.maybeSync(now)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// cutLines returns the length of the first piece of lines to store: all of
// it if it fits in max, else up to the last line end within max, or the first
// line if that alone is longer.
func cutLines(lines []byte, max int) int {
	if len(lines) <= max {
		return len(lines)
	}
	n := bytes.LastIndexByte(lines[:max], '\n') + 1
	if n == 0 {
		n = bytes.IndexByte(lines, '\n') + 1
		if n == 0 {
			n = len(lines)
		}
	}
	return n
}

func (s *Spool) appendRecord(p []byte, now time.Time) {
	seq := s.nextSeq
	s.nextSeq++
	lines := int64(bytes.Count(p, []byte{'\n'}))
	if s.failing && now.Sub(s.lastTry) >= diskRetry {
		s.retryDisk(now)
	}
	if !s.failing {
		err := s.writeRecord(seq, now, lines, p)
		if err == nil {
			return
		}
		s.diskFailed(err, now)
	}
	s.mem = append(s.mem, memRecord{seq: seq, at: now, lines: lines, data: bytes.Clone(p)})
	s.memBytes += int64(len(p))
	dropped := int64(0)
	for s.memBytes > s.memMax && len(s.mem) > 1 {
		dropped += s.mem[0].lines
		s.memBytes -= int64(len(s.mem[0].data))
		s.mem[0] = memRecord{}
		s.mem = s.mem[1:]
	}
	if dropped > 0 {
		s.countDrop(dropped, "spool: disk unusable and memory full; oldest points dropped")
	}
}

// writeRecord writes one record to the newest segment, making room first.
func (s *Spool) writeRecord(seq uint64, at time.Time, lines int64, p []byte) error {
	size := int64(recHeaderLen + len(p))
	tail := s.tail()
	if tail == nil || (tail.all.records > 0 && tail.size+size > s.segBytes) {
		var err error
		if tail, err = s.rotate(); err != nil {
			return err
		}
	}
	for s.diskBytes+size > s.max && len(s.segs) > 1 {
		s.dropHead("spool full (P1_SPOOL_MAX_BYTES): oldest points dropped")
	}
	h := s.hdr[:]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(p)))
	binary.LittleEndian.PutUint64(h[8:], seq)
	binary.LittleEndian.PutUint64(h[16:], uint64(at.UnixNano()))
	binary.LittleEndian.PutUint32(h[24:], uint32(lines))
	binary.LittleEndian.PutUint32(h[28:], 0)
	binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc32.Checksum(h[8:], castagnoli), castagnoli, p))
	// One write for header and payload keeps a record whole in the kernel:
	// a crash of the process cannot separate them.
	s.wbuf = append(append(s.wbuf[:0], h...), p...)
	if _, err := tail.f.WriteAt(s.wbuf, tail.size); err != nil {
		// Whatever part was written lies past tail.size: the next record
		// overwrites it, and a restart before that truncates it.
		tail.f.Truncate(tail.size)
		if !s.resetTail() {
			return err
		}
		// The only segment held nothing undelivered: emptied, it may
		// leave room on a full disk.
		if _, err := tail.f.WriteAt(s.wbuf, tail.size); err != nil {
			tail.f.Truncate(tail.size)
			return err
		}
	}
	if tail.all.records == 0 {
		tail.first = seq
	}
	tail.all.add(lines, int64(len(p)))
	tail.next = seq + 1
	tail.size += size
	tail.dirty = true
	s.diskBytes += size
	return nil
}

func (s *Spool) tail() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// rotate begins a new segment. The previous one is fsynced, and removed if
// everything in it was delivered.
func (s *Spool) rotate() (*segment, error) {
	num := uint64(1)
	old := s.tail()
	if old != nil {
		num = old.num + 1
		if old.dirty {
			if err := old.f.Sync(); err != nil {
				return nil, err
			}
			old.dirty = false
		}
	}
	path := s.segPath(num)
	f, err := s.open(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt([]byte(segMagic), 0); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	seg := &segment{num: num, f: f, size: segHeaderLen, dirty: true}
	s.segs = append(s.segs, seg)
	s.diskBytes += seg.size
	s.dirDirty = true
	if old != nil && len(s.segs) == 2 && s.readOff >= old.size {
		s.removeHead()
	}
	return seg, nil
}

// resetTail empties the only segment if everything in it was delivered,
// and reports whether it did.
func (s *Spool) resetTail() bool {
	if len(s.segs) != 1 || s.readOff < s.segs[0].size || s.segs[0].size == segHeaderLen {
		return false
	}
	seg := s.segs[0]
	if err := seg.f.Truncate(segHeaderLen); err != nil {
		return false
	}
	s.diskBytes -= seg.size - segHeaderLen
	seg.size, seg.all, seg.first, seg.next = segHeaderLen, totals{}, 0, 0
	s.readOff, s.headAcked = segHeaderLen, totals{}
	return true
}

// removeHead deletes the oldest segment, whose records were all delivered.
func (s *Spool) removeHead() {
	seg := s.segs[0]
	seg.f.Close()
	if err := os.Remove(s.segPath(seg.num)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logDiskError("spool: cannot remove a delivered segment", err)
	}
	s.diskBytes -= seg.size
	s.segs[0] = nil
	s.segs = s.segs[1:]
	s.readOff = segHeaderLen
	s.headAcked = totals{}
	s.dirDirty = true
}

// dropHead deletes the oldest segment with whatever it holds undelivered.
func (s *Spool) dropHead(msg string) {
	seg := s.segs[0]
	lost := seg.all.minus(s.headAcked)
	s.ackSeq = max(s.ackSeq, seg.next)
	s.removeHead()
	s.writeCursor()
	if lost.lines > 0 {
		s.countDrop(lost.lines, msg)
	}
}

func (s *Spool) countDrop(points int64, msg string) {
	total := s.dropped.Add(points)
	if ok, suppressed := s.dropLog.allow(time.Now(), 10*time.Second); ok {
		s.log.Error(msg, "points", points, "dropped_total", total, "spool_bytes", s.diskBytes,
			"max_bytes", s.max, "memory_bytes", s.memBytes, "suppressed_since_last", suppressed)
	}
}

// diskFailed switches new batches to memory, logging the first failure of
// a series.
func (s *Spool) diskFailed(err error, now time.Time) {
	s.diskErrors.Add(1)
	s.lastTry = now
	if s.failing {
		return
	}
	s.failing = true
	// A disk that fails, recovers and fails again is logged at most once
	// a minute.
	if ok, suppressed := s.failLog.allow(now, time.Minute); ok {
		s.log.Error("spool: cannot write to the spool directory; keeping new points in memory until it can be written again",
			"dir", s.dir, "reason", err, "memory_limit_bytes", s.memMax, "retry_every", diskRetry,
			"failures_since_last", suppressed)
	}
}

// retryDisk moves the batches held in memory to disk, oldest first, and
// ends the failure if all of them fit.
func (s *Spool) retryDisk(now time.Time) {
	s.lastTry = now
	moved := 0
	for len(s.mem) > 0 {
		r := s.mem[0]
		if err := s.writeRecord(r.seq, r.at, r.lines, r.data); err != nil {
			s.diskErrors.Add(1)
			return
		}
		moved++
		s.memBytes -= int64(len(r.data))
		s.mem = s.mem[1:]
	}
	s.failing = false
	s.mem = nil
	s.log.Info("spool: the spool directory can be written again; points held in memory moved to it",
		"dir", s.dir, "batches", moved)
}

// maybeSync fsyncs written segments (and the directory after files came and
// went) when the last fsync is at least SyncInterval old.
func (s *Spool) maybeSync(now time.Time) {
	if s.syncIvl > 0 && now.Sub(s.lastSync) < s.syncIvl {
		return
	}
	s.syncLocked(now)
}

func (s *Spool) syncLocked(now time.Time) {
	s.lastSync = now
	for _, seg := range s.segs {
		if !seg.dirty {
			continue
		}
		if err := seg.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the data:
			// treat the disk as failing until it proves otherwise.
			s.diskFailed(fmt.Errorf("fsync: %w", err), now)
			return
		}
		seg.dirty = false
	}
	if s.dirDirty {
		if d, err := os.Open(s.dir); err == nil {
			d.Sync()
			d.Close()
		}
		s.dirDirty = false
	}
}

// Peek implements Buffer: batches come from disk, oldest first, then from
// memory. A record that cannot be read back is logged, counted and cut out
// of its segment (see damaged); the intact records after it are handed out.
func (s *Spool) Peek(dst []byte, limit int) ([]byte, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, 0
	}
	var token uint64
	n := 0
	// A repair rewrites a segment, so the walk starts again after one;
	// each repair leaves only intact records, so a few rounds suffice.
	for round := 0; ; round++ {
		var bad bool
		dst, token, n, bad = s.peekDisk(dst, limit, token, n, round < 3)
		if !bad {
			break
		}
		if n > 0 {
			return dst, token
		}
	}
	for _, r := range s.mem {
		if n > 0 && len(dst)+len(r.data) > limit {
			break
		}
		dst = append(dst, r.data...)
		token = r.seq + 1
		n++
	}
	return dst, token
}

// peekDisk appends records from the segments to dst, as Peek. It stops and
// reports bad after repairing a damaged record when repair is set (without
// it, it skips the rest of the damaged segment for this call).
func (s *Spool) peekDisk(dst []byte, limit int, token uint64, n int, repair bool) ([]byte, uint64, int, bool) {
	for i := 0; i < len(s.segs); i++ {
		seg := s.segs[i]
		off := segHeaderLen
		if i == 0 {
			off = s.readOff
		}
		for off < seg.size {
			h, err := s.readHeader(seg, off)
			if err == nil {
				if n > 0 && len(dst)+int(h.n) > limit {
					return dst, token, n, false
				}
				start := len(dst)
				dst = slices.Grow(dst, int(h.n))[:start+int(h.n)]
				if _, err = seg.f.ReadAt(dst[start:], off+recHeaderLen); err == nil &&
					crc32.Update(crc32.Checksum(s.hdr[8:], castagnoli), castagnoli, dst[start:]) != h.crc {
					err = errors.New("checksum mismatch")
				}
				if err != nil {
					dst = dst[:start]
				}
			}
			if err != nil {
				if !repair {
					break
				}
				s.damaged(seg, off, err)
				return dst, token, n, true
			}
			token = h.seq + 1
			n++
			off += recHeaderLen + h.n
		}
	}
	return dst, token, n, false
}

// readHeader reads the record header at off of seg into s.hdr.
func (s *Spool) readHeader(seg *segment, off int64) (recHeader, error) {
	if seg.size-off < recHeaderLen {
		return recHeader{}, errors.New("record header cut short")
	}
	if _, err := seg.f.ReadAt(s.hdr[:], off); err != nil {
		return recHeader{}, err
	}
	h := decodeHeader(s.hdr[:])
	if h.n > seg.size-off-recHeaderLen {
		return recHeader{}, errors.New("record cut short")
	}
	return h, nil
}

// damaged handles a record of seg at off that cannot be read back while
// running (bit rot, a file changed under us): the segment is scanned again,
// resynchronising after the damage (see scanSegment), and rewritten with its
// intact records only. What was lost and not yet delivered is counted as
// corrupt and as dropped. If the file cannot be read or rewritten at all,
// the segment ends at off.
func (s *Spool) damaged(seg *segment, off int64, why error) {
	path := s.segPath(seg.num)
	oldPending := seg.all
	if seg == s.segs[0] {
		oldPending = seg.all.minus(s.headAcked)
	}
	data := make([]byte, seg.size)
	var sc segScan
	_, err := seg.f.ReadAt(data, 0)
	if err == nil {
		sc = scanSegment(data, 0, 0)
		var f spoolFile
		if sc.end, err = rewriteSegment(path, data, sc); err == nil {
			if f, err = s.open(path, os.O_RDWR, 0o640); err == nil {
				seg.f.Close()
				seg.f = f
			}
		}
	}
	if err != nil {
		// Keep what comes before off, as the checks up to there passed.
		sc = scanSegment(data[:max(off, segHeaderLen)], 0, 0)
		sc.end = max(sc.end, segHeaderLen)
		seg.f.Truncate(sc.end)
	}
	s.diskBytes -= seg.size - sc.end
	seg.size, seg.all, seg.first, seg.next = sc.end, sc.all, sc.first, sc.next
	newPending := seg.all
	if seg == s.segs[0] {
		// Find the first undelivered record again: offsets have moved.
		s.readOff, s.headAcked = segHeaderLen, totals{}
		for _, r := range sc.keep {
			h := decodeHeader(data[r[0]:])
			if h.seq >= s.ackSeq {
				break
			}
			s.readOff = r[1] - r[0] + s.readOff
			s.headAcked.add(h.lines, h.n)
		}
		newPending = seg.all.minus(s.headAcked)
	}
	lost := oldPending.minus(newPending)
	s.log.Error("spool: a record cannot be read back; skipped, the intact records after it are kept",
		"file", path, "offset", off, "records_lost", lost.records, "points_lost", lost.lines,
		"bytes_removed", int64(len(data))-sc.end, "reason", why)
	s.countCorrupt(lost.records, lost.lines)
}

// countCorrupt counts records and points lost to damage in the spool; the
// points count as dropped too.
func (s *Spool) countCorrupt(records, points int64) {
	if records <= 0 && points <= 0 {
		return
	}
	s.corruptRecords.Add(max(records, 0))
	s.corruptPoints.Add(max(points, 0))
	s.dropped.Add(max(points, 0))
}

// Ack implements Buffer: records below token are delivered. Segments that
// hold nothing undelivered are removed, and the cursor is rewritten.
func (s *Spool) Ack(token uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || token <= s.ackSeq {
		return
	}
	s.skipDelivered(token)
	s.ackSeq = token
	i := 0
	for i < len(s.mem) && s.mem[i].seq < token {
		s.memBytes -= int64(len(s.mem[i].data))
		i++
	}
	clear(s.mem[:i])
	s.mem = s.mem[i:]
	s.writeCursor()
	// While InfluxDB keeps up, the only segment holds nothing undelivered
	// after each Ack: emptying it now and then keeps the spool small, so
	// that its size on disk shows the backlog.
	if len(s.segs) == 1 && s.segs[0].size > s.segBytes/16 {
		s.resetTail()
	}
}

// skipDelivered moves the read offset past records below token, removing
// segments left empty of undelivered records (but not the newest).
func (s *Spool) skipDelivered(token uint64) {
	repaired := false
	for len(s.segs) > 0 {
		seg := s.segs[0]
		for s.readOff < seg.size {
			h, err := s.readHeader(seg, s.readOff)
			if err != nil {
				if repaired {
					return
				}
				// Repaired, the segment may still hold undelivered records
				// after the damage: look at it again.
				s.damaged(seg, s.readOff, err)
				repaired = true
				continue
			}
			if h.seq >= token {
				return
			}
			s.readOff += recHeaderLen + h.n
			s.headAcked.add(h.lines, h.n)
		}
		repaired = false
		if len(s.segs) == 1 {
			return
		}
		s.removeHead()
	}
}

func (s *Spool) writeCursor() {
	var cur [cursorLen]byte
	binary.LittleEndian.PutUint64(cur[:], s.ackSeq)
	binary.LittleEndian.PutUint32(cur[8:], crc32.Checksum(cur[:8], castagnoli))
	if _, err := s.cursor.WriteAt(cur[:], 0); err != nil {
		s.logDiskError("spool: cannot update the cursor; delivered points may be sent again after a restart", err)
	}
}

func (s *Spool) logDiskError(msg string, err error) {
	s.diskErrors.Add(1)
	if ok, suppressed := s.errLog.allow(time.Now(), time.Minute); ok {
		s.log.Error(msg, "dir", s.dir, "reason", err, "suppressed_since_last", suppressed)
	}
}

// Notify implements Buffer.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Bytes implements Buffer: line protocol not yet delivered, on disk and in
// memory.
func (s *Spool) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.pending().payload + s.memBytes)
}

// pending totals the undelivered records on disk.
func (s *Spool) pending() totals {
	var t totals
	for _, seg := range s.segs {
		t.records += seg.all.records
		t.lines += seg.all.lines
		t.payload += seg.all.payload
	}
	return t.minus(s.headAcked)
}

// Stats implements Buffer.
func (s *Spool) Stats() BufferStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Spool) statsLocked() BufferStats {
	p := s.pending()
	st := BufferStats{
		Bytes:          p.payload + s.memBytes,
		Batches:        p.records + int64(len(s.mem)),
		Points:         p.lines,
		DroppedPoints:  s.dropped.Load(),
		CorruptRecords: s.corruptRecords.Load(),
		CorruptPoints:  s.corruptPoints.Load(),
		Durable:        true,
		DiskBytes:      s.diskBytes,
		MaxBytes:       s.max,
		DiskErrors:     s.diskErrors.Load(),
		MemoryFallback: s.failing,
		MemoryBytes:    s.memBytes,
	}
	for _, r := range s.mem {
		st.Points += r.lines
	}
	if p.records > 0 && !s.closed {
		for i, seg := range s.segs {
			off := segHeaderLen
			if i == 0 {
				off = s.readOff
			}
			if off < seg.size {
				if h, err := s.readHeader(seg, off); err == nil {
					st.Oldest = h.at
				}
				break
			}
		}
	} else if len(s.mem) > 0 {
		st.Oldest = s.mem[0].at
	}
	return st
}

// Close fsyncs and closes the spool's files and releases the directory.
// What was not delivered stays for the next OpenSpool. Append fails after
// Close; closing twice does nothing.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if len(s.mem) > 0 {
		s.retryDisk(s.now())
		if len(s.mem) > 0 {
			s.log.Error("spool: closing with points that could not be written to disk; they are lost",
				"batches", len(s.mem), "bytes", s.memBytes)
		}
	}
	s.syncLocked(s.now())
	s.closed = true
	s.closeFiles()
	return s.unlock()
}

func (s *Spool) closeFiles() {
	for _, seg := range s.segs {
		seg.f.Close()
	}
	if s.cursor != nil {
		s.cursor.Close()
	}
}
