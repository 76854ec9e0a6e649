package rollup

import (
	"time"

	"github.com/p1logger/p1logger/parser"
)

// field indexes the registers a rollup sums; the order is DESIGN.md's.
type field uint8

const (
	fTaken field = iota
	fInjected
	fTakenT1
	fTakenT2
	fInjectedT1
	fInjectedT2
	fGas
	numFields
)

// numP1Fields counts the fields read from measurement p1; fGas comes from p1_mbus.
const numP1Fields = int(fGas)

// fieldNames are the p1_energy field keys. The first six are also the p1
// field keys of the registers they sum.
var fieldNames = [numFields]string{
	fTaken: "taken_kwh", fInjected: "injected_kwh",
	fTakenT1: "taken_t1_kwh", fTakenT2: "taken_t2_kwh",
	fInjectedT1: "injected_t1_kwh", fInjectedT2: "injected_t2_kwh",
	fGas: "gas_m3",
}

// parserFields maps the p1 fields to the telegram's registers.
var parserFields = [numP1Fields]parser.Field{
	fTaken: parser.Taken, fInjected: parser.Injected,
	fTakenT1: parser.TakenT1, fTakenT2: parser.TakenT2,
	fInjectedT1: parser.InjectedT1, fInjectedT2: parser.InjectedT2,
}

func p1FieldByName(name string) (field, bool) {
	for f := range field(numP1Fields) {
		if fieldNames[f] == name {
			return f, true
		}
	}
	return 0, false
}

// sample is one register reading: when, what, and on which meter.
type sample struct {
	at    instant
	v     parser.Decimal
	meter string // meter_id; "" when the meter sends none
}

// instant is a time as Unix nanoseconds, a third of a time.Time: the
// accumulators hold three per register, period and gateway. Zero is "none"
// (readings from before 1970 are not readings).
type instant int64

func instantOf(t time.Time) instant {
	if t.IsZero() {
		return 0
	}
	return instant(t.UnixNano())
}

func (i instant) Before(j instant) bool { return i < j }
func (i instant) After(j instant) bool  { return i > j }
func (i instant) IsZero() bool          { return i == 0 }
func (i instant) Time() time.Time       { return time.Unix(0, int64(i)) }

// breaks reports whether next starts a new segment after prev: the register
// went down (meter replaced or reset) or the meter itself changed.
func breaks(prev, next sample) bool {
	return prev.meter != next.meter || less(next.v, prev.v)
}

// obs is what Observe keeps of one telegram: the p1 registers at the
// point's time and, separately, the gas reading at its capture time.
type obs struct {
	at     time.Time
	meter  string
	vals   [numP1Fields]parser.Decimal
	has    uint8 // bit f set when vals[f] was sent
	gas    sample
	hasGas bool
	// For appendObs: the local dates (dateKey) of at and gas.at, and
	// whether at was later than every reading of the gateway before.
	date, gasDate int32
	newest        bool
}

// dateKey identifies t's local date in loc: readings with equal keys lie in
// the same day and month.
func dateKey(t time.Time, loc *time.Location) int32 {
	y, m, d := t.In(loc).Date()
	return int32(y)*10000 + int32(m)*100 + int32(d)
}

// appendObs appends o to the readings q, which are in time order, and keeps
// q short: the last reading is replaced rather than followed when it lies
// between the one before it and o in every respect the rollup looks at
// (midway). Filing the three readings in any accumulator then gives what
// filing the outer two does, so a gateway whose rollups are late (InfluxDB
// slow to answer the recovery queries, say) costs two or three readings
// per day, not one per cycle.
func appendObs(q []obs, o obs) []obs {
	if n := len(q); n >= 2 && midway(&q[n-2], &q[n-1], &o) {
		q[n-1] = o
		return q
	}
	return append(q, o)
}

