package ingest

import "github.com/p1logger/p1logger/ingest/spool"

// Buffer holds line protocol between the producers (Batcher, rollup worker)
// and the Writer's single sender. Delivery is at-least-once: the sender Peeks
// a batch, posts it, and Acks it only once InfluxDB took it, so a batch in
// flight is never lost by a crash of the sender loop.
//
// spool.MemBuffer is the in-memory implementation (no P1_SPOOL_DIR);
// spool.Spool is the durable one on disk: Append writes a segment record,
// Peek reads the oldest, Ack advances the cursor.
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
	// Bytes returns how many bytes of line protocol are buffered.
	Bytes() int
	// Stats describes what is buffered and what was lost.
	Stats() BufferStats
}

// BufferStats describes a Buffer's contents, losses and capacity.
type BufferStats = spool.Stats

var (
	_ Buffer = (*spool.Spool)(nil)
	_ Buffer = (*spool.MemBuffer)(nil)
)
