package spool

import (
	"math"
	"time"
)

// Stats describes a buffer's contents, losses and capacity.
type Stats struct {
	Bytes         int64     // line protocol waiting for InfluxDB (uncompressed)
	StoredBytes   int64     // what that takes in storage (compressed)
	Batches       int64     // appends (or pieces of large ones) waiting
	Points        int64     // lines waiting
	Oldest        time.Time // when the oldest waiting batch was appended; zero when empty
	DroppedPoints int64     // points dropped because the buffer was full, since start

	// Capacity is the bound on StoredBytes: MaxBytes for a Spool (plus its
	// memory while the disk fails), the memory bound for a MemBuffer.
	Capacity int64
	// AppendRate is the stored bytes appended per second, over about the
	// last minutes: what an outage costs at the current rate. Until 10 s
	// of appends are measured, the expected rate given at start (0 when
	// none was).
	AppendRate float64

	// The rest is for a durable Spool only.
	Durable        bool  // what is buffered survives a restart
	DiskBytes      int64 // size of the segment files
	MaxBytes       int64 // bound on DiskBytes (P1_SPOOL_MAX_BYTES)
	DiskErrors     int64 // failed writes, fsyncs and removals in the spool directory
	MemoryFallback bool  // the disk failed: new batches are held in memory
	MemoryBytes    int64 // bytes held in memory because the disk failed
	CorruptRecords int64 // records found damaged and skipped, since start
	CorruptPoints  int64 // points in them (where a header said how many)
}

// TimeLeft returns how much longer an outage the buffer can absorb at
// the current append rate before it drops points, and false while the rate
// is not known yet.
func (s Stats) TimeLeft() (time.Duration, bool) {
	if s.AppendRate <= 0 {
		return 0, false
	}
	room := max(float64(s.Capacity-s.StoredBytes), 0)
	sec := room / s.AppendRate
	if sec > float64(math.MaxInt64/int64(time.Second)) {
		sec = float64(math.MaxInt64 / int64(time.Second))
	}
	return time.Duration(sec * float64(time.Second)), true
}

// rateMeter measures bytes per second over windows of a minute, smoothed,
// so that one large cycle does not swing the estimate.
type rateMeter struct {
	start  time.Time
	bytes  int64
	rate   float64
	expect float64 // bytes per second to assume until measured (0: unknown)
}

const rateWindow = time.Minute

func (m *rateMeter) add(now time.Time, n int64) {
	if m.start.IsZero() {
		m.start = now
	}
	m.bytes += n
	if d := now.Sub(m.start); d >= rateWindow {
		inst := float64(m.bytes) / d.Seconds()
		if m.rate == 0 {
			m.rate = inst
		} else {
			m.rate = 0.5*m.rate + 0.5*inst
		}
		m.start, m.bytes = now, 0
	}
}

// get returns the rate, or the rate of the window so far before the first
// window ended (once it spans 10 s).
func (m *rateMeter) get(now time.Time) float64 {
	if m.rate > 0 {
		return m.rate
	}
	if d := now.Sub(m.start); !m.start.IsZero() && d >= 10*time.Second {
		return float64(m.bytes) / d.Seconds()
	}
	return m.expect
}

// Bytes returns the line protocol waiting, on disk and in memory.
func (s *Spool) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.pend.raw
	for _, m := range s.mem {
		n += int64(m.rec.raw)
	}
	return int(n)
}

// Stats describes what the spool holds and lost, and how much room is left.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Spool) statsLocked() Stats {
	st := Stats{
		Bytes:          s.pend.raw,
		StoredBytes:    s.pend.stored + s.memBytes,
		Batches:        s.pend.records + int64(len(s.mem)),
		Points:         s.pend.lines,
		DroppedPoints:  s.dropped.Load(),
		Capacity:       s.max,
		AppendRate:     s.rate.get(s.now()),
		Durable:        true,
		DiskBytes:      s.diskBytes,
		MaxBytes:       s.max,
		DiskErrors:     s.diskErrors.Load(),
		MemoryFallback: s.failing,
		MemoryBytes:    s.memBytes,
		CorruptRecords: s.corruptRecords.Load(),
		CorruptPoints:  s.corruptPoints.Load(),
	}
	if s.failing {
		st.Capacity = s.memMax
		st.StoredBytes = s.memBytes
	}
	for _, m := range s.mem {
		st.Points += int64(m.rec.lines)
		st.Bytes += int64(m.rec.raw)
	}
	for _, seg := range s.segs {
		if seg.head < len(seg.recs) {
			st.Oldest = appendTime(seg.recs[seg.head].at)
			return st
		}
	}
	if len(s.mem) > 0 {
		st.Oldest = appendTime(s.mem[0].rec.at)
	}
	return st
}
