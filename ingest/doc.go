// Package ingest owns everything between the gateways' TCP sockets and
// InfluxDB: connections, framing, per-gateway state, batching and the writer.
//
// The pipeline, one instance per process:
//
//	Reader (one goroutine per gateway)
//	   dial ─► bufio.Scanner + parser.Splitter ─► parser.ParseInto
//	   └─► Gateway.store: the newest good telegram, swapped in under a mutex
//	Batcher (one goroutine, one shared ticker for all gateways)
//	   every cycle: for each Gateway with a fresh telegram, encode
//	   p1 / p1_mbus / p1_peak lines (allocation-free, internal/lineproto),
//	   tell the Observer (the rollup worker), hand the lines to a LineWriter;
//	   every health interval: one p1_gateway line per gateway
//	Writer (one sender goroutine)
//	   WriteLines appends to a bounded Buffer and never waits for InfluxDB;
//	   Run peeks batches from the Buffer, posts them through a Sink
//	   (HTTPSink: /api/v2/write) and acknowledges them only when delivered.
//
// Readers never block on anything slower than a mutex held for the length of
// one encode, so a slow or dead InfluxDB cannot stall them: data piles up in
// the Buffer, first in, first out, and is delivered oldest first when
// InfluxDB answers again. The Buffer is a Spool on disk when P1_SPOOL_DIR is
// set (it survives restarts and crashes; see Spool for its format, fsync
// policy, limits and why points sent twice are harmless), or else a
// MemBuffer, which does the same short of restarts. Both are bounded and
// drop their oldest points, counted and logged, when full.
//
// Every component has Run(ctx) error, starts its goroutines there, and returns
// nil when ctx is cancelled. The Batcher flushes one last cycle on the way out;
// the Writer drains its Buffer for at most WriterConfig.DrainTimeout.
package ingest
