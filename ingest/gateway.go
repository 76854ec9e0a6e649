package ingest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// Gateway is the shared state of one configured gateway: the newest telegram
// the parsers accepted from its Reader, and its counters. The Reader and the
// parsers write it, the Batcher and the HTTP handlers read it. All methods
// are safe for concurrent use.
//
// Telegrams travel from the Reader to the parsers down the one frame
// channel, but the newest is then held in a slot rather than sent down a
// channel of its own, so that a gateway that sends faster than the cycle
// only ever costs one slot. The slot holds the telegram's bytes as received
// (about 1 KB), not a decoded Telegram (several KB with its buffers): a
// parser decodes every telegram into a Telegram shared through a pool, to
// check and count it, and the Batcher decodes the slot again, once per
// cycle, to encode it. At thousands
// of gateways the memory saved is worth far more than the second decode of
// one telegram in every cycle's worth.
type Gateway struct {
	name string
	src  Source
	addr string // src.String(), kept: it is read for every log line

	mu         sync.Mutex
	raw        []byte         // newest accepted telegram, as received; empty until the first
	loc        *time.Location // the zone raw was decoded in
	receivedAt time.Time      // when raw was received
	fresh      bool           // raw arrived after the last cycle took it
	seq        uint64         // the Reader's number of raw (frame.seq); 0 = set by store
	written    writtenState   // what the Batcher already wrote; Batcher only

	connected      atomic.Bool
	since          atomic.Int64 // unix ns of the last connect or loss
	lastAt         atomic.Int64 // unix ns of the newest accepted telegram; 0 = none
	telegrams      atomic.Int64
	crcErrors      atomic.Int64
	parseErrors    atomic.Int64
	dropped        atomic.Int64
	reconnects     atomic.Int64
	skipped        atomic.Int64
	rateSkipped    atomic.Int64 // telegrams skipped unparsed: the gateway sent too fast
	internalErrors atomic.Int64 // telegrams dropped by a panic (contain)
	lastErr        atomic.Pointer[string]

	errLog    syncLimit // bad telegrams, logged by whichever parser found one
	decodeLog syncLimit // panics contained while decoding
}

// NewGateway returns the state of the gateway called name (the gateway tag),
// read through src.
func NewGateway(name string, src Source) *Gateway {
	return &Gateway{name: name, src: src, addr: src.String()}
}

// Addr returns the gateway's address without secrets (Source.String).
func (g *Gateway) Addr() string { return g.addr }

// Kind returns the kind of the gateway's source: "tcp", "serial", …
func (g *Gateway) Kind() string { return g.src.Kind() }

// store makes frame, decoded in loc and received at at, the newest
// telegram. It copies frame into the slot, whose storage is reused.
func (g *Gateway) store(frame []byte, loc *time.Location, at time.Time) {
	g.storeSeq(frame, loc, at, 0)
}

// storeSeq counts frame, numbered seq by its Reader, as accepted and makes
// it the newest telegram unless the slot holds a later one already: two
// parsers may take two frames of one gateway from the channel at once and
// finish in either order. seq 0 always replaces.
func (g *Gateway) storeSeq(frame []byte, loc *time.Location, at time.Time, seq uint64) {
	g.mu.Lock()
	if seq == 0 || seq > g.seq || len(g.raw) == 0 {
		g.raw = append(g.raw[:0], frame...)
		g.loc, g.receivedAt, g.fresh, g.seq = loc, at, true, seq
		g.lastAt.Store(at.UnixNano())
	}
	g.mu.Unlock()
	g.telegrams.Add(1)
}

// takeFresh calls fn with the newest telegram's bytes if it arrived since the
// last call, under the gateway's lock: fn must not keep raw.
func (g *Gateway) takeFresh(fn func(raw []byte, loc *time.Location, at time.Time, w *writtenState)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.fresh || len(g.raw) == 0 {
		return false
	}
	g.fresh = false
	fn(g.raw, g.loc, g.receivedAt, &g.written)
	return true
}

// AppendLatestJSON appends the newest accepted telegram as JSON (the form of
// "p1logger decode") and reports when it was received. It appends nothing and
// returns ok false when no telegram was accepted yet.
func (g *Gateway) AppendLatestJSON(b []byte) (out []byte, at time.Time, ok bool) {
	out = b
	ok = g.ReadLatest(func(t *parser.Telegram, received time.Time) {
		out, at = t.AppendJSON(b), received
	})
	return out, at, ok
}

// ReadLatest decodes the newest accepted telegram and calls fn with it and
// the time it was received, under the gateway's lock: fn must return quickly
// and must not keep t or any slice in it. It returns false without calling
// fn when no telegram was accepted yet.
func (g *Gateway) ReadLatest(fn func(t *parser.Telegram, received time.Time)) bool {
	t := getTelegram()
	defer putTelegram(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.raw) == 0 {
		return false
	}
	// The bytes were accepted, so they decode as they did then: a syntax
	// error in one line leaves the rest of t good, and the JSON lists it.
	Decode(t, g.raw, g.loc)
	fn(t, g.receivedAt)
	return true
}

