package rollup

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// Recovery rebuilds, from the p1 and p1_mbus points already in InfluxDB,
// what a worker that had watched every reading would know about a period:
// per gateway and register, the baseline, and the in-period readings
// compressed to what the segment rule needs. The server does the scanning
// (a month of 5-second points is over half a million rows per field); only
// a handful of rows per gateway come back:
//
//   - per series (gateway, meter_id, field; for gas also channel) the first
//     and last reading inside the period, and every reading where the
//     register went down (difference() < 0) with the value before it;
//   - when a gateway's series overlap in time (a meter_id that flips back and
//     forth), the same per run of consecutive readings of one meter, found
//     by numbering the readings in time order (the "runs" query);
//   - the baseline: the latest reading before the period, looked for in
//     growing windows so that the usual case reads two days at most.
//
// The questions go through Querier (querier.go); internal/influx answers
// them in Flux or InfluxQL.

// baseWindows are the look-back windows for the baseline; 0 means since 1970.
var baseWindows = []time.Duration{48 * time.Hour, 40 * 24 * time.Hour, 400 * 24 * time.Hour, 0}

// epoch bounds the last window. InfluxDB cannot store points before 1677,
// and a meter reading from before 1970 is not a reading.
var epoch = time.Unix(0, 0).UTC()

// drop is a place inside a run where the register went down: v after, prev
// the reading just before.
type drop struct {
	at   instant
	prev parser.Decimal
	v    parser.Decimal
}

// run is a stretch of consecutive readings of one meter.
type run struct {
	first, last sample
	drops       []drop
}

// fieldSummary is what recovery learns about one register of one gateway.
type fieldSummary struct {
	base    sample
	hasBase bool
	runs    []*run // in time order
}

// acc replays the summary into an accumulator. The replayed readings are
// the segment ends and starts the rule depends on, so the result equals
// that of replaying every reading.
func (s *fieldSummary) acc(p period) fieldAcc {
	var a fieldAcc
	if s.hasBase {
		a.add(s.base, p)
	}
	for _, r := range s.runs {
		a.add(r.first, p)
		for _, d := range r.drops {
			// The reading before the drop: its time is not known, only
			// that it lies between the run's first reading and the drop.
			a.add(sample{at: d.at, v: d.prev, meter: r.first.meter}, p)
			a.add(sample{at: d.at, v: d.v, meter: r.first.meter}, p)
		}
		a.add(r.last, p)
	}
	return a
}

// summary is recovery's result for one gateway and period.
type summary [numFields]fieldSummary

// row is one record of a recovery query.
type row struct {
	result  string // the yield: first, last, drops or base
	gw      string
	f       field
	channel string // p1_mbus only
	meter   string
	run     int64 // runs query only
	at      time.Time
	value   float64
	v       float64 // drops: the register after the drop
}

// seriesKey identifies one register of one gateway during recovery. Gas is
// kept per channel until one channel is chosen.
type seriesKey struct {
	gw      string
	f       field
	channel string
}

type runKey struct {
	meter string
	run   int64
}

// recoverPeriod recovers p for the gateways gws. It returns an error when a
// query fails; then nothing is recovered.
func (w *Worker) recoverPeriod(ctx context.Context, p period, gws []string) (map[string]*summary, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	out, gasChannel, err := w.recoverRuns(ctx, p, gws)
	if err != nil {
		return nil, err
	}
	if err := w.recoverBase(ctx, p, out, gasChannel); err != nil {
		return nil, err
	}
	return out, nil
}

