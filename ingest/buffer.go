package ingest

import (
	"bytes"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Buffer holds line protocol between the producers (Batcher, rollup worker)
// and the Writer's single sender. Delivery is at-least-once: the sender Peeks
// a batch, posts it, and Acks it only once InfluxDB took it, so a batch in
// flight is never lost by a crash of the sender loop.
//
// MemBuffer is the in-memory implementation (no P1_SPOOL_DIR); Spool is the
// durable one on disk: Append writes a segment record, Peek reads the
// oldest, Ack advances the cursor.
type Buffer interface {
	// Append stores a copy of lines, which must be whole lines each ending in
	// "\n". It must not wait for InfluxDB. When the buffer is full it drops
	// its oldest data, counts it and still returns nil; an error means lines
	// were not stored.
	Append(lines []byte) error
	// Peek appends to dst whole lines, oldest first, up to limit bytes (at
	// least one chunk, even if larger), without removing them, and returns
	// the batch and a token for Ack. An empty batch means the buffer is empty.
	Peek(dst []byte, limit int) (batch []byte, token uint64)
	// Ack removes what the Peek that returned token handed out. Data dropped
	// in the meantime is not removed twice.
	Ack(token uint64)
	// Notify returns a channel that receives a value after Append.
	Notify() <-chan struct{}
	// Bytes returns how many bytes are buffered.
	Bytes() int
	// Stats describes what is buffered and what was lost.
	Stats() BufferStats
}

// BufferStats describes a Buffer's contents and losses.
type BufferStats struct {
	Bytes         int64     // line protocol waiting for InfluxDB
	Batches       int64     // appends (or pieces of large ones) waiting
	Points        int64     // lines waiting
	Oldest        time.Time // when the oldest waiting batch was appended; zero when empty
	DroppedPoints int64     // points dropped because the buffer was full (or, in a Spool, damaged), since start

	// The rest is for a durable Spool only.
	Durable        bool  // what is buffered survives a restart
	DiskBytes      int64 // size of the segment files
	MaxBytes       int64 // bound on DiskBytes (P1_SPOOL_MAX_BYTES)
	DiskErrors     int64 // failed writes, fsyncs and removals in the spool directory
	MemoryFallback bool  // the disk failed: new batches are held in memory
	MemoryBytes    int64 // bytes held in memory because the disk failed
	CorruptRecords int64 // records lost to damage in the segment files, since start
	CorruptPoints  int64 // points in those records (also in DroppedPoints)
}

// MemBuffer is a Buffer in memory, bounded in bytes. When full, it drops the
// oldest chunks: newer readings are worth more than older ones to a dashboard,
// and a restart loses the buffer anyway. It is safe for concurrent use.
type MemBuffer struct {
	max      int // bytes
	maxChunk int
	log      *slog.Logger

	mu      sync.Mutex
	chunks  []chunk // oldest first
	bytes   int
	lines   int
	nextSeq uint64
	sealed  uint64   // chunks below this seq were handed out by Peek: no top-ups
	free    [][]byte // chunk storage returned by Ack, for reuse
	freeCap int      // the capacity of free, in bytes
	errs    rateLimit

	notify       chan struct{}
	droppedLines atomic.Int64
}

type chunk struct {
	seq   uint64
	at    time.Time // when its first line was appended
	lines int
	data  []byte
}

// NewMemBuffer returns a MemBuffer that holds at most maxBytes, stored in
// chunks of at most chunkBytes (a line longer than that is a chunk of its
// own). Drops are logged (rate-limited) to log, which may be nil.
func NewMemBuffer(maxBytes, chunkBytes int, log *slog.Logger) *MemBuffer {
	if chunkBytes <= 0 {
		chunkBytes = 1 << 20
	}
	if maxBytes < chunkBytes {
		maxBytes = chunkBytes
	}
	if log == nil {
		log = slog.Default()
	}
	return &MemBuffer{max: maxBytes, maxChunk: chunkBytes, log: log, notify: make(chan struct{}, 1), nextSeq: 1}
}

var _ Buffer = (*MemBuffer)(nil)

// Append implements Buffer. It never fails.
func (m *MemBuffer) Append(lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	m.mu.Lock()
	now := time.Now()
	for len(lines) > 0 {
		n := cutLines(lines, m.piece())
		m.appendChunk(lines[:n], now)
		lines = lines[n:]
	}
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return nil
}

func (m *MemBuffer) appendChunk(p []byte, now time.Time) {
	n := bytes.Count(p, []byte{'\n'})
	m.lines += n
	// Top up the newest chunk if it has room: many small appends (health
	// points, rollups) should not become many tiny chunks.
	if k := len(m.chunks); k > 0 {
		last := &m.chunks[k-1]
		if last.seq >= m.sealed && len(last.data)+len(p) <= m.maxChunk && len(last.data)+len(p) <= cap(last.data) {
			last.data = append(last.data, p...)
			last.lines += n
			m.bytes += len(p)
			m.dropOldest()
			return
		}
	}
	var data []byte
	if k := len(m.free); k > 0 && cap(m.free[k-1]) >= len(p) {
		data = m.free[k-1][:0]
		m.free[k-1] = nil
		m.free = m.free[:k-1]
		m.freeCap -= cap(data)
	} else {
		data = make([]byte, 0, max(len(p), m.piece()))
	}
	data = append(data, p...)
	m.chunks = append(m.chunks, chunk{seq: m.nextSeq, at: now, lines: n, data: data})
	m.nextSeq++
	m.bytes += len(p)
	m.dropOldest()
}

// dropOldest enforces the byte bound, keeping at least the newest chunk.
func (m *MemBuffer) dropOldest() {
	dropped, chunks := 0, 0
	for m.bytes > m.max && len(m.chunks)-chunks > 1 {
		c := m.chunks[chunks]
		m.bytes -= len(c.data)
		m.lines -= c.lines
		dropped += c.lines
		chunks++
	}
	m.removeFront(chunks)
	if dropped == 0 {
		return
	}
	total := m.droppedLines.Add(int64(dropped))
	if ok, suppressed := m.errs.allow(time.Now(), 10*time.Second); ok {
		m.log.Error("write buffer full: oldest points dropped", "points", dropped, "dropped_total", total,
			"buffer_bytes", m.bytes, "suppressed_since_last", suppressed)
	}
}

// Peek implements Buffer.
func (m *MemBuffer) Peek(dst []byte, limit int) ([]byte, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var token uint64
	for i, c := range m.chunks {
		if i > 0 && len(dst)+len(c.data) > limit {
			break
		}
		dst = append(dst, c.data...)
		token = c.seq + 1
	}
	m.sealed = max(m.sealed, token)
	return dst, token
}

// Ack implements Buffer.
func (m *MemBuffer) Ack(token uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.chunks) && m.chunks[i].seq < token {
		m.bytes -= len(m.chunks[i].data)
		m.lines -= m.chunks[i].lines
		if c := cap(m.chunks[i].data); m.freeCap+c <= m.maxFree() {
			m.free = append(m.free, m.chunks[i].data[:0])
			m.freeCap += c
		}
		i++
	}
	m.removeFront(i)
}

