// Package ingest owns everything between the gateways' sources and
// InfluxDB: connections, framing, the frame channel and its parsers,
// per-gateway state, batching and the writer.
//
// The pipeline, one instance per process:
//
//	Readers (Run: the frame channel's single sender side)
//	   Reader (one goroutine per gateway)
//	      Source.Open (ingest/source: tcp, serial, …) ─► conn
//	      [ingest/dlms.Wrap, for a gateway with a key: encrypted frames
//	       ─► plain telegrams; rejected ones ─► Gateway.RejectFrame]
//	      ─► parser.Splitter (framing) ─► telegram budget (hold the newest)
//	      ─► frame: the telegram's bytes in a pooled buffer
//	   ──► one bounded chan frame, shared by all gateways ──►
//	   parser pool (ReaderConfig.Parsers goroutines)
//	      Decode (CRC, parse; contain recovers a panic) ─► counters
//	      └─► Gateway slot: the newest accepted telegram, swapped in
//	          under the gateway's mutex (frame numbers keep it the newest)
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
// Nothing after the Reader knows which kind of source a frame came from: a
// frame is bytes and the Gateway they belong to. The channel carries each
// telegram once; "the newest telegram per gateway per cycle" is the slot's
// state, not the channel's, so a gateway that sends fast costs one slot and
// the channel only holds what arrives while the parsers are busy. Readers
// wait when it is full (the kernel buffers the sockets meanwhile); the
// parsers never wait on anything slower than a mutex held for the length of
// one encode, so a slow or dead InfluxDB cannot stall them: data piles up in
// the Buffer, first in, first out, and is delivered oldest first when
// InfluxDB answers again. The Buffer is a Spool on disk when P1_SPOOL_DIR is
// set (it survives restarts and crashes; see Spool for its format, fsync
// policy, limits and why points sent twice are harmless), or else a
// MemBuffer, which does the same short of restarts. Both are bounded and
// drop their oldest points, counted and logged, when full.
//
// Every component has Run(ctx) error, starts its goroutines there, and returns
// nil when ctx is cancelled. Readers.Run closes the channel once every Reader
// returned and returns once the parsers drained it, so the last telegrams
// are in their slots; the Batcher flushes one last cycle on the way out;
// the Writer drains its Buffer for at most WriterConfig.DrainTimeout.
package ingest
