package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// defaultFrameQueue is the default ReaderConfig.FrameQueue.
const defaultFrameQueue = 1024

// frame is one framed telegram on its way from a Reader to a parser: the
// bytes as received, in a pooled buffer the parser gives back, when they
// arrived, and the Reader's number for them, so that of two frames of one
// gateway parsed at once the newer ends up in the slot.
type frame struct {
	g   *Gateway
	buf *[]byte
	at  time.Time
	seq uint64
}

// maxPooledFrame bounds the frame buffers kept for reuse: one that grew for
// a long telegram goes back to the garbage collector instead.
const maxPooledFrame = 8 << 10

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// send copies tok into a pooled buffer and hands it to the parsers,
// stamped with the time it is sent. It waits while the channel is full: the
// parsers drain it until Readers.Run closes it, which it does only once
// every Reader returned, so the wait always ends; meanwhile the kernel's
// socket buffer holds what arrives.
//
// The stamp is the point's time, so no two frames of a gateway may share
// one: two telegrams of one read, the first taken by a cycle and the second
// by the next, would be two points at one instant, which InfluxDB keeps as
// one. Each stamp is therefore later than the one before, if only by 1 ns.
func (r *Reader) send(tok []byte) {
	at := r.cfg.Now()
	if !at.After(r.lastSent) {
		at = r.lastSent.Add(time.Nanosecond)
	}
	r.lastSent = at
	bp := framePool.Get().(*[]byte)
	*bp = append((*bp)[:0], tok...)
	r.seq++
	r.out <- frame{g: r.g, buf: bp, at: at, seq: r.seq}
}

// Readers runs one Reader per gateway and the pool of parsers they feed,
// through one bounded channel:
//
//	Reader ─┐
//	Reader ─┼─► frames (chan frame, FrameQueue) ─► parser × Parsers ─► Gateway slot
//	Reader ─┘
//
// The channel carries each telegram once, as bytes; "the newest telegram of
// the gateway" is state, in the gateway's slot, not a stream, so that a
// gateway that sends faster than the cycle costs one slot, and the channel
// only needs room for what arrives while the parsers are busy. Readers.Run
// is the channel's single sender side: it closes it once all its Readers
// returned, and the parsers return when they have drained it.
type Readers struct {
	gateways []*Gateway
	cfg      ReaderConfig
}

// NewReaders returns the Readers of gateways, configured by cfg. It starts
// nothing: Run does.
func NewReaders(gateways []*Gateway, cfg ReaderConfig) *Readers {
	cfg.setDefaults()
	return &Readers{gateways: gateways, cfg: cfg}
}

// Run reads every gateway until ctx is cancelled (each Reader redials its
// own gateway for ever), then parses what is still in the channel and
// returns nil, so that every telegram received before the cancel is in its
// gateway's slot when Run returns.
func (rs *Readers) Run(ctx context.Context) error {
	frames := make(chan frame, rs.cfg.FrameQueue)
	var parsers sync.WaitGroup
	for range rs.cfg.Parsers {
		parsers.Add(1)
		go func() {
			defer parsers.Done()
			p := parsePool{cfg: &rs.cfg}
			for f := range frames {
				p.parse(f)
			}
		}()
	}
	var readers sync.WaitGroup
	errs := make([]error, len(rs.gateways))
	for i, g := range rs.gateways {
		r := newReader(g, &rs.cfg, frames)
		readers.Add(1)
		go func() {
			defer readers.Done()
			errs[i] = r.Run(ctx)
		}()
	}
	readers.Wait()
	close(frames)
	parsers.Wait()
	return errors.Join(errs...)
}

// parsePool is one parser of the pool: it checks and decodes frames of any
// gateway and swaps the accepted ones into their gateway's slot.
type parsePool struct {
	cfg *ReaderConfig
}

// parse decodes f, counts what it finds, and, if [Decode] says the telegram
// is used, makes it its gateway's newest unless a newer one is there
// already. It gives f's buffer back.
func (p *parsePool) parse(f frame) {
	defer putFrame(f.buf)
	g, raw := f.g, *f.buf
	t := getTelegram()
	defer putTelegram(t)
	var accept bool
	var err error
	if contain(g, stageDecode, raw, p.cfg.Logger, &g.decodeLog, f.at, func() {
		accept, err = Decode(t, raw, p.cfg.Location)
	}) {
		g.dropped.Add(1)
		return
	}
	switch {
	case err == nil:
	case errors.Is(err, parser.ErrCRC):
		g.crcErrors.Add(1)
	default:
		g.parseErrors.Add(1)
	}
	if err != nil {
		if !accept {
			g.dropped.Add(1)
		}
		if ok, suppressed := g.errLog.Allow(f.at, time.Minute); ok {
			logGateway(p.cfg.Logger, g, slog.LevelWarn, "bad telegram", "reason", err, "used", accept,
				"suppressed_since_last", suppressed,
				"crc_errors", g.crcErrors.Load(), "parse_errors", g.parseErrors.Load())
		}
	}
	if accept {
		g.storeSeq(raw, p.cfg.Location, f.at, f.seq)
	}
}

func putFrame(bp *[]byte) {
	if cap(*bp) <= maxPooledFrame {
		framePool.Put(bp)
	}
}

// syncLimit is a rateLimit for a gateway's log lines, which any parser of
// the pool may write.
type syncLimit struct {
	mu sync.Mutex
	l  rateLimit
}

// Allow is rateLimit's Allow, under a lock.
func (s *syncLimit) Allow(now time.Time, every time.Duration) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l.Allow(now, every)
}

// RejectFrame counts and logs a frame that the gateway's source could not
// turn into a telegram (an encrypted frame that failed authentication, say)
// the way parse does a bad telegram: as a CRC error when crc is true (the
// frame's own check failed), else as a parse error, dropped, logged with the
// gateway's telegram errors and their rate limit. It is safe to call from
// the gateway's reader goroutine.
func (g *Gateway) RejectFrame(log *slog.Logger, err error, crc bool, at time.Time) {
	if crc {
		g.crcErrors.Add(1)
	} else {
		g.parseErrors.Add(1)
	}
	g.dropped.Add(1)
	if ok, suppressed := g.errLog.Allow(at, time.Minute); ok {
		logGateway(log, g, slog.LevelWarn, "bad telegram", "reason", err, "used", false,
			"suppressed_since_last", suppressed,
			"crc_errors", g.crcErrors.Load(), "parse_errors", g.parseErrors.Load())
	}
}