// recoverRuns recovers the readings inside p, without baselines, and
// returns the gas channel chosen per gateway.
func (w *Worker) recoverRuns(ctx context.Context, p period, gws []string) (map[string]*summary, map[string]string, error) {
	var all [numFields]bool
	for f := range all {
		all[f] = true
	}
	sums, err := w.q.Summary(ctx, selectOf(p.start, p.end, gws, all))
	rows := summaryRows(sums)
	if err != nil {
		return nil, nil, fmt.Errorf("recover %s: %w", p, err)
	}
	runs := collectRuns(rows, false)

	// Series of one register that overlap in time (a meter_id that came
	// back) cannot be told apart per series: those gateways get the runs
	// query. Registers that went down somewhere (min of difference() < 0)
	// get the drops query, which lists where.
	var heavy, drops [2][]string // by source: 0 p1, 1 gas
	src := func(f field) int {
		if f == fGas {
			return 1
		}
		return 0
	}
	for k, rs := range runs {
		if overlap(rs) && !contains(heavy[src(k.f)], k.gw) {
			heavy[src(k.f)] = append(heavy[src(k.f)], k.gw)
		}
	}
	for _, r := range rows {
		if r.result == "mindiff" && r.value < 0 && !contains(drops[src(r.f)], r.gw) {
			drops[src(r.f)] = append(drops[src(r.f)], r.gw)
		}
	}
	for i := range drops {
		var keep []string
		for _, gw := range drops[i] {
			if !contains(heavy[i], gw) {
				keep = append(keep, gw)
			}
		}
		drops[i] = keep
	}
	for i, gws := range drops {
		if len(gws) == 0 {
			continue
		}
		sort.Strings(gws)
		more, err := w.q.Drops(ctx, selectOf(p.start, p.end, gws, sourceFields(i == 1)))
		if err != nil {
			return nil, nil, fmt.Errorf("recover %s drops: %w", p, err)
		}
		rows = append(rows, dropRows(more, 0)...)
	}
	runs = collectRuns(rows, false)
	for i, gws := range heavy {
		if len(gws) == 0 {
			continue
		}
		sort.Strings(gws)
		list, err := w.q.Runs(ctx, selectOf(p.start, p.end, gws, sourceFields(i == 1)))
		more := runRows(list)
		if err != nil {
			return nil, nil, fmt.Errorf("recover %s runs: %w", p, err)
		}
		for k := range runs {
			if src(k.f) == i && contains(gws, k.gw) {
				delete(runs, k)
			}
		}
		for k, rs := range collectRuns(more, true) {
			runs[k] = rs
		}
	}

	out := make(map[string]*summary, len(gws))
	for _, gw := range gws {
		out[gw] = new(summary)
	}
	// One gas meter per gateway: the lowest channel with readings.
	gasChannel := map[string]string{}
	for k := range runs {
		if k.f == fGas {
			if c, ok := gasChannel[k.gw]; !ok || channelLess(k.channel, c) {
				gasChannel[k.gw] = k.channel
			}
		}
	}
	for k, rs := range runs {
		s, ok := out[k.gw]
		if !ok || (k.f == fGas && k.channel != gasChannel[k.gw]) {
			continue
		}
		s[k.f].runs = rs
	}
	return out, gasChannel, nil
}

// recoverBase fills in the baselines: the latest reading before p.start.
func (w *Worker) recoverBase(ctx context.Context, p period, out map[string]*summary, gasChannel map[string]string) error {
	for _, win := range baseWindows {
		var gws []string
		var need [numFields]bool
		for gw, s := range out {
			missing := false
			for f := range numFields {
				if !s[f].hasBase {
					need[f], missing = true, true
				}
			}
			if missing {
				gws = append(gws, gw)
			}
		}
		if len(gws) == 0 {
			return nil
		}
		sort.Strings(gws)
		from := epoch
		if win > 0 {
			from = p.start.Add(-win)
		}
		if !from.Before(p.start) {
			return nil
		}
		list, err := w.q.Last(ctx, selectOf(from, p.start, gws, need))
		rows := readingRows(list)
		if err != nil {
			return fmt.Errorf("recover %s baseline: %w", p, err)
		}
		// Rows are per series; keep the latest per register. Gas: the
		// channel chosen for the period, or the lowest one when the period
		// has no gas reading yet.
		channel := map[string]string{}
		for _, r := range rows {
			if r.f != fGas {
				continue
			}
			if c, ok := gasChannel[r.gw]; ok {
				channel[r.gw] = c
			} else if c, ok := channel[r.gw]; !ok || channelLess(r.channel, c) {
				channel[r.gw] = r.channel
			}
		}
		best := map[seriesKey]row{}
		for _, r := range rows {
			if r.f == fGas && r.channel != channel[r.gw] {
				continue
			}
			k := seriesKey{gw: r.gw, f: r.f}
			if b, ok := best[k]; !ok || r.at.After(b.at) {
				best[k] = r
			}
		}
		for k, r := range best {
			s := out[k.gw]
			if s == nil || s[k.f].hasBase {
				continue
			}
			v, ok := decFromFloat(r.value)
			if !ok {
				continue
			}
			s[k.f].base = sample{at: instantOf(r.at), v: v, meter: r.meter}
			s[k.f].hasBase = true
		}
		if win == 0 {
			break
		}
	}
	return nil
}

