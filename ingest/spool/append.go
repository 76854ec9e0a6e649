package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Append stores lines, which must be whole lines each ending in "\n": it
// compresses them and writes them to the newest segment (or, while the disk
// fails, to memory) and returns nil. It never waits for InfluxDB. When the
// spool is full it drops its oldest data, counts it and still returns nil.
// It fails only after Close (ErrClosed).
func (s *Spool) Append(lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
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
	r := rec{at: now.UnixNano(), raw: uint32(len(p)), lines: uint32(bytes.Count(p, []byte{'\n'}))}
	if s.failing && now.Sub(s.lastTry) >= diskRetry {
		s.retryDisk(now)
	}
	if !s.failing {
		n, err := s.appendToDisk(r, p)
		if err == nil {
			s.rate.add(now, n)
			return
		}
		s.diskFailed(err, now)
	}
	// In memory every record is compressed alone: it is moved to a
	// segment of its own choosing when the disk works again.
	r.seq = s.nextSeq
	s.nextSeq++
	s.wbuf = append(s.wbuf[:0], make([]byte, recHeaderLen)...)
	s.wbuf, r.codec = compress(s.wbuf, p)
	r.n = uint32(len(s.wbuf) - recHeaderLen)
	s.rate.add(now, int64(r.n))
	s.holdInMemory(r, s.wbuf[recHeaderLen:])
}

// appendToDisk compresses p, with the newest segment's dictionary where it
// has one, and writes it as record r, beginning a new segment (and its
// dictionary) when the newest one is full. It returns the bytes stored.
func (s *Spool) appendToDisk(r rec, p []byte) (int64, error) {
	tail := s.tail()
	if tail == nil || tail.v1 {
		var err error
		if tail, err = s.rotate(); err != nil {
			return 0, err
		}
	}
	stored := int64(0)
	for try := 0; ; try++ {
		if tail.data == 0 && !tail.dictOnDisk && !tail.dictLost && (tail.dict != nil || len(p) >= minDictBytes) {
			n, err := s.writeDict(tail, p, s.now())
			if err != nil {
				return stored, err
			}
			stored += n
		}
		s.wbuf = append(s.wbuf[:0], make([]byte, recHeaderLen)...)
		if d := s.loadDict(tail); d != nil {
			s.wbuf, r.codec = d.compress(s.wbuf, p)
		} else {
			s.wbuf, r.codec = compress(s.wbuf, p)
		}
		r.n = uint32(len(s.wbuf) - recHeaderLen)
		if try > 0 || !s.full(tail, r.size(false)) {
			break
		}
		// Full: the record goes to a new segment, with a dictionary of
		// its own.
		var err error
		if tail, err = s.rotate(); err != nil {
			return stored, err
		}
	}
	r.seq = s.nextSeq
	if err := s.writeRecord(r, s.wbuf); err != nil {
		return stored, err
	}
	s.nextSeq++
	return stored + int64(r.n), nil
}

// writeDict writes the two copies of seg's dictionary: the one it keeps
// from before it was emptied (resetTail), or else p, which becomes its
// dictionary. It returns the bytes stored.
func (s *Spool) writeDict(seg *segment, p []byte, now time.Time) (int64, error) {
	d := seg.dict
	if d == nil {
		d = newDictCodec(seg.num, bytes.Clone(p))
		var codec byte
		if d.z, codec = compress(nil, p); codec != codecZstd {
			// Data that does not compress makes no dictionary either.
			seg.dictLost = true
			return 0, nil
		}
	}
	buf := append(make([]byte, recHeaderLen, recHeaderLen+len(d.z)), d.z...)
	r := rec{at: now.UnixNano(), raw: uint32(len(d.dict)), codec: codecDict, n: uint32(len(d.z))}
	for range 2 {
		r.seq = s.nextSeq
		if err := s.writeRecord(r, buf); err != nil {
			return 0, err
		}
		s.nextSeq++
	}
	if seg.dict == nil {
		seg.dict, seg.dictAt = d, now
	}
	seg.dictOnDisk = true
	return 2 * int64(r.n), nil
}

// loadDict returns seg's dictionary, reading it from the first intact copy
// on disk the first time it is asked for (a segment from before a restart),
// or nil when seg has none.
func (s *Spool) loadDict(seg *segment) *dictCodec {
	if seg.dict != nil || seg.dictLost {
		return seg.dict
	}
	var why error = errNoDict
	for _, r := range seg.recs {
		if r.codec != codecDict {
			continue
		}
		p, err := s.readRecord(nil, seg, r)
		if err != nil {
			why = err
			continue
		}
		seg.dict = newDictCodec(seg.num, p)
		seg.dict.z = slices.Clone(s.rbuf[recHeaderLen : recHeaderLen+int(r.n)])
		seg.dictOnDisk, seg.dictAt = true, s.now()
		return seg.dict
	}
	seg.dictLost = true
	for _, r := range seg.recs {
		if r.codec == codecZstdDict {
			s.log.Error("spool: no intact copy of a segment's dictionary; the records compressed with it will be lost",
				"file", s.segPath(seg.num), "reason", why.Error())
			break
		}
	}
	return nil
}

