package rollup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/p1logger/p1logger/internal/answerlimit"
	"github.com/p1logger/p1logger/internal/lineproto"
	"github.com/p1logger/p1logger/parser"
)

// PointWriter takes line protocol for InfluxDB: one or more lines, each
// ending in '\n', timestamps in nanoseconds. The ingest writer satisfies it;
// it queues the lines and returns quickly. An error means the lines were not
// taken; the worker logs it and writes the same points again at its next
// interval. The worker does not touch lines after the call returns.
type PointWriter interface {
	WriteLines(ctx context.Context, lines []byte) error
}

// Config configures a Worker.
type Config struct {
	// Location is the zone whose local days and months are summed
	// (P1_TIMEZONE). Required.
	Location *time.Location
	// Interval is how often the points are recomputed and written
	// (P1_ROLLUP_INTERVAL). Zero means one minute.
	Interval time.Duration
	// Bucket holds the p1 and p1_mbus points the baselines are recovered
	// from ("db/rp" on InfluxDB 1.8). Required.
	Bucket string
	// Now returns the current time; nil means time.Now. Tests inject a clock.
	Now func() time.Time
	// Logger receives the worker's logs; nil discards them.
	Logger *slog.Logger
	// Gateways are the gateway names to roll up. Gateways that Observe
	// reports but that are not listed here are rolled up as well.
	Gateways []string
	// StateFile is the file the worker keeps its periods' state in, read
	// when Run starts and rewritten after every rollup (see state.go), so
	// that a restart continues without recovery queries. Empty: the state
	// is kept in memory only and every start recovers from InfluxDB.
	StateFile string
}

// Worker computes the p1_energy points: per gateway, the energy taken and
// injected (and gas used) over the current local day and month. Create it
// with New, feed it with Observe and run it with Run.
type Worker struct {
	cfg Config
	w   PointWriter
	q   Querier
	log *slog.Logger

	mu    sync.Mutex
	inbox map[string]*inbox // guarded by mu

	current current // the snapshot Current returns

	// Owned by the goroutine running Run.
	started  bool
	gateways []string // sorted
	tracked  []*tracked
	limiter  limiter
	batch    int // gateways per recovery batch, adapted to InfluxDB's speed
	// st is the state file read at start, used by the first rollup's
	// periods and dropped after it.
	st *savedState
	// stateBroken is set after the state file could not be written and not
	// be removed either: it is not written again (see saveState).
	stateBroken bool
}

// inbox holds what Observe was told since the last rollup, per gateway.
type inbox struct {
	obs      []obs
	maxAt    time.Time // the latest reading's time, kept across rollups
	meter    string    // the last meter_id, reused so equal ids do not allocate
	gasMeter string
	dropped  int
}

// tracked is a period the worker keeps state for: the current day and
// month, and the previous ones until their final values are written.
type tracked struct {
	period
	since time.Time // when the worker began tracking it (Config.Now)
	gws   map[string]*gwPeriod
}

// gwPeriod is one gateway's state in one period.
type gwPeriod struct {
	recovered bool // acc holds what InfluxDB knew plus everything observed since
	acc       [numFields]fieldAcc
	pending   []obs // observed before recovery succeeded, applied after it
	// tail, when not zero, says that acc is a snapshot from the state file
	// that may miss readings InfluxDB has from tail on (the run that wrote
	// it did not stop cleanly): a tail recovery replays them, then pending.
	// Until then the points and Current show the snapshot with pending.
	tail instant
	// closed: the period ended before the state file was written and was
	// not in it, so the run that wrote it also wrote its final value.
	// Nothing is written for it, nor is it changed by late readings.
	closed bool
}