// piece is the size of chunk storage, and of the pieces a large append is
// cut into: one size, so that storage kept for reuse fits any new chunk
// (a line longer than that is a chunk of its own).
func (m *MemBuffer) piece() int { return min(m.maxChunk, 64<<10) }

// maxFree bounds the chunk storage kept for reuse. Kept storage is live
// heap, which Go's collector multiplies into its heap goal, while garbage
// only costs collections: 2 MiB covers the whole cycle of a thousand
// gateways; at 10,000 (7 MB a cycle) most chunks are allocated anew, which
// costs less than holding them.
func (m *MemBuffer) maxFree() int { return min(m.max/4, 2<<20) }

// removeFront removes the n oldest chunks, keeping the slice's array.
func (m *MemBuffer) removeFront(n int) {
	if n == 0 {
		return
	}
	k := copy(m.chunks, m.chunks[n:])
	clear(m.chunks[k:])
	m.chunks = m.chunks[:k]
}

// Notify implements Buffer.
func (m *MemBuffer) Notify() <-chan struct{} { return m.notify }

// Bytes implements Buffer.
func (m *MemBuffer) Bytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// DroppedLines returns how many points were dropped because the buffer was full.
func (m *MemBuffer) DroppedLines() int64 { return m.droppedLines.Load() }

// Stats implements Buffer.
func (m *MemBuffer) Stats() BufferStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := BufferStats{Bytes: int64(m.bytes), Batches: int64(len(m.chunks)), Points: int64(m.lines), DroppedPoints: m.droppedLines.Load()}
	if len(m.chunks) > 0 {
		st.Oldest = m.chunks[0].at
	}
	return st
}
