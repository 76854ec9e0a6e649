package spool

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBytes bounds a Spool when Config.MaxBytes is 0. p1logger sizes
// its spool in time (P1_SPOOL_MAX_AGE) and passes the bytes that takes,
// with this as the floor: by EstimateBytes it holds a day of 120 gateways
// at a 5 s cycle (about 58 days of one).
const DefaultMaxBytes = 128 << 20

// MinMaxBytes is the smallest size bound Open accepts.
const MinMaxBytes = 64 << 10

// maxRecordBytes bounds Config.RecordBytes, and what recovery believes of
// a header's uncompressed length.
const maxRecordBytes = 64 << 20

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool is closed")

// diskRetry is how often a Spool whose disk failed tries it again.
const diskRetry = 10 * time.Second

// Config configures Open. Zero fields take the defaults noted.
type Config struct {
	// Dir holds the spool (P1_SPOOL_DIR). It is created if missing.
	Dir string
	// MaxBytes bounds the segment files on disk (P1_SPOOL_MAX_BYTES).
	// Default DefaultMaxBytes; at least MinMaxBytes.
	MaxBytes int64
	// SyncInterval is the longest time between fsyncs of appended data:
	// Append calls fsync when the last one is at least this old. Default 1s;
	// negative: fsync on every Append.
	SyncInterval time.Duration
	// RecordBytes bounds the line protocol of one record: a larger Append
	// is cut at line ends. Peek hands out at least one record, so it should
	// not exceed the Writer's MaxBatchBytes. Default 1 MiB (and at most
	// MaxBytes/32).
	RecordBytes int
	// MemoryBytes bounds the memory (compressed) that holds new points
	// while the disk cannot be written (full, read-only, failing).
	// Default 64 MiB.
	MemoryBytes int64
	// ExpectedRate is the stored bytes per second to assume for
	// Stats().AppendRate until the rate is measured (EstimateBytes over a
	// second). Optional.
	ExpectedRate float64
	// Logger receives recoveries, drops and disk errors. Default slog.Default().
	Logger *slog.Logger

	// openFile replaces os.OpenFile, so that tests can make the disk fail.
	openFile func(name string, flag int, perm os.FileMode) (file, error)
	// now replaces time.Now, for tests.
	now func() time.Time
}

// file is what a Spool needs of an open file; *os.File has it.
type file interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Spool is a buffer on disk (P1_SPOOL_DIR): every batch handed to Append is
// compressed and written to an append-only segment file before Append
// returns, so points survive InfluxDB outages, restarts and crashes of
// p1logger, and are delivered oldest first once InfluxDB answers again.
// The layout of the files is described in format.go.
//
// Ack rewrites the cursor in place and removes segments that hold only
// delivered records. A new segment is begun when the current one would
// exceed MaxBytes/32 (at most 4 MiB), so that dropping the oldest segment
// when full frees a small part of the spool. While InfluxDB keeps up, the
// only segment is emptied (truncated) once it holds more than a sixteenth
// of that, all of it delivered, so the files stay small and their size
// shows the backlog.
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
// Open reads every segment and checks every record's marker, header
// checksum, payload checksum and sequence. A damaged stretch is skipped up
// to the next intact record: only the records it touches are lost. They are
// counted (Stats().CorruptRecords, CorruptPoints) and logged with the file
// and the byte range. Damage at the end of the newest segment (a record cut
// short by a power cut) is truncated away, so appends continue after the
// last intact record. A record found damaged later, when Peek reads it
// back, is counted and skipped the same way. An unreadable cursor makes the
// spool deliver everything it holds again. A corrupt spool never stops
// p1logger.
//
// # Limits and failures
//
// The segment files never exceed MaxBytes: when an Append does not fit, the
// oldest segments are removed, undelivered points included; they are counted
// (Stats().DroppedPoints) and logged as errors. When the disk cannot be
// written (full, read-only, failing), Append logs it once, counts it, and
// keeps new batches in memory (compressed, bounded by MemoryBytes, oldest
// dropped) in order after those on disk; it tries the disk again every 10 s
// and then moves the batches held in memory to it. Append never blocks on
// InfluxDB and never fails before Close.
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
	open     func(name string, flag int, perm os.FileMode) (file, error)
	now      func() time.Time
	unlock   func() error

	mu        sync.Mutex
	segs      []*segment // oldest first; the last one is appended to
	cursor    file
	nextSeq   uint64
	ackSeq    uint64 // records below this were delivered (or dropped)
	pend      totals // undelivered records on disk
	diskBytes int64  // sizes of all segment files
	mem       []memRecord
	memBytes  int64 // stored bytes of mem
	failing   bool  // the disk failed: new batches go to mem
	lastTry   time.Time
	lastSync  time.Time
	dirDirty  bool
	closed    bool
	wbuf      []byte // header and payload of the record being written
	rbuf      []byte // a record read back
	rate      rateMeter
	dropLog   rateLimit
	errLog    rateLimit
	failLog   rateLimit
	corruptLg rateLimit

	notify         chan struct{}
	dropped        atomic.Int64 // points dropped because the spool was full
	diskErrors     atomic.Int64
	corruptRecords atomic.Int64
	corruptPoints  atomic.Int64
}