// midway reports whether y can be dropped from the readings x, y, z: all
// three in one local day, of one meter, with the same registers, in time
// order, and no register going down from x to y or from y to z. Then y is
// neither a segment's end nor a baseline that z does not replace. (Of two
// readings with one time, the first is the baseline: z must be later than
// y, or the same gas capture again.) x must be the newest reading when it
// came: one from before a clock step back is ignored by accumulators that
// saw later ones, and y would then start a segment.
func midway(x, y, z *obs) bool {
	if !x.newest || x.date != z.date || x.meter != y.meter || y.meter != z.meter ||
		x.has != y.has || y.has != z.has || x.hasGas != y.hasGas || y.hasGas != z.hasGas ||
		y.at.Before(x.at) || !z.at.After(y.at) {
		return false
	}
	for f := range numP1Fields {
		if x.has&(1<<f) != 0 && (less(y.vals[f], x.vals[f]) || less(z.vals[f], y.vals[f])) {
			return false
		}
	}
	if !x.hasGas {
		return true
	}
	a, b, c := &x.gas, &y.gas, &z.gas
	return x.gasDate == z.gasDate && a.meter == b.meter && b.meter == c.meter &&
		!b.at.Before(a.at) && (c.at.After(b.at) || *c == *b) && !less(b.v, a.v) && !less(c.v, b.v)
}

// sample returns register f of o, and whether o has it.
func (o *obs) sample(f field) (sample, bool) {
	if f == fGas {
		return o.gas, o.hasGas
	}
	if o.has&(1<<f) == 0 {
		return sample{}, false
	}
	return sample{at: instantOf(o.at), v: o.vals[f], meter: o.meter}, true
}

// fieldAcc accumulates one register over one period.
//
// The in-period readings form segments: a new one starts wherever breaks is
// true. closed is the sum of (last − first) over the finished segments,
// segFirst the first value of the open one, last the latest reading. The
// baseline (the last reading before the period) is kept apart: it adds
// first − base when base and first are on the same segment, so that a
// baseline learnt late (a reading from before midnight delivered after the
// first reading of the day) replaces it without replaying anything.
type fieldAcc struct {
	base    sample
	hasBase bool

	has      bool // at least one reading inside the period
	first    sample
	last     sample
	segFirst parser.Decimal
	closed   parser.Decimal
	// overflow is set when a sum left the Decimal range; the period's
	// value is then unknown and not written, rather than written wrong.
	overflow bool
}

// add files s under p: as the baseline when it lies before p and is newer
// than the baseline known, as the next reading when it lies inside p. It
// reports false for a reading inside p older than the latest one, which is
// ignored: readings arrive in time order, so it is a duplicate or a stray.
func (a *fieldAcc) add(s sample, p period) bool {
	switch {
	case s.at.Before(instantOf(p.start)):
		if !a.hasBase || s.at.After(a.base.at) {
			a.base, a.hasBase = s, true
		}
		return true
	case !s.at.Before(instantOf(p.end)):
		return true
	}
	if !a.has {
		a.has, a.first, a.last, a.segFirst = true, s, s, s.v
		return true
	}
	if s.at.Before(a.last.at) {
		return false
	}
	if breaks(a.last, s) {
		seg, err := sub(a.last.v, a.segFirst)
		if err == nil {
			a.closed, err = a.closed.Add(seg)
		}
		a.overflow = a.overflow || err != nil
		a.segFirst = s.v
	}
	a.last = s
	return true
}

// value returns the energy of the period so far, and false when there is
// no reading inside the period or the sum left the Decimal range (then no
// field is written).
func (a *fieldAcc) value() (parser.Decimal, bool) {
	if !a.has || a.overflow {
		return parser.Decimal{}, false
	}
	seg, err := sub(a.last.v, a.segFirst)
	v, err2 := a.closed.Add(seg)
	if err != nil || err2 != nil {
		return parser.Decimal{}, false
	}
	if a.hasBase && !breaks(a.base, a.first) {
		d, err := sub(a.first.v, a.base.v)
		if v, err2 = v.Add(d); err != nil || err2 != nil {
			return parser.Decimal{}, false
		}
	}
	if v.Int < 0 {
		// Cannot happen: every segment is non-decreasing. Kept so that a
		// bug never shows as a negative day.
		v = parser.Decimal{}
	}
	return normal(v), true
}
