// Package history keeps the short, bounded, in-memory history the status
// page draws: per gateway, the net power of the last Window as one mean per
// minute, and the energy taken and injected, the gas, water and heat used
// in each hour of the current local day. It is fed like the rollup worker, by the Batcher's
// Observer calls, and forgets everything on restart: InfluxDB holds the
// history for good, this only spares the page a query.
//
// Memory is fixed per gateway and allocated up front: a ring of
// Window/time.Minute int32 values and 25 hours of five uint32 counters,
// about 2.3 KB with its share of the map (TestMemoryPerGateway measures
// 2,358 bytes per gateway at 10,000 gateways: 22.5 MiB).
package history

import (
	"math"
	"sync"
	"time"

	"github.com/p1logger/p1logger/internal/calendar"
	"github.com/p1logger/p1logger/parser"
)

// Window is how far back the power history reaches.
const Window = 6 * time.Hour

const (
	minutes = int(Window / time.Minute)
	// maxHours is the longest local day (the autumn DST change).
	maxHours = 25
	// none marks a minute without a reading.
	none = math.MinInt32
)

// Store is the history of a fixed set of gateways. Its methods are safe for
// concurrent use.
type Store struct {
	loc *time.Location
	gws map[string]*series
}

// series is one gateway's history, guarded by its own lock so that the
// Batcher's Observe calls and the page's reads of different gateways do not
// contend.
type series struct {
	mu     sync.Mutex
	first  int64 // unix ns of the first reading; 0 = none yet
	lastAt int64 // unix ns of the latest reading

	// power[m%minutes] is the mean net power in W of unix minute m, for
	// the minutes in (last-minutes, last]; none where no reading came.
	power    [minutes]int32
	last     int64 // the newest unix minute written; 0 = none
	sum      int64 // of the readings in minute last
	n        int32
	dayStart int64                      // unix ns of the local day the hours belong to
	dayEnd   int64                      // unix ns of the next day's start
	daySince int64                      // unix ns of the first reading counted in that day
	hours    [maxHours][numRegs]uint32  // per hour since dayStart, in thousandths of each register's unit
	reg      [numRegs]register          // the last reading of each register, for the next difference
	captured [numRegs - firstMBus]int64 // unix ns of the M-Bus readings in reg
}

// The registers whose increase is counted per hour: the electricity
// meter's, then one M-Bus device of each kind (the first on the bus), each
// in thousandths of its unit (Wh, litres, thousandths of a GJ).
const (
	rTaken = iota
	rInjected
	rGas
	rWater
	rHeat
	numRegs
	firstMBus = rGas
)

// mbusKinds are the device kinds of the M-Bus registers, from firstMBus on.
var mbusKinds = [numRegs - firstMBus]parser.MBusKind{parser.KindGas, parser.KindWater, parser.KindHeat}

// register is a meter register's last value, kept to count the next
// reading's increase.
type register struct {
	milli int64 // value × 1000: Wh of a kWh register, litres of an m³ one
	ok    bool
	meter string
}

// New returns a Store for the named gateways whose days are local days of
// loc. Readings of other gateways are ignored.
func New(loc *time.Location, gateways []string) *Store {
	s := &Store{loc: loc, gws: make(map[string]*series, len(gateways))}
	for _, g := range gateways {
		s.gws[g] = &series{}
	}
	return s
}

// Observe records the telegram that became gateway's p1 point at time at:
// its net power for at's minute, and the increase of its taken and injected
// registers and of its gas meter for the hour they fall in. It keeps nothing
// of t. It has the signature of ingest.Observer.
func (s *Store) Observe(gateway string, at time.Time, t *parser.Telegram) {
	r := reading{at: at}
	if d, ok := t.Get(parser.PowerNet); ok {
		r.netW, r.hasNet = d.Float64(), true
	} else if tk, ok := t.Get(parser.PowerTaken); ok {
		if inj, ok := t.Get(parser.PowerInjected); ok {
			r.netW, r.hasNet = tk.Float64()-inj.Float64(), true
		}
	}
	for i, f := range []parser.Field{parser.Taken, parser.Injected} {
		if d, ok := t.Get(f); ok {
			r.reg[i], r.has[i], r.meter[i] = milli(d), true, t.MeterID
		}
	}
	for k, kind := range mbusKinds {
		i := firstMBus + k
		for j := range t.MBus {
			if m := &t.MBus[j]; m.Kind == kind && m.HasValue && !m.Time.IsZero() {
				r.reg[i], r.has[i], r.meter[i], r.captured[k] = milli(m.Value), true, m.ID, m.Time
				break
			}
		}
	}
	s.add(gateway, r)
}

func milli(d parser.Decimal) int64 { return int64(math.Round(d.Float64() * 1000)) }

// reading is what Observe takes from a telegram.
type reading struct {
	at       time.Time
	netW     float64
	hasNet   bool
	reg      [numRegs]int64
	has      [numRegs]bool
	meter    [numRegs][]byte                // the meter or M-Bus device id; only read during add
	captured [numRegs - firstMBus]time.Time // the M-Bus devices' capture times
}

