package spool

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"time"
)

// Peek appends to dst whole lines, oldest first, up to limit bytes of line
// protocol (at least one record, even if larger), without removing them,
// and returns the batch and a token for Ack. Batches come from disk, then
// from memory. A record that cannot be read back intact is counted as
// corrupt, logged and skipped; the records after it are handed out. An
// empty batch means the spool is empty.
func (s *Spool) Peek(dst []byte, limit int) ([]byte, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, 0
	}
	var token uint64
	n := 0
	for _, seg := range s.segs {
		for i := seg.head; i < len(seg.recs); {
			r := seg.recs[i]
			if r.codec == codecDict {
				// Delivers nothing; acknowledged with what follows it.
				token = r.seq + 1
				i++
				continue
			}
			if n > 0 && len(dst)+int(r.raw) > limit {
				return dst, token
			}
			var err error
			if dst, err = s.readRecord(dst, seg, r); err != nil {
				s.lostAtRead(seg, i, err)
				continue // recs[i] is now the next record
			}
			token = r.seq + 1
			n++
			i++
		}
	}
	for _, r := range s.mem {
		if n > 0 && len(dst)+int(r.rec.raw) > limit {
			break
		}
		var err error
		if dst, err = decompress(dst, r.data, r.rec.codec, int(r.rec.raw), nil); err != nil {
			// Memory does not rot; a failure here is a bug, not damage.
			s.log.Error("spool: a batch held in memory cannot be decompressed; skipped", "reason", err)
		}
		token = r.rec.seq + 1
		n++
	}
	return dst, token
}

// readRecord reads r of seg back from disk, checks it and appends its line
// protocol to dst.
func (s *Spool) readRecord(dst []byte, seg *segment, r rec) ([]byte, error) {
	var d *dictCodec
	if r.codec == codecZstdDict {
		// First: loading it reads into rbuf too.
		if d = s.loadDict(seg); d == nil {
			return dst, errNoDict
		}
	}
	size := r.size(seg.v1)
	s.rbuf = slices.Grow(s.rbuf[:0], int(size))[:size]
	if _, err := seg.f.ReadAt(s.rbuf, r.off); err != nil {
		return dst, err
	}
	payload, err := checkStored(s.rbuf, r, seg.v1)
	if err != nil {
		return dst, err
	}
	return decompress(dst, payload, r.codec, int(r.raw), d)
}

// lostAtRead handles record i of seg that cannot be read back while
// running: it is counted as corrupt, logged with its byte range, and
// forgotten; the records around it stay.
func (s *Spool) lostAtRead(seg *segment, i int, why error) {
	r := seg.recs[i]
	s.pend.sub(r)
	seg.recs = slices.Delete(seg.recs, i, i+1)
	if r.codec != codecDict {
		seg.data--
	}
	s.corruptRecords.Add(1)
	s.corruptPoints.Add(int64(r.lines))
	if ok, suppressed := s.corruptLg.Allow(time.Now(), 10*time.Second); ok {
		s.log.Error("spool: a record cannot be read back; skipped, the records around it are kept",
			"file", s.segPath(seg.num), "from_byte", r.off, "to_byte", r.off+r.size(seg.v1),
			"records_lost", 1, "points_lost", r.lines, "reason", why.Error(), "suppressed_since_last", suppressed)
	}
}

// Ack removes what the Peek that returned token handed out: records below
// token are delivered. Segments that hold nothing undelivered are removed,
// and the cursor is rewritten. Data dropped in the meantime is not removed
// twice.
func (s *Spool) Ack(token uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || token <= s.ackSeq {
		return
	}
	s.skipDelivered(token)
	s.ackSeq = token
	i := 0
	for i < len(s.mem) && s.mem[i].rec.seq < token {
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

// skipDelivered moves past records below token, removing segments left
// without undelivered records (but not the newest).
func (s *Spool) skipDelivered(token uint64) {
	for len(s.segs) > 0 {
		seg := s.segs[0]
		for seg.head < len(seg.recs) && seg.recs[seg.head].seq < token {
			s.pend.sub(seg.recs[seg.head])
			seg.head++
		}
		if seg.head < len(seg.recs) || len(s.segs) == 1 {
			return
		}
		seg.head = len(seg.recs)
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
