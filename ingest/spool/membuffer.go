package spool

import (
	"bytes"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// MemBuffer is a buffer in memory (no P1_SPOOL_DIR), bounded in stored
// bytes. Appends fill the newest chunk; a chunk is compressed with zstd once
// a newer one begins, so that the bound holds many times more points than
// line protocol would. When full, it drops the oldest chunks: newer
// readings are worth more than older ones to a dashboard, and a restart
// loses the buffer anyway. It is safe for concurrent use.
type MemBuffer struct {
	max      int // bytes
	maxChunk int
	log      *slog.Logger

	mu      sync.Mutex
	chunks  []chunk // oldest first
	bytes   int     // stored: compressed chunks, and open ones as they are
	raw     int     // line protocol in all chunks
	lines   int
	nextSeq uint64
	sealed  uint64   // chunks below this seq were handed out by Peek: no top-ups
	free    [][]byte // chunk storage returned by Ack, for reuse
	freeCap int      // the capacity of free, in bytes
	errs    rateLimit
	rate    rateMeter

	notify       chan struct{}
	droppedLines atomic.Int64
}

type chunk struct {
	seq   uint64
	at    time.Time // when its first line was appended
	lines int
	raw   int    // line protocol bytes
	data  []byte // line protocol while z is nil
	z     []byte // the compressed chunk, once a newer one began
}

// stored is what the chunk takes in memory, as counted against the bound.
func (c *chunk) stored() int {
	if c.z != nil {
		return len(c.z)
	}
	return len(c.data)
}

// NewMemBuffer returns a MemBuffer that holds at most maxBytes (compressed),
// in chunks of at most chunkBytes of line protocol (a line longer than that is a chunk of its
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

// ExpectRate sets the stored bytes per second Stats().AppendRate assumes
// until the rate is measured. Call it before the first Append.
func (m *MemBuffer) ExpectRate(bytesPerSecond float64) {
	m.mu.Lock()
	m.rate.expect = max(bytesPerSecond, 0)
	m.mu.Unlock()
}

// Append stores a copy of lines, which must be whole lines each ending in
// "\n". It never waits and never fails: when the buffer is full it drops
// its oldest chunks, counts and logs them.
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
	m.raw += len(p)
	m.rate.add(now, int64(len(p))) // corrected below once the chunk is compressed
	// Top up the newest chunk if it has room: many small appends (health
	// points, rollups) should not become many tiny chunks.
	if k := len(m.chunks); k > 0 {
		last := &m.chunks[k-1]
		if last.seq >= m.sealed && len(last.data)+len(p) <= m.maxChunk && len(last.data)+len(p) <= cap(last.data) {
			last.data = append(last.data, p...)
			last.lines += n
			last.raw += len(p)
			m.bytes += len(p)
			m.dropOldest()
			return
		}
	}
	if k := len(m.chunks); k > 0 {
		m.seal(&m.chunks[k-1])
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
	m.chunks = append(m.chunks, chunk{seq: m.nextSeq, at: now, lines: n, raw: len(p), data: data})
	m.nextSeq++
	m.bytes += len(p)
	m.dropOldest()
}

// seal compresses a chunk that no append will top up again and returns its
// line protocol storage for reuse.
func (m *MemBuffer) seal(c *chunk) {
	if c.z != nil {
		return
	}
	z, codec := compress(nil, c.data)
	if codec != codecZstd {
		return // does not compress: kept as is
	}
	m.bytes += len(z) - len(c.data)
	m.rate.bytes += int64(len(z) - len(c.data))
	c.z = z
	m.release(c.data)
	c.data = nil
}

// release keeps chunk storage for reuse, within maxFree.
func (m *MemBuffer) release(data []byte) {
	if c := cap(data); m.freeCap+c <= m.maxFree() {
		m.free = append(m.free, data[:0])
		m.freeCap += c
	}
}

// dropOldest enforces the byte bound, keeping at least the newest chunk.
func (m *MemBuffer) dropOldest() {
	dropped, chunks := 0, 0
	for m.bytes > m.max && len(m.chunks)-chunks > 1 {
		c := m.chunks[chunks]
		m.bytes -= c.stored()
		m.raw -= c.raw
		m.lines -= c.lines
		dropped += c.lines
		chunks++
	}
	m.removeFront(chunks)
	if dropped == 0 {
		return
	}
	total := m.droppedLines.Add(int64(dropped))
	if ok, suppressed := m.errs.Allow(time.Now(), 10*time.Second); ok {
		m.log.Error("write buffer full: oldest points dropped", "points", dropped, "dropped_total", total,
			"buffer_bytes", m.bytes, "suppressed_since_last", suppressed)
	}
}

// Peek appends to dst whole lines, oldest first, up to limit bytes (at
// least one chunk, even if larger), without removing them, and returns the
// batch and a token for Ack. An empty batch means the buffer is empty.
func (m *MemBuffer) Peek(dst []byte, limit int) ([]byte, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var token uint64
	for i, c := range m.chunks {
		if i > 0 && len(dst)+c.raw > limit {
			break
		}
		if c.z == nil {
			dst = append(dst, c.data...)
		} else {
			var err error
			if dst, err = decompress(dst, c.z, codecZstd, c.raw, nil); err != nil {
				// Memory does not rot; a failure here is a bug.
				m.log.Error("write buffer: a chunk cannot be decompressed; skipped", "reason", err)
			}
		}
		token = c.seq + 1
	}
	m.sealed = max(m.sealed, token)
	return dst, token
}

// Ack removes what the Peek that returned token handed out. Data dropped
// in the meantime is not removed twice.
func (m *MemBuffer) Ack(token uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.chunks) && m.chunks[i].seq < token {
		c := &m.chunks[i]
		m.bytes -= c.stored()
		m.raw -= c.raw
		m.lines -= c.lines
		if c.data != nil {
			m.release(c.data)
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

// Notify returns a channel that receives a value after Append.
func (m *MemBuffer) Notify() <-chan struct{} { return m.notify }

// Bytes returns the line protocol waiting (uncompressed).
func (m *MemBuffer) Bytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.raw
}

// DroppedLines returns how many points were dropped because the buffer was full.
func (m *MemBuffer) DroppedLines() int64 { return m.droppedLines.Load() }

// Stats describes what the buffer holds and lost, and how much room is left.
func (m *MemBuffer) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Stats{Bytes: int64(m.raw), StoredBytes: int64(m.bytes), Batches: int64(len(m.chunks)), Points: int64(m.lines),
		DroppedPoints: m.droppedLines.Load(), Capacity: int64(m.max), AppendRate: m.rate.get(time.Now())}
	if len(m.chunks) > 0 {
		st.Oldest = m.chunks[0].at
	}
	return st
}
