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
	At     time.Time // when the worker computed it (Config.Now)
}

// current is the snapshot Current returns, published at the end of every
// rollup by the goroutine running Run.
type current struct {
	mu   sync.Mutex
	list []Energy
}

// Current returns the day and month values of every gateway as the last
// rollup computed them, for the local day and month that contained that
// rollup's time: by gateway name, the day before the month. A gateway whose
// period is not recovered from InfluxDB yet, or that has no reading in it,
// has no entry; before the first rollup the list is empty. It is safe to
// call concurrently with Run, and the caller may keep the result.
func (w *Worker) Current() []Energy {
	w.current.mu.Lock()
	defer w.current.mu.Unlock()
	return w.current.list
}

// publish replaces Current's snapshot with the current periods' values at now.
func (w *Worker) publish(now time.Time) {
	var list []Energy
	for _, gw := range w.gateways {
		for _, k := range []kind{day, month} {
			p := periodOf(k, now, w.cfg.Location)
			for _, tp := range w.tracked {
				gp := tp.gws[gw]
				if tp.kind != k || !tp.start.Equal(p.start) || gp == nil || !gp.recovered {
					continue
				}
				vals := map[string]float64{}
				for f := range numFields {
					if v, ok := gp.acc[f].value(); ok {
						vals[fieldNames[f]] = v.Float64()
					}
				}
				if len(vals) > 0 {
					list = append(list, Energy{Gateway: gw, Period: k.String(), Start: tp.start, End: tp.end, Values: vals, At: now})
				}
			}
		}
	}
	w.current.mu.Lock()
	w.current.list = list // a new slice each time: callers may keep the old one
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