// dictMaxAge is how long an emptied segment keeps its dictionary.
const dictMaxAge = time.Hour

// full reports whether a record of size bytes should begin a new segment
// rather than go to seg.
func (s *Spool) full(seg *segment, size int64) bool {
	return seg.data > 0 && seg.size+size > s.segBytes
}

// writeRecord writes record r, whose payload is buf[recHeaderLen:], to the
// newest segment, making room first. It fills in the header in buf.
func (s *Spool) writeRecord(r rec, buf []byte) error {
	size := r.size(false)
	tail := s.tail()
	if tail == nil || tail.v1 || (r.codec != codecDict && s.full(tail, size)) {
		var err error
		if tail, err = s.rotate(); err != nil {
			return err
		}
	}
	for s.diskBytes+size > s.max && len(s.segs) > 1 {
		s.dropHead("spool full (P1_SPOOL_MAX_BYTES): oldest points dropped")
	}
	r.off = tail.size
	r.before = uint32(tail.lines)
	putHeader(buf[:recHeaderLen], r, buf[recHeaderLen:])
	// One write for header and payload keeps a record whole in the kernel:
	// a crash of the process cannot separate them.
	if _, err := tail.f.WriteAt(buf, tail.size); err != nil {
		// Whatever part was written lies past tail.size: the next record
		// overwrites it, and a restart before that truncates it.
		tail.f.Truncate(tail.size)
		if r.codec == codecZstdDict || r.codec == codecDict || !s.resetTail() {
			// A record that needs the dictionary cannot go to an emptied
			// segment, which no longer holds it.
			return err
		}
		// The only segment held nothing undelivered: emptied, it may
		// leave room on a full disk.
		r.off, r.before = tail.size, 0
		putHeader(buf[:recHeaderLen], r, buf[recHeaderLen:])
		if _, err := tail.f.WriteAt(buf, tail.size); err != nil {
			tail.f.Truncate(tail.size)
			return err
		}
	}
	tail.recs = append(tail.recs, r)
	if r.codec != codecDict {
		tail.data++
	}
	tail.lines += int64(r.lines)
	tail.size += size
	tail.dirty = true
	s.diskBytes += size
	s.pend.add(r)
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
	if old != nil && len(s.segs) == 2 && old.head == len(old.recs) {
		s.removeHead()
	}
	return seg, nil
}

// resetTail empties the only segment if everything in it was delivered,
// and reports whether it did.
func (s *Spool) resetTail() bool {
	if len(s.segs) != 1 || s.segs[0].v1 || s.segs[0].head < len(s.segs[0].recs) || s.segs[0].size == segHeaderLen {
		return false
	}
	seg := s.segs[0]
	if err := seg.f.Truncate(segHeaderLen); err != nil {
		return false
	}
	s.diskBytes -= seg.size - segHeaderLen
	seg.size, seg.recs, seg.head, seg.lines, seg.data = segHeaderLen, seg.recs[:0], 0, 0, 0
	// The dictionary is kept, and written again before the next record
	// (its encoder is the costly part to make); after an hour a new one is
	// made from fresh data, so it follows the fleet.
	seg.dictOnDisk, seg.dictLost = false, false
	if seg.dict != nil && s.now().Sub(seg.dictAt) >= dictMaxAge {
		seg.dict.close()
		seg.dict = nil
	}
	return true
}

// removeHead deletes the oldest segment, whose records were all delivered.
func (s *Spool) removeHead() {
	seg := s.segs[0]
	seg.f.Close()
	seg.dict.close()
	if err := os.Remove(s.segPath(seg.num)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logDiskError("spool: cannot remove a delivered segment", err)
	}
	for _, r := range seg.recs[seg.head:] {
		s.pend.sub(r)
	}
	s.diskBytes -= seg.size
	s.segs[0] = nil
	s.segs = s.segs[1:]
	s.dirDirty = true
}

// dropHead deletes the oldest segment with whatever it holds undelivered.
func (s *Spool) dropHead(msg string) {
	seg := s.segs[0]
	var lost int64
	for _, r := range seg.recs[seg.head:] {
		lost += int64(r.lines)
	}
	if k := len(seg.recs); k > 0 {
		s.ackSeq = max(s.ackSeq, seg.recs[k-1].seq+1)
	}
	s.removeHead()
	s.writeCursor()
	if lost > 0 {
		s.countDrop(lost, msg)
	}
}

func (s *Spool) countDrop(points int64, msg string) {
	total := s.dropped.Add(points)
	if ok, suppressed := s.dropLog.Allow(time.Now(), 10*time.Second); ok {
		s.log.Error(msg, "points", points, "dropped_total", total, "spool_bytes", s.diskBytes,
			"max_bytes", s.max, "memory_bytes", s.memBytes, "suppressed_since_last", suppressed)
	}
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
