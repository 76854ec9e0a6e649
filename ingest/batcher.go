package ingest

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// LineWriter accepts InfluxDB line protocol for delivery. WriteLines must not
// wait for InfluxDB: it queues (or spools) lines and returns; it must not keep
// lines after returning. [Writer] implements it, and so does anything that
// stands in for it (a durable spool, a test recorder). It has the method set
// of rollup.PointWriter, so the rollup worker writes through the same queue.
type LineWriter interface {
	WriteLines(ctx context.Context, lines []byte) error
}

// Observer is told about every p1 point the Batcher writes: the rollup worker
// computes day and month totals from them. Observe is called with the
// gateway's lock held; it must return quickly and must not keep t or any
// slice in it.
type Observer interface {
	Observe(gateway string, at time.Time, t *parser.Telegram)
}

// BatcherConfig tunes a Batcher. Zero fields take the defaults noted.
type BatcherConfig struct {
	// Cycle is how often the newest telegram of each gateway is written
	// (P1_CYCLE). Default 5s.
	Cycle time.Duration
	// HealthInterval is how often p1_gateway points are written
	// (P1_ROLLUP_INTERVAL). Default 1 min.
	HealthInterval time.Duration
	// Location is the zone for the month boundaries of p1_peak (P1_TIMEZONE).
	// Default time.Local.
	Location *time.Location
	// FlushBytes: lines are handed to the LineWriter in pieces of about this
	// size, so that a cycle of thousands of gateways never builds one huge
	// buffer. Default 256 KiB.
	FlushBytes int
	// Logger receives write failures. Default slog.Default().
	Logger *slog.Logger
	// Now replaces time.Now, for tests. Optional.
	Now func() time.Time
}

// Batcher turns the gateways' newest telegrams into points at every cycle,
// with one ticker for all gateways.
type Batcher struct {
	cfg      BatcherConfig
	gateways []*Gateway
	w        LineWriter
	obs      Observer
	log      *slog.Logger
	enc      encoder
	t        parser.Telegram // decode target of every gateway's slot in turn
	errs     rateLimit
	internal rateLimit // panics contained while encoding

	cycles      atomic.Int64
	p1Points    atomic.Int64
	mbusPoints  atomic.Int64
	peakPoints  atomic.Int64
	writeErrors atomic.Int64
	lastCycleNs atomic.Int64 // how long the last cycle took to encode, ns
}

// NewBatcher returns a Batcher over gateways that writes to w and tells obs
// (which may be nil) about every p1 point.
func NewBatcher(cfg BatcherConfig, gateways []*Gateway, w LineWriter, obs Observer) *Batcher {
	if cfg.Cycle <= 0 {
		cfg.Cycle = 5 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = time.Minute
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.FlushBytes <= 0 {
		cfg.FlushBytes = 256 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Batcher{cfg: cfg, gateways: gateways, w: w, obs: obs, log: cfg.Logger}
	b.enc.loc = cfg.Location
	return b
}

// Run writes a cycle every Cycle and health points every HealthInterval
// until ctx is cancelled; then it writes one last cycle, so that telegrams
// received since the previous one are not lost, and returns nil.
func (b *Batcher) Run(ctx context.Context) error {
	cycle := time.NewTicker(b.cfg.Cycle)
	defer cycle.Stop()
	health := time.NewTicker(b.cfg.HealthInterval)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Cycle(context.WithoutCancel(ctx))
			return nil
		case <-cycle.C:
			b.Cycle(ctx)
		case <-health.C:
			b.Health(ctx)
		}
	}
}

// Cycle writes, for every gateway that received a telegram since the last
// cycle, its newest telegram's p1 point and its new p1_mbus and p1_peak
// points, and returns how many p1 points it wrote. Run calls it; it is
// exported for callers that drive the Batcher themselves. A failed
// WriteLines is counted and logged; the points it carried are lost.
func (b *Batcher) Cycle(ctx context.Context) int {
	start := time.Now()
	now := b.cfg.Now()
	b.enc.b.Reset()
	n := 0
	for _, g := range b.gateways {
		g.takeFresh(func(raw []byte, loc *time.Location, at time.Time, w *writtenState) {
			mark := b.enc.b.Len()
			p1, mbus, peaks := false, 0, 0
			if contain(g, stageEncode, raw, b.log, &b.internal, now, func() {
				p1, mbus, peaks = b.encode(g.name, raw, loc, at, w)
			}) {
				// The telegram is dropped whole: what it half wrote goes.
				b.enc.b.Truncate(mark)
				return
			}
			if p1 {
				n++
			}
			b.mbusPoints.Add(int64(mbus))
			b.peakPoints.Add(int64(peaks))
		})
		if b.enc.b.Len() >= b.cfg.FlushBytes {
			b.flush(ctx)
		}
	}
	b.flush(ctx)
	b.cycles.Add(1)
	b.p1Points.Add(int64(n))
	b.lastCycleNs.Store(int64(time.Since(start)))
	return n
}

// encode appends the points of one gateway's newest telegram raw and tells
// the Observer about its p1 point. It reports whether it wrote a p1 point
// and how many p1_mbus and p1_peak points.
func (b *Batcher) encode(gateway string, raw []byte, loc *time.Location, at time.Time, w *writtenState) (p1 bool, mbus, peaks int) {
	t := &b.t
	// A parser accepted these bytes, so they decode as they did then; its
	// counters already hold any syntax error.
	if use, _ := Decode(t, raw, loc); !use {
		return false, 0, 0
	}
	p1 = b.enc.p1(gateway, t, at)
	mbus = b.enc.mbus(gateway, t, w)
	peaks = b.enc.peaks(gateway, t, w)
	// Told last, so that the rollups never see a point that a panic in a
	// later encoding step dropped.
	if p1 && b.obs != nil {
		b.obs.Observe(gateway, at, t)
	}
	return p1, mbus, peaks
}

// Health writes one p1_gateway point per gateway.
func (b *Batcher) Health(ctx context.Context) {
	now := b.cfg.Now()
	b.enc.b.Reset()
	for _, g := range b.gateways {
		s := g.Stats()
		b.enc.health(&s, now)
		if b.enc.b.Len() >= b.cfg.FlushBytes {
			b.flush(ctx)
		}
	}
	b.flush(ctx)
}

func (b *Batcher) flush(ctx context.Context) {
	if b.enc.b.Len() == 0 {
		return
	}
	if err := b.w.WriteLines(ctx, b.enc.b.Buf); err != nil {
		b.writeErrors.Add(1)
		if ok, suppressed := b.errs.Allow(b.cfg.Now(), time.Minute); ok {
			b.log.Error("points not queued", "reason", err, "suppressed_since_last", suppressed)
		}
	}
	b.enc.b.Reset()
}

// BatcherStats counts what a Batcher did since it was created.
type BatcherStats struct {
	Cycles      int64
	P1Points    int64
	MBusPoints  int64
	PeakPoints  int64
	WriteErrors int64         // WriteLines calls that failed
	LastCycle   time.Duration // encode time of the last cycle, writer hand-off included
}

// Stats returns the Batcher's counters.
func (b *Batcher) Stats() BatcherStats {
	return BatcherStats{
		Cycles:      b.cycles.Load(),
		P1Points:    b.p1Points.Load(),
		MBusPoints:  b.mbusPoints.Load(),
		PeakPoints:  b.peakPoints.Load(),
		WriteErrors: b.writeErrors.Load(),
		LastCycle:   time.Duration(b.lastCycleNs.Load()),
	}
}