const (
	// queryTimeout bounds the queries of one period's recovery of one
	// batch of gateways. A month of 5-second readings takes about 3 s per
	// gateway on a small machine running InfluxDB 1.8.
	queryTimeout = 2 * time.Minute
	// firstBatch is how many gateways the first recovery queries cover.
	// Later batches double while InfluxDB answers a batch within
	// batchFast (a young database, or days), up to maxBatch, and halve when
	// one takes longer than batchSlow or fails: a month of 5-second readings
	// takes seconds per gateway on a small machine, and thousands of
	// gateways must not cost thousands of queries where a few do.
	firstBatch = 10
	maxBatch   = 1000
	batchFast  = 5 * time.Second
	batchSlow  = 30 * time.Second
	// writeTimeout bounds one WriteLines call.
	writeTimeout = 30 * time.Second
	// finalTimeout bounds the last write when Run is cancelled.
	finalTimeout = 5 * time.Second
	// maxQueued bounds the readings held per gateway while rollups or
	// recoveries are late. The oldest go first: InfluxDB has them by then,
	// and a missing reading between two others only hides a meter reset
	// inside the gap, never energy.
	maxQueued = 20000
	// maxAhead: readings stamped further in the future than this are refused.
	maxAhead = time.Hour
	// keepUnwritten: a past period whose final value could not be recovered
	// or written is given up after it has been tried for this long.
	keepUnwritten = 48 * time.Hour
)