// collectRuns groups first/last/drops rows into runs per register, each
// list in time order. Per-series rows (runs false) of the same meter, which
// differ only in tags the rollup ignores (unit), are merged.
func collectRuns(rows []row, runs bool) map[seriesKey][]*run {
	byKey := map[seriesKey]map[runKey]*run{}
	get := func(r row) *run {
		k := seriesKey{gw: r.gw, f: r.f, channel: r.channel}
		m := byKey[k]
		if m == nil {
			m = map[runKey]*run{}
			byKey[k] = m
		}
		rk := runKey{meter: r.meter}
		if runs {
			rk.run = r.run
		}
		x := m[rk]
		if x == nil {
			x = &run{}
			m[rk] = x
		}
		return x
	}
	for _, r := range rows {
		if r.result != "first" && r.result != "last" && r.result != "drops" {
			continue
		}
		v, ok := decFromFloat(r.value)
		if r.result == "drops" {
			// value is the difference; v the register after the drop.
			after, ok1 := decFromFloat(r.v)
			diff, ok2 := decFromDiff(r.value)
			prev, err := sub(after, diff)
			if !ok1 || !ok2 || err != nil {
				continue
			}
			x := get(r)
			x.drops = append(x.drops, drop{at: instantOf(r.at), v: after, prev: prev})
			continue
		}
		if !ok {
			continue
		}
		s := sample{at: instantOf(r.at), v: v, meter: r.meter}
		x := get(r)
		switch r.result {
		case "first":
			if x.first.at.IsZero() || s.at.Before(x.first.at) {
				x.first = s
			}
		case "last":
			if x.last.at.IsZero() || s.at.After(x.last.at) {
				x.last = s
			}
		}
	}
	out := make(map[seriesKey][]*run, len(byKey))
	for k, m := range byKey {
		list := make([]*run, 0, len(m))
		for _, x := range m {
			if x.first.at.IsZero() || x.last.at.IsZero() {
				continue // a drop without its run: the run query was cut short
			}
			sort.Slice(x.drops, func(i, j int) bool { return x.drops[i].at.Before(x.drops[j].at) })
			list = append(list, x)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].first.at.Before(list[j].first.at) })
		if len(list) > 0 {
			out[k] = list
		}
	}
	return out
}

// overlap reports whether runs (sorted by first reading) interleave in time.
func overlap(rs []*run) bool {
	for i := 1; i < len(rs); i++ {
		if rs[i].first.at.Before(rs[i-1].last.at) {
			return true
		}
	}
	return false
}

// channelLess orders M-Bus channels numerically ("2" before "10").
func channelLess(a, b string) bool {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sourceFields are the fields of p1 (gas false) or the gas field.
func sourceFields(gas bool) [numFields]bool {
	var fields [numFields]bool
	if gas {
		fields[fGas] = true
		return fields
	}
	for f := range field(numP1Fields) {
		fields[f] = true
	}
	return fields
}
