// Package spool holds line protocol between p1logger's producers (batcher,
// rollup worker) and the InfluxDB writer while InfluxDB cannot take it: a
// Spool on disk (P1_SPOOL_DIR), which survives restarts and crashes, or a
// MemBuffer, which survives only outages. Both store records compressed
// with zstd, checksummed one by one, are bounded in bytes, count what they
// drop, and hand out the oldest data first.
//
// The package is a storage engine split along its responsibilities:
// format.go (the on-disk layout, encoding and checking of one record),
// codec.go (compression), recover.go (reading what a previous run left,
// resynchronising after damage), append.go (writing, rotation, the size
// bound), read.go (Peek and Ack), fallback.go (memory while the disk
// fails), membuffer.go (the memory-only buffer) and stats.go (what is held,
// what was lost, how long an outage still fits).
package spool
