package spool

import (
	"bytes"
	"time"
)

// memRecord is a record held in memory while the disk fails: its header
// fields and its stored (compressed) payload.
type memRecord struct {
	rec  rec
	data []byte
}

// holdInMemory keeps record r, whose stored payload is data, in memory,
// dropping the oldest held records beyond MemoryBytes.
func (s *Spool) holdInMemory(r rec, data []byte) {
	s.mem = append(s.mem, memRecord{rec: r, data: bytes.Clone(data)})
	s.memBytes += int64(len(data))
	dropped := int64(0)
	for s.memBytes > s.memMax && len(s.mem) > 1 {
		dropped += int64(s.mem[0].rec.lines)
		s.memBytes -= int64(len(s.mem[0].data))
		s.mem[0] = memRecord{}
		s.mem = s.mem[1:]
	}
	if dropped > 0 {
		s.countDrop(dropped, "spool: disk unusable and memory full; oldest points dropped")
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
	if ok, suppressed := s.failLog.Allow(now, time.Minute); ok {
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
	var buf []byte
	for len(s.mem) > 0 {
		m := s.mem[0]
		buf = append(append(buf[:0], make([]byte, recHeaderLen)...), m.data...)
		if err := s.writeRecord(m.rec, buf); err != nil {
			s.diskErrors.Add(1)
			return
		}
		moved++
		s.memBytes -= int64(len(m.data))
		s.mem = s.mem[1:]
	}
	s.failing = false
	s.mem = nil
	s.log.Info("spool: the spool directory can be written again; points held in memory moved to it",
		"dir", s.dir, "batches", moved)
}