// segment is one segment file.
type segment struct {
	num   uint64
	f     file
	v1    bool  // format 1: read only
	size  int64 // bytes, header included
	recs  []rec // the intact records, oldest first
	head  int   // recs[:head] were delivered (only ever > 0 in segs[0])
	lines int64 // lines of every record written to it, for rec.before
	dirty bool  // written since the last fsync
	data  int   // records in recs that hold lines (not dictionaries)

	// dict is the segment's dictionary once known (loadDict); dictLost
	// says that it has none usable; dictAt is when it was made.
	dict       *dictCodec
	dictLost   bool
	dictOnDisk bool // the copies of dict are in the file
	dictAt     time.Time
}

// totals counts records.
type totals struct {
	records, lines, raw, stored int64
}

func (t *totals) add(r rec) {
	if r.codec == codecDict {
		t.stored += int64(r.n)
		return
	}
	t.records++
	t.lines += int64(r.lines)
	t.raw += int64(r.raw)
	t.stored += int64(r.n)
}

func (t *totals) sub(r rec) {
	if r.codec == codecDict {
		t.stored -= int64(r.n)
		return
	}
	t.records--
	t.lines -= int64(r.lines)
	t.raw -= int64(r.raw)
	t.stored -= int64(r.n)
}

// Open opens the spool in cfg.Dir, creating it if needed, and recovers what
// a previous run left: undelivered records are handed out first. It fails
// when the directory cannot be created or locked (another p1logger uses
// it; the error wraps ErrLocked) or a file cannot be opened; damaged records
// are not an error (they are skipped, counted and logged).
func Open(cfg Config) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxBytes < MinMaxBytes {
		return nil, fmt.Errorf("spool: size bound %d bytes is below the minimum of %d", cfg.MaxBytes, MinMaxBytes)
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
		cfg.openFile = func(name string, flag int, perm os.FileMode) (file, error) {
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
		rate:     rateMeter{expect: max(cfg.ExpectedRate, 0)},
	}
	if cfg.RecordBytes <= 0 {
		cfg.RecordBytes = 1 << 20
	}
	// A payload that does not compress is stored as is: recMax bounds the
	// stored size too.
	s.recMax = int(min(s.segBytes-segHeaderLen-recHeaderLen, int64(cfg.RecordBytes), maxRecordBytes))
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

func (s *Spool) segPath(num uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", num, segSuffix))
}

// Notify returns a channel that receives a value after Append.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Close fsyncs and closes the spool's files and releases the directory.
// What was not delivered stays for the next Open. Append fails after
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
		seg.dict.close()
	}
	if s.cursor != nil {
		s.cursor.Close()
	}
}

func (s *Spool) logDiskError(msg string, err error) {
	s.diskErrors.Add(1)
	if ok, suppressed := s.errLog.Allow(time.Now(), time.Minute); ok {
		s.log.Error(msg, "dir", s.dir, "reason", err, "suppressed_since_last", suppressed)
	}
}