// New returns a Worker that writes p1_energy points to w and recovers
// baselines through q. It returns an error when the configuration is
// unusable (no location, no bucket, a negative interval, nil w or q).
func New(cfg Config, w PointWriter, q Querier) (*Worker, error) {
	switch {
	case cfg.Location == nil:
		return nil, errors.New("rollup: no location")
	case cfg.Bucket == "":
		return nil, errors.New("rollup: no bucket")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("rollup: negative interval %s", cfg.Interval)
	case w == nil || q == nil:
		return nil, errors.New("rollup: nil writer or querier")
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	wk := &Worker{
		cfg:   cfg,
		w:     w,
		q:     q,
		log:   lg.With("component", "rollup"),
		inbox: map[string]*inbox{},
		batch: firstBatch,
	}
	for _, gw := range cfg.Gateways {
		wk.addGateway(gw)
	}
	return wk, nil
}

// Observe hands the worker the telegram that became gateway's p1 point at
// time at. It copies what it needs (t may be reused afterwards), does no
// I/O and is safe to call concurrently with Run and with itself. Gas is
// taken from the lowest-channel gas device on the M-Bus that has a value
// and a capture time; it counts at its capture time.
func (w *Worker) Observe(gateway string, at time.Time, t *parser.Telegram) {
	if t == nil || gateway == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	in := w.inbox[gateway]
	if in == nil {
		in = &inbox{}
		w.inbox[gateway] = in
	}
	o := obs{at: at, date: dateKey(at, w.cfg.Location), newest: at.After(in.maxAt)}
	if o.newest {
		in.maxAt = at
	}
	for f := range field(numP1Fields) {
		if d, ok := t.Get(parserFields[f]); ok {
			o.vals[f] = d
			o.has |= 1 << f
		}
	}
	if in.meter != string(t.MeterID) {
		in.meter = string(t.MeterID)
	}
	o.meter = in.meter
	var gas *parser.MBus
	for i := range t.MBus {
		m := &t.MBus[i]
		if m.Kind == parser.KindGas && m.HasValue && !m.Time.IsZero() && (gas == nil || m.Channel < gas.Channel) {
			gas = m
		}
	}
	if gas != nil {
		if in.gasMeter != string(gas.ID) {
			in.gasMeter = string(gas.ID)
		}
		o.gas = sample{at: instantOf(gas.Time), v: gas.Value, meter: in.gasMeter}
		o.hasGas = true
		o.gasDate = dateKey(gas.Time, w.cfg.Location)
	}
	if o.has == 0 && !o.hasGas {
		return
	}
	if len(in.obs) >= maxQueued {
		n := copy(in.obs, in.obs[maxQueued/2:])
		in.dropped += len(in.obs) - n
		in.obs = in.obs[:n]
	}
	in.obs = appendObs(in.obs, o)
}

// Run reads the state file (Config.StateFile) and recovers from InfluxDB
// what it does not cover, then computes and writes the
// day and month points of every gateway at once and every Interval after
// that (aligned to multiples of Interval), until ctx is cancelled. Every
// rollup rewrites the state file; a state file that cannot be read or
// written is logged and recovery from InfluxDB takes its place. Query and
// write failures are logged and retried at the next interval; they never
// stop Run. On cancellation it makes a last write of what it has, bounded
// by a few seconds, and returns nil. Run must not be called twice at once.
func (w *Worker) Run(ctx context.Context) error {
	w.log.Info("rollup started", "interval", w.cfg.Interval, "location", w.cfg.Location.String())
	w.begin(w.cfg.Now())
	w.tick(ctx, true)
	for {
		t := time.NewTimer(w.untilNext())
		select {
		case <-ctx.Done():
			t.Stop()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
			w.tick(fctx, false)
			cancel()
			w.log.Info("rollup stopped")
			return nil
		case <-t.C:
		}
		w.tick(ctx, true)
	}
}

// begin reads the state file and, when there is one, publishes the totals
// it holds at once, before InfluxDB answers anything (or while it is down).
func (w *Worker) begin(now time.Time) {
	w.loadState(now)
	if w.st != nil {
		w.track(now)
		w.publish(now)
	}
}

// untilNext returns the wait until the next multiple of Interval, so that
// a one-minute rollup runs on the minute.
func (w *Worker) untilNext() time.Duration {
	iv := w.cfg.Interval
	d := iv - time.Duration(w.cfg.Now().UnixNano()%int64(iv))
	if d <= 0 || d > iv {
		d = iv
	}
	return d
}

// tick is one rollup: take in the observed readings, recover the periods
// that need it (unless recover is false), write every point, and forget
// periods whose final values are written.
func (w *Worker) tick(ctx context.Context, recover bool) {
	now := w.cfg.Now()
	batch := w.drain()
	w.track(now)
	gws := make([]string, 0, len(batch))
	for gw := range batch {
		gws = append(gws, gw)
	}
	sort.Strings(gws)
	for _, gw := range gws {
		w.addGateway(gw)
		for i := range batch[gw] {
			w.route(gw, &batch[gw][i], now)
		}
	}
	if recover {
		w.recoverAll(ctx, w.recoveryBudget())
	} else {
		w.continueAll()
	}
	ok := w.write(ctx)
	w.publish(now)
	w.retire(now, ok)
	w.st = nil // the first rollup's periods took what they could from it
	w.saveState(now, !recover)
}

// drain takes the readings Observe queued.
func (w *Worker) drain() map[string][]obs {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]obs{}
	for gw, in := range w.inbox {
		if in.dropped > 0 {
			w.warn("queue-"+gw, "rollup fell behind; oldest readings dropped", "gateway", gw, "dropped", in.dropped)
			in.dropped = 0
		}
		if len(in.obs) > 0 {
			out[gw] = in.obs
			in.obs = nil
		}
	}
	return out
}

// addGateway starts tracking gw in every tracked period.
func (w *Worker) addGateway(gw string) {
	i := sort.SearchStrings(w.gateways, gw)
	if i < len(w.gateways) && w.gateways[i] == gw {
		return
	}
	w.gateways = append(w.gateways, "")
	copy(w.gateways[i+1:], w.gateways[i:])
	w.gateways[i] = gw
	for _, tp := range w.tracked {
		tp.gws[gw] = w.fromState(gw, tp.period)
	}
}

// track makes sure the periods containing now are tracked and, on the
// first rollup, the ones before them too: a worker started after midnight
// books yesterday's final value.
func (w *Worker) track(now time.Time) {
	for _, k := range []kind{day, month} {
		p := periodOf(k, now, w.cfg.Location)
		if !w.started {
			w.ensure(p.previous(w.cfg.Location), now)
		}
		w.ensure(p, now)
	}
	w.started = true
}