// telegramPool holds the decode targets of parsers, HTTP handlers and tests:
// a Telegram grows to the size of the telegrams decoded into it, and only as
// many are needed as decodes run at once, not one per gateway.
var telegramPool = sync.Pool{New: func() any { return new(parser.Telegram) }}

func getTelegram() *parser.Telegram  { return telegramPool.Get().(*parser.Telegram) }
func putTelegram(t *parser.Telegram) { telegramPool.Put(t) }

func (g *Gateway) setConnected(on bool, at time.Time, reason error) {
	g.connected.Store(on)
	g.since.Store(at.UnixNano())
	if reason != nil {
		s := reason.Error()
		g.lastErr.Store(&s)
	}
}

// GatewayStats is a snapshot of a Gateway's state and counters. Counters
// count since the process started.
type GatewayStats struct {
	Name      string
	Addr      string // the address without secrets
	Kind      string // the source's kind: "tcp", "serial", …
	Connected bool
	// Since is when the gateway last connected or was lost; zero before the
	// first attempt ended.
	Since time.Time
	// LastError is why the last connection or dial ended; empty if none did.
	LastError string
	// LastTelegram is when the newest accepted telegram arrived; zero if none.
	LastTelegram time.Time
	Telegrams    int64 // telegrams accepted (CRC ok, or no CRC and no error)
	CRCErrors    int64 // telegrams whose checksum did not match
	ParseErrors  int64 // cut frames and undecodable lines
	Dropped      int64 // telegrams rejected: CRC, frame, or syntax errors without a CRC
	Reconnects   int64 // dials after the first, successful or not
	SkippedBytes int64 // bytes outside any telegram
	// SkippedTelegrams counts telegrams framed but not parsed because the
	// gateway sent faster than ReaderConfig.MaxTelegramRate (Reader.hold).
	SkippedTelegrams int64
	// InternalErrors counts telegrams dropped because decoding or encoding
	// them panicked (a bug in p1logger; see contain).
	InternalErrors int64
}

// Stats returns a snapshot of g's state.
func (g *Gateway) Stats() GatewayStats {
	s := GatewayStats{
		Name:             g.name,
		Addr:             g.addr,
		Kind:             g.src.Kind(),
		Connected:        g.connected.Load(),
		Telegrams:        g.telegrams.Load(),
		CRCErrors:        g.crcErrors.Load(),
		ParseErrors:      g.parseErrors.Load(),
		Dropped:          g.dropped.Load(),
		Reconnects:       g.reconnects.Load(),
		SkippedBytes:     g.skipped.Load(),
		SkippedTelegrams: g.rateSkipped.Load(),
		InternalErrors:   g.internalErrors.Load(),
	}
	if ns := g.since.Load(); ns != 0 {
		s.Since = time.Unix(0, ns)
	}
	if ns := g.lastAt.Load(); ns != 0 {
		s.LastTelegram = time.Unix(0, ns)
	}
	if e := g.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// writtenState remembers, per gateway, which M-Bus captures and monthly peaks
// were already written, so that each is written once (or again when it
// changes). It is touched only by the Batcher, under the gateway's lock.
type writtenState struct {
	mbus  []mbusMark
	peaks []peakMark
}

type mbusMark struct {
	channel uint8
	at      int64 // capture time, unix ns
}

type peakMark struct {
	month int64 // month start, unix ns
	at    int64 // peak time, unix ns
	value parser.Decimal
}

// maxPeakMarks bounds the remembered peaks: 13 months of history plus the
// current month fit, with room for a meter that sends a little more.
const maxPeakMarks = 16

// mbusNew reports whether channel's capture at is not written yet, and marks it.
func (w *writtenState) mbusNew(channel uint8, at int64) bool {
	for i := range w.mbus {
		if w.mbus[i].channel == channel {
			if w.mbus[i].at == at {
				return false
			}
			w.mbus[i].at = at
			return true
		}
	}
	w.mbus = append(w.mbus, mbusMark{channel, at})
	return true
}

// peakNew reports whether the peak of month is not written yet with this
// time and value, and marks it.
func (w *writtenState) peakNew(month, at int64, v parser.Decimal) bool {
	for i := range w.peaks {
		if w.peaks[i].month == month {
			if w.peaks[i].at == at && w.peaks[i].value == v {
				return false
			}
			w.peaks[i].at, w.peaks[i].value = at, v
			return true
		}
	}
	if len(w.peaks) == maxPeakMarks {
		// Forget the oldest month: meters send only the last 13.
		oldest := 0
		for i := range w.peaks {
			if w.peaks[i].month < w.peaks[oldest].month {
				oldest = i
			}
		}
		w.peaks[oldest] = peakMark{month, at, v}
		return true
	}
	w.peaks = append(w.peaks, peakMark{month, at, v})
	return true
}
