package rollup

import (
	"sync"
	"time"
)

// Energy is one gateway's energy over one period as the worker last
// computed it: the fields of its p1_energy point.
type Energy struct {
	Gateway string
	Period  string    // "day" or "month", the point's period tag
	Start   time.Time // local start of the period: the point's time
	End     time.Time // local start of the next period
	// Values maps p1_energy field names (taken_kwh, injected_t1_kwh,
	// gas_m3...) to their values; a register without a reading in the
	// period has no entry.
	Values map[string]float64
	// Since is zero when the values count from Start: every register had a
	// reading from before the period, its baseline. Otherwise (first start,
	// a gap in InfluxDB, a replaced meter) the rollup rule takes the first
	// reading inside the period as the baseline, and Since is when the
	// latest such register's first reading was taken: the values say "since
	// Since", not "since Start", and a page must not claim midnight.
	Since time.Time
	At    time.Time // when the worker computed it (Config.Now)
}

// current is the snapshot Current returns, published at the end of every
// rollup by the goroutine running Run. It is kept compact (no map per
// entry: thousands of gateways publish every minute) and turned into
// Energy values only when asked for.
type current struct {
	mu   sync.Mutex
	list []energyRec
	at   time.Time
}

// energyRec is one Energy, compactly.
type energyRec struct {
	gw         string
	kind       kind
	has        uint8 // bit f set when vals[f] is known
	start, end time.Time
	since      instant // Energy.Since; zero when every value has its baseline
	vals       [numFields]float64
}

// Current returns the day and month values of every gateway as the last
// rollup computed them, for the local day and month that contained that
// rollup's time: by gateway name, the day before the month. A gateway whose
// period is neither in the state file nor recovered from InfluxDB yet, or
// that has no reading in it, has no entry; before the first rollup the list
// is empty, unless Run found a state file: its totals are published before
// the first rollup. It is safe to
// call concurrently with Run, and the caller may keep the result.
func (w *Worker) Current() []Energy {
	w.current.mu.Lock()
	list, at := w.current.list, w.current.at
	w.current.mu.Unlock()
	out := make([]Energy, 0, len(list))
	for i := range list {
		r := &list[i]
		vals := make(map[string]float64, numFields)
		for f := range numFields {
			if r.has&(1<<f) != 0 {
				vals[fieldNames[f]] = r.vals[f]
			}
		}
		e := Energy{Gateway: r.gw, Period: r.kind.String(), Start: r.start, End: r.end, Values: vals, At: at}
		if !r.since.IsZero() {
			e.Since = r.since.Time()
		}
		out = append(out, e)
	}
	return out
}

// publish replaces Current's snapshot with the current periods' values at now.
func (w *Worker) publish(now time.Time) {
	var cur [2]*tracked
	for i, k := range []kind{day, month} {
		p := periodOf(k, now, w.cfg.Location)
		for _, tp := range w.tracked {
			if tp.kind == k && tp.start.Equal(p.start) {
				cur[i] = tp
			}
		}
	}
	// A new slice each time: Current's callers read the old one unlocked.
	list := make([]energyRec, 0, len(w.current.list))
	for _, gw := range w.gateways {
		for _, tp := range cur {
			if tp == nil {
				continue
			}
			gp := tp.gws[gw]
			if gp == nil {
				continue
			}
			acc, ok := gp.view(tp.period)
			if !ok {
				continue
			}
			r := energyRec{gw: gw, kind: tp.kind, start: tp.start, end: tp.end}
			for f := range numFields {
				a := &acc[f]
				if v, ok := a.value(); ok {
					r.vals[f] = v.Float64()
					r.has |= 1 << f
					if (!a.hasBase || breaks(a.base, a.first)) && a.first.at.After(r.since) {
						r.since = a.first.at
					}
				}
			}
			if r.has != 0 {
				list = append(list, r)
			}
		}
	}
	w.current.mu.Lock()
	w.current.list, w.current.at = list, now
	w.current.mu.Unlock()
}

// Month returns the local month of loc that contains t, as the instants of
// its start (the time of its p1_energy month point) and of the next month's
// start. Callers that look up month points use it to find exactly the
// rollup's instant, also in zones whose clock skips midnight.
func Month(t time.Time, loc *time.Location) (start, end time.Time) {
	p := periodOf(month, t, loc)
	return p.start, p.end
}