// ensure tracks p, from now on, if it is not tracked yet.
func (w *Worker) ensure(p period, now time.Time) *tracked {
	for _, tp := range w.tracked {
		if tp.kind == p.kind && tp.start.Equal(p.start) {
			return tp
		}
	}
	tp := &tracked{period: p, since: now, gws: make(map[string]*gwPeriod, len(w.gateways))}
	for _, gw := range w.gateways {
		tp.gws[gw] = w.fromState(gw, p)
	}
	w.tracked = append(w.tracked, tp)
	sort.SliceStable(w.tracked, func(i, j int) bool {
		a, b := w.tracked[i], w.tracked[j]
		if !a.start.Equal(b.start) {
			return a.start.Before(b.start)
		}
		return a.kind < b.kind
	})
	return tp
}

// route files one observed reading under every tracked period: inside the
// period it is the next reading, before it a candidate baseline. A reading
// stamped in a period after the newest tracked one (the clock of the
// caller running slightly ahead) starts tracking that period.
func (w *Worker) route(gw string, o *obs, now time.Time) {
	if o.at.After(now.Add(maxAhead)) {
		w.warn("ahead-"+gw, "reading stamped in the future ignored", "gateway", gw, "at", o.at, "now", now)
		return
	}
	for _, k := range []kind{day, month} {
		p := periodOf(k, o.at, w.cfg.Location)
		if newest := w.newest(k); newest == nil || p.start.After(newest.start) {
			w.ensure(p, now)
		}
	}
	for _, tp := range w.tracked {
		gp := tp.gws[gw]
		if gp.closed || !o.at.Before(tp.end) && (!o.hasGas || !o.gas.at.Before(instantOf(tp.end))) {
			continue
		}
		if !gp.recovered {
			if len(gp.pending) >= maxQueued {
				gp.pending = append(gp.pending[:0], gp.pending[maxQueued/2:]...)
			}
			gp.pending = appendObs(gp.pending, *o)
			continue
		}
		gp.apply(o, tp.period)
	}
}

func (gp *gwPeriod) apply(o *obs, p period) {
	for f := range numFields {
		if s, ok := o.sample(f); ok {
			gp.acc[f].add(s, p)
		}
	}
}

func (w *Worker) newest(k kind) *tracked {
	var n *tracked
	for _, tp := range w.tracked {
		if tp.kind == k && (n == nil || tp.start.After(n.start)) {
			n = tp
		}
	}
	return n
}

// recoverAll recovers gateways and periods not recovered yet: days before
// months (a month costs thirty times more, and a day's point should not wait
// for it), each kind oldest first, so that a period's baseline can also come
// from the readings the worker itself saw at the end of the period before.
// Gateways go in batches (see firstBatch), each batch with its own time
// limit, so that many gateways cannot make every attempt time out. After
// budget (wall time) it stops and leaves the rest to the next rollup: the
// points of the gateways recovered so far are written meanwhile.
func (w *Worker) recoverAll(ctx context.Context, budget time.Duration) {
	end := time.Now().Add(budget)
	// After a batch failed otherwise than by its time limit (InfluxDB down,
	// or refusing the token), the others of this rollup do not query.
	var down error
	order := append([]*tracked(nil), w.tracked...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].kind < order[j].kind })
	for _, tp := range order {
		var gws, tails []string
		for _, gw := range w.gateways {
			switch gp := tp.gws[gw]; {
			case gp.recovered:
			case gp.tail != 0:
				tails = append(tails, gw)
			default:
				gws = append(gws, gw)
			}
		}
		for len(tails) > 0 && ctx.Err() == nil {
			if !time.Now().Before(end) {
				return
			}
			batch := tails[:min(len(tails), w.batch)]
			tails = tails[len(batch):]
			err := w.recoverTail(ctx, tp, batch, down)
			if err != nil && down == nil && !tooMuch(err) {
				down = err
			}
		}
		for len(gws) > 0 && ctx.Err() == nil {
			if !time.Now().Before(end) {
				return
			}
			batch := gws[:min(len(gws), w.batch)]
			gws = gws[len(batch):]
			err := w.recoverBatch(ctx, tp, batch, down)
			if err != nil && down == nil && !tooMuch(err) {
				down = err
			}
		}
	}
}