func (s *Store) add(gateway string, r reading) {
	sr := s.gws[gateway]
	if sr == nil {
		return
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	at := r.at.UnixNano()
	if sr.first == 0 {
		sr.first = at
	}
	prevAt := sr.lastAt
	sr.lastAt = max(sr.lastAt, at)
	if r.hasNet {
		sr.addPower(r.at.Unix()/60, r.netW)
	}
	for i := range numRegs {
		if !r.has[i] {
			continue
		}
		when := r.at
		if i >= firstMBus {
			// An M-Bus device counts at its capture time, and only a new
			// capture.
			k := i - firstMBus
			c := r.captured[k]
			if c.UnixNano() <= sr.captured[k] {
				continue
			}
			when, sr.captured[k] = c, c.UnixNano()
			if when.After(r.at) {
				// A meter clock ahead of ours: an hour that has not begun
				// (or a day) must not receive the gas.
				when = r.at
			}
		}
		prev := sr.reg[i]
		sameMeter := prev.ok && prev.meter == string(r.meter[i]) // compared without allocating
		sr.reg[i].milli, sr.reg[i].ok = r.reg[i], true
		if !sameMeter {
			sr.reg[i].meter = string(r.meter[i])
		}
		// A register that goes down or a changed meter starts afresh:
		// the rollup's rule (a new segment), without its summing, since
		// the hours only need the increase.
		if !sameMeter || r.reg[i] < prev.milli {
			continue
		}
		sr.addEnergy(s.loc, when, prevAt, i, r.reg[i]-prev.milli)
	}
}

// addPower adds a reading of w watts to unix minute m.
func (sr *series) addPower(m int64, w float64) {
	switch {
	case m < sr.last:
		return // the clock went back: a minute that is already summed up
	case m > sr.last:
		// The minutes between had no reading; at most the whole ring is cleared.
		for k := max(sr.last+1, m-int64(minutes)+1); k < m; k++ {
			sr.power[k%int64(minutes)] = none
		}
		sr.last, sr.sum, sr.n = m, 0, 0
	}
	sr.sum += int64(math.Round(w))
	sr.n++
	sr.power[m%int64(minutes)] = int32(max(min(sr.sum/int64(sr.n), math.MaxInt32), math.MinInt32+1))
}

// addEnergy counts an increase inc of register i, seen at when, in its local
// hour; prevAt is the reading before, which the increase counts from.
func (sr *series) addEnergy(loc *time.Location, when time.Time, prevAt int64, i int, inc int64) {
	w := when.UnixNano()
	switch {
	case w < sr.dayStart:
		return // a late reading of a day that is over
	case w >= sr.dayEnd:
		// The first increase of the day counts from the reading before it:
		// from midnight when that one was yesterday's (the few seconds
		// across midnight go to the first hour).
		day := calendar.DayStart(when, loc).UnixNano()
		sr.dayStart, sr.dayEnd = day, calendar.NextDay(when, loc).UnixNano()
		sr.daySince, sr.hours = max(prevAt, day), [maxHours][numRegs]uint32{}
	}
	day := sr.dayStart
	h := min(int((w-day)/int64(time.Hour)), maxHours-1)
	sr.hours[h][i] = uint32(min(int64(sr.hours[h][i])+inc, math.MaxUint32))
}

// Power is the net power history of one gateway: one value per minute from
// Start, oldest first, nil where no reading came.
type Power struct {
	Start time.Time
	NetW  []*int32
}

// Hour is the energy of one hour of the local day.
type Hour struct {
	Start       time.Time
	TakenKWh    float64
	InjectedKWh float64
	GasM3       float64
	WaterM3     float64
	Heat        float64 // in the heat meter's unit (GJ on DSMR meters)
}

// Series is a snapshot of one gateway's history.
type Series struct {
	// Since is the first reading the store saw: the history shows nothing
	// before it (the daemon started then). Zero when there is none yet.
	Since time.Time
	Power Power
	// Today lists the hours of the local day that contains now, from its
	// midnight up to now's hour; TodaySince is the first reading counted in
	// them, later than midnight when the store began during the day.
	Today      []Hour
	TodaySince time.Time
}

// Get returns gateway's history at now, and false for a gateway the
// store does not know.
func (s *Store) Get(gateway string, now time.Time) (Series, bool) {
	sr := s.gws[gateway]
	if sr == nil {
		return Series{}, false
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	var out Series
	if sr.first != 0 {
		out.Since = time.Unix(0, sr.first)
	}
	nowMin := now.Unix() / 60
	startMin := nowMin - int64(minutes) + 1
	out.Power.Start = time.Unix(startMin*60, 0)
	out.Power.NetW = make([]*int32, minutes)
	vals := make([]int32, minutes) // one allocation for every value
	for k := range minutes {
		m := startMin + int64(k)
		if sr.last == 0 || m > sr.last || m <= sr.last-int64(minutes) {
			continue
		}
		if v := sr.power[m%int64(minutes)]; v != none {
			vals[k] = v
			out.Power.NetW[k] = &vals[k]
		}
	}
	day := calendar.DayStart(now, s.loc)
	if sr.dayStart != day.UnixNano() {
		return out, true // nothing counted today yet
	}
	out.TodaySince = time.Unix(0, sr.daySince)
	n := min(int(now.Sub(day)/time.Hour)+1, maxHours)
	out.Today = make([]Hour, n)
	for h := range n {
		c := sr.hours[h]
		out.Today[h] = Hour{Start: day.Add(time.Duration(h) * time.Hour),
			TakenKWh: float64(c[rTaken]) / 1000, InjectedKWh: float64(c[rInjected]) / 1000,
			GasM3: float64(c[rGas]) / 1000, WaterM3: float64(c[rWater]) / 1000, Heat: float64(c[rHeat]) / 1000}
	}
	return out, true
}