// recoveryBudget is how long one rollup may spend on recovery queries
// before it writes: half the interval, at least 30 s.
func (w *Worker) recoveryBudget() time.Duration {
	return max(w.cfg.Interval/2, 30*time.Second)
}

// tooMuch reports whether err says that a batch asked too much of
// InfluxDB: it ran out of time, or its answer was longer than
// answerlimit.DefaultMax (internal/influx refuses longer ones). A smaller batch can succeed where
// that one failed, so neither halts the other batches as an InfluxDB that
// is down does.
func tooMuch(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, answerlimit.ErrTooLarge)
}

// resize adapts the batch size to how long a batch of n gateways took, and
// whether it asked too much (tooMuch).
func (w *Worker) resize(n int, took time.Duration, tooMuch bool) {
	switch {
	case tooMuch || took > batchSlow:
		w.batch = max(min(w.batch, n)/2, 1)
	case took < batchFast && n >= w.batch:
		w.batch = min(w.batch*2, maxBatch)
	}
}

// recoverBatch recovers tp for gws and returns the query's error. With skip
// not nil it sends no query and fails with skip: InfluxDB failed a batch
// already in this rollup. A failed batch's gateways continue from live data
// where they can.
func (w *Worker) recoverBatch(ctx context.Context, tp *tracked, gws []string, skip error) error {
	t0 := time.Now()
	var sums map[string]*summary
	err := skip
	if skip == nil {
		sums, err = w.recoverPeriod(ctx, tp.period, gws)
		if err != nil && ctx.Err() != nil {
			return err // shutting down: not an InfluxDB problem
		}
		w.resize(len(gws), time.Since(t0), tooMuch(err))
	}
	if err != nil {
		// A period that began while the worker was watching can go on
		// from what it saw: its baseline is the last reading of the
		// period before, which the worker holds.
		cont := 0
		for _, gw := range gws {
			if w.continuous(gw, tp) {
				w.finish(gw, tp, nil)
				cont++
			}
		}
		w.warn("recover-"+tp.kind.String(), "recovery from InfluxDB failed; retrying next interval",
			"period", tp.period.String(), "gateways", len(gws), "err", err, "continued_from_live_data", cont)
		return err
	}
	for _, gw := range gws {
		w.finish(gw, tp, sums[gw])
	}
	w.log.Debug("recovered", "period", tp.period.String(), "gateways", len(gws), "took", time.Since(t0), "next_batch", w.batch)
	return nil
}

// continueAll finishes, from the readings the worker saw, every period
// that began while it was watching and is not recovered yet: the last
// rollup of a run does not query, and the state file it leaves should hold
// a day that began just before the stop, as a failed recovery would
// continue it.
func (w *Worker) continueAll() {
	for _, tp := range w.tracked {
		for _, gw := range w.gateways {
			if gp := tp.gws[gw]; !gp.recovered && gp.tail == 0 && w.continuous(gw, tp) {
				w.finish(gw, tp, nil)
			}
		}
	}
}

// continuous reports whether gw's state in a period ending where tp starts
// was recovered: then the worker has seen every reading up to tp.
func (w *Worker) continuous(gw string, tp *tracked) bool {
	for _, o := range w.tracked {
		if op := o.gws[gw]; o.end.Equal(tp.start) && op.recovered && !op.closed {
			return true
		}
	}
	return false
}

// finish installs a recovered summary (nil: nothing from InfluxDB), takes
// later baselines from the readings the worker saw in earlier periods, and
// applies the readings observed meanwhile.
func (w *Worker) finish(gw string, tp *tracked, sum *summary) {
	gp := tp.gws[gw]
	if sum != nil {
		for f := range numFields {
			gp.acc[f] = sum[f].acc(tp.period)
		}
	} else {
		gp.acc = [numFields]fieldAcc{}
	}
	for _, o := range w.tracked {
		op := o.gws[gw]
		if o == tp || !op.recovered || o.end.After(tp.start) {
			continue
		}
		for f := range numFields {
			if op.acc[f].has {
				gp.acc[f].add(op.acc[f].last, tp.period)
			}
		}
	}
	for i := range gp.pending {
		gp.apply(&gp.pending[i], tp.period)
	}
	gp.pending = nil
	gp.recovered = true
}

// lines appends the p1_energy points of every recovered gateway that has a
// reading in a tracked period.
func (w *Worker) lines(b *lineproto.Builder) {
	var text []byte
	for _, tp := range w.tracked {
		for _, gw := range w.gateways {
			acc, ok := tp.gws[gw].view(tp.period)
			if !ok {
				continue
			}
			var vals [numFields]parser.Decimal
			var has [numFields]bool
			n := 0
			for f := range numFields {
				if vals[f], has[f] = acc[f].value(); has[f] {
					n++
				}
			}
			if n == 0 {
				continue // no reading in the period: no point
			}
			b.Measurement("p1_energy")
			b.Tag("gateway", gw)
			b.Tag("period", tp.kind.String())
			for f := range numFields {
				if has[f] {
					text = vals[f].AppendText(text[:0])
					b.FieldDecimalText(fieldNames[f], text)
				}
			}
			b.End(tp.start)
		}
	}
}

// write writes every point; it reports whether that succeeded.
func (w *Worker) write(ctx context.Context) bool {
	var b lineproto.Builder
	w.lines(&b)
	if b.Len() == 0 {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := w.w.WriteLines(wctx, b.Buf); err != nil {
		w.warn("write", "writing p1_energy failed; retrying next interval", "err", err)
		return false
	}
	return true
}

// retire forgets past periods once a write after their end plus a grace
// time (for late readings) succeeded, or, when recovery or writes keep
// failing, once they have been tried for keepUnwritten.
func (w *Worker) retire(now time.Time, wrote bool) {
	grace := max(2*w.cfg.Interval, 2*time.Minute)
	keep := w.tracked[:0]
	for _, tp := range w.tracked {
		done := false
		if !tp.end.Add(grace).After(now) {
			all := true
			for _, gp := range tp.gws {
				all = all && gp.recovered
			}
			done = wrote && all
			if !done && !tp.since.Add(keepUnwritten).After(now) && !tp.end.Add(keepUnwritten).After(now) {
				w.warn("giveup", "giving up on a past period", "period", tp.period.String())
				done = true
			}
		}
		if !done {
			keep = append(keep, tp)
		}
	}
	clear(w.tracked[len(keep):])
	w.tracked = keep
}

// limiter rate-limits repeated warnings: one per key per minute, with the
// count of those suppressed. It uses the wall clock, not Config.Now: it
// paces logs, not rollups.
type limiter struct {
	last       map[string]time.Time
	suppressed map[string]int
}

func (w *Worker) warn(key, msg string, args ...any) {
	l := &w.limiter
	if l.last == nil {
		l.last, l.suppressed = map[string]time.Time{}, map[string]int{}
	}
	if t, ok := l.last[key]; ok && time.Since(t) < time.Minute {
		l.suppressed[key]++
		return
	}
	if n := l.suppressed[key]; n > 0 {
		args = append(args, "suppressed", n)
	}
	l.last[key] = time.Now()
	l.suppressed[key] = 0
	w.log.Warn(msg, args...)
}
