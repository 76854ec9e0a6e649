package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// MeterConfig describes one simulated meter. The zero value is a Belgian
// three-phase meter named "p1sim" in Europe/Brussels.
type MeterConfig struct {
	Profile Profile // default ProfileBE3
	// Name and Index derive the meter's equipment ids and its random
	// stream: meters with the same Name and different Index (below one
	// million) always have distinct ids. Default name "p1sim".
	Name  string
	Index int
	Seed  uint64         // with Name and Index, fixes every random choice
	Loc   *time.Location // time zone of the meter clock and tariffs; nil means Europe/Brussels
	// SolarKWp is the peak power of the household's solar panels. Zero
	// lets the seed decide (about half the households have some);
	// negative means none.
	SolarKWp float64
	Water    bool // Belgian profiles: a water meter on M-Bus channel 2
	// StateFile, when set, keeps the registers across restarts: read by
	// NewMeter, written after every Render (state.go).
	StateFile string
}

// Meter is a simulated smart meter. Its registers grow by integrating its
// power over the time between renders, so the same sequence of Render times
// always yields the same telegrams. A Meter is not safe for concurrent use.
type Meter struct {
	cfg  MeterConfig
	lay  layout
	loc  *time.Location
	rng  *rand.Rand
	seed uint64 // for the stateless pieces (fridge cycle, daily weather)

	header            string
	id, idHex         string
	gasID, gasHex     string
	waterID, waterHex string

	started  bool
	stateErr error     // of the last saveState
	last     time.Time // meter time of the last render, whole seconds
	seq      uint64

	// Registers in Wh, index 0 for tariff 1; remainders in joules.
	taken, injected     [2]int64
	takenRem, injRem    int64
	gasL, waterL        int64 // litres (= 0.001 m3, the printed resolution)
	gasRem, waterRem    int64 // litre-seconds per hour
	gasCapL, waterCapL  int64
	gasCapAt, waterCapT time.Time
	gasAfter, waterOff  time.Duration

	// Demand (Belgian capacity tariff).
	qStart     time.Time // current quarter-hour
	qFrom      time.Time // when observation of it began (a meter may start mid-quarter)
	qJ         int64     // joules taken in it so far
	monthStart time.Time
	monthMaxW  int64
	monthMaxAt time.Time
	peaks      []parser.MonthPeak // replaced, never modified, when a month closes
	peaksLine  []byte             // rendered 0-0:98.1.0 line, rebuilt with peaks

	// DSMR 5 statistics; constant after the start.
	failures, longFailures int
	failLog                []parser.PowerFailure
	failLine               []byte
	sags, swells           [3]int

	model model
	now   state // what the last telegram showed; holds until the next step
}

// state is the instantaneous part of a telegram. Powers are in W, already
// rounded to the profile's display resolution, so that the energy added is
// exactly the power shown times the time it was shown for.
type state struct {
	takenW, injW     int64
	phTaken, phInj   [3]int64
	deciV            [3]int64
	centiA           [3]int64
	gasLph, waterLph int64 // litres per hour
}

var (
	brusselsOnce sync.Once
	brussels     *time.Location
	brusselsErr  error
)

// defaultLocation loads Europe/Brussels once: a Location holds its whole
// transition table, and thousands of meters should share one.
func defaultLocation() (*time.Location, error) {
	brusselsOnce.Do(func() {
		brussels, brusselsErr = time.LoadLocation("Europe/Brussels")
	})
	return brussels, brusselsErr
}

// NewMeter returns a meter that starts counting at its first Render. It fails
// for an unknown profile, when Europe/Brussels is needed and the system
// has no time zone database (import time/tzdata in main), and for a
// StateFile that cannot be read or is damaged.
func NewMeter(cfg MeterConfig) (*Meter, error) {
	if cfg.Profile == "" {
		cfg.Profile = ProfileBE3
	}
	if _, err := ParseProfile(string(cfg.Profile)); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "p1sim"
	}
	if cfg.Index < 0 {
		return nil, errors.New("sim: negative meter index")
	}
	if cfg.Loc == nil {
		loc, err := defaultLocation()
		if err != nil {
			return nil, fmt.Errorf("sim: default meter location: %w", err)
		}
		cfg.Loc = loc
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.Name))
	nameHash := h.Sum64()
	// The serial keeps the index in its low six digits, so that meters of
	// one name never share an id.
	serial := nameHash%10_000*1_000_000 + uint64(cfg.Index%1_000_000)
	h.Write([]byte(cfg.Profile))
	seed := cfg.Seed ^ h.Sum64()*0x9E3779B97F4A7C15 ^ uint64(cfg.Index)*0xBF58476D1CE4E5B9
	m := &Meter{
		cfg:  cfg,
		lay:  cfg.Profile.layout(),
		loc:  cfg.Loc,
		rng:  rand.New(rand.NewPCG(cfg.Seed, seed)),
		seed: seed,
	}
	m.identify(serial)
	m.model.init(m)
	m.initRegisters()
	if cfg.StateFile != "" {
		if err := m.loadState(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// identify sets the header and the equipment ids, in each profile's style.
func (m *Meter) identify(serial uint64) {
	d10 := fmt.Sprintf("%010d", serial)
	d12 := fmt.Sprintf("%012d", serial)
	switch m.cfg.Profile {
	case ProfileBE3, ProfileBE1:
		m.header = `FLU5\253769484_A`
		m.id = "1SAG3" + d10[1:]
		if m.cfg.Profile == ProfileBE1 {
			m.header = `FLU5\253770234_A`
			m.id = "1SAG1" + d10[1:]
		}
		m.gasID = "7FLO" + d10
		if m.cfg.Water {
			m.waterID = "8SET" + d10
		}
	case ProfileNL5:
		m.header = `ISK5\2M550T-1011`
		m.id = "E0034" + d12
		m.gasID = "G0039" + d12
	case ProfileNL22:
		m.header = "KMP5 KA6U" + d12
		m.id = "KA6U" + d12
		m.gasID = "2810154" + d10
	}
	m.idHex = hexText(m.id)
	m.gasHex = hexText(m.gasID)
	m.waterHex = hexText(m.waterID)
}

func hexText(s string) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 0, 2*len(s))
	for i := range len(s) {
		b = append(b, digits[s[i]>>4], digits[s[i]&15])
	}
	return string(b)
}

// initRegisters picks the meter's history: how long it has been counting
// and how much the household uses.
func (m *Meter) initRegisters() {
	r := m.rng
	years := 0.3 + 6*r.Float64()
	yearly := 2500 + 3000*r.Float64() // kWh
	m.taken[0] = int64(yearly * years * (0.5 + 0.1*r.Float64()) * 1000)
	m.taken[1] = int64(yearly*years*1000) - m.taken[0]
	if pv := m.model.kWp; pv > 0 {
		m.injected[0] = int64(pv * 950 * years * 0.35 * 1000)
		m.injected[1] = int64(pv * 950 * years * 0.25 * 1000)
	}
	m.gasL = int64((600 + 1400*r.Float64()) * years * 1000)
	if m.cfg.Water {
		m.waterL = int64((40 + 80*r.Float64()) * years * 1000)
	}
	if m.lay.belgian {
		m.gasAfter = time.Duration(r.IntN(10)) * time.Second
	} else {
		m.gasAfter = time.Duration(m.lay.gasAfter) * time.Second
	}
	m.waterOff = time.Duration(10+r.IntN(50)) * time.Second
	if m.cfg.Profile == ProfileNL5 {
		m.longFailures = r.IntN(8)
		m.failures = m.longFailures + r.IntN(15)
		for i := range m.sags {
			m.sags[i] = r.IntN(6)
			m.swells[i] = r.IntN(3)
		}
	}
}

// ID returns the meter's equipment identifier as text (0-0:96.1.1 decoded).
func (m *Meter) ID() string { return m.id }

// Profile returns the meter's profile.
func (m *Meter) Profile() Profile { return m.cfg.Profile }

// Location returns the time zone of the meter's clock.
func (m *Meter) Location() *time.Location { return m.loc }

// Render advances the meter to now and returns the telegram it sends at that
// moment, with the values it carries. The meter clock is now truncated to
// the second. The first Render starts the meter; a later one integrates the
// power shown in the previous telegram over the seconds in between (so an
// energy register grows by exactly power × time, to the Wh), splitting at
// quarter hours and tariff changes; over a long gap the load is re-drawn
// every minute (every 15 minutes past 6 hours). A now before the previous
// render leaves the registers as they are. Gaps beyond two years are only
// integrated for their last two years.
func (m *Meter) Render(now time.Time) Sent {
	var s Sent
	m.advance(now)
	m.seq++
	s.Seq = m.seq
	s.At = now
	s.FlipAt = -1
	s.Frame = m.appendTelegram(make([]byte, 0, 1200), &s.Reading)
	s.Written = len(s.Frame)
	if m.cfg.StateFile != "" {
		// Kept to be reported by whoever renders (Server logs it once).
		m.stateErr = m.saveState()
	}
	return s
}

const (
	quarter = 15 * time.Minute
	maxGap  = 2 * 366 * 24 * time.Hour
)

// advance moves the meter clock to now, integrating step by step.
func (m *Meter) advance(now time.Time) {
	t := now.Truncate(time.Second)
	if !m.started {
		m.start(t)
		return
	}
	if !t.After(m.last) {
		if t.Before(m.last) {
			m.rewind(t)
		}
		return
	}
	if t.Sub(m.last) > maxGap {
		m.rewind(t.Add(-maxGap))
	}
	maxStep := time.Minute
	if t.Sub(m.last) > 6*time.Hour {
		maxStep = quarter
	}
	evaluated := m.last
	for m.last.Before(t) {
		// Step to the next of: now, a quarter-hour, a capture, or the time
		// the household is due to be re-drawn.
		next := t
		if due := evaluated.Add(maxStep); due.Before(next) {
			next = due
		}
		qEnd := m.qStart.Add(quarter)
		if qEnd.Before(next) {
			next = qEnd
		}
		gasNext := nextCapture(m.last, time.Duration(m.lay.gasEvery)*time.Second, m.gasAfter)
		if gasNext.Before(next) {
			next = gasNext
		}
		waterNext := nextCapture(m.last, 5*time.Minute, m.waterOff)
		if m.cfg.Water && waterNext.Before(next) {
			next = waterNext
		}
		m.integrate(int64(next.Sub(m.last)/time.Second), m.tariffAt(m.last))
		m.last = next
		if next.Equal(qEnd) {
			m.closeQuarter(next)
		}
		if next.Equal(gasNext) {
			m.gasCapL, m.gasCapAt = m.gasL, next
		}
		if next.Equal(waterNext) {
			m.waterCapL, m.waterCapT = m.waterL, next
		}
		if next.Before(t) && next.Sub(evaluated) >= maxStep {
			m.model.evaluate(m, next, next.Sub(evaluated))
			evaluated = next
		}
	}
	m.model.evaluate(m, t, t.Sub(evaluated))
}

// nextCapture returns the first capture time after t for captures every
// period, stamped after past the period boundary.
func nextCapture(t time.Time, period, after time.Duration) time.Time {
	c := t.Truncate(period).Add(after)
	for !c.After(t) {
		c = c.Add(period)
	}
	return c
}

// lastCapture returns the latest capture time at or before t.
func lastCapture(t time.Time, period, after time.Duration) time.Time {
	return nextCapture(t, period, after).Add(-period)
}

// integrate adds dt seconds of the current state to the registers.
func (m *Meter) integrate(dt int64, tariff int) {
	if dt <= 0 {
		return
	}
	ti := tariff - 1
	m.takenRem += m.now.takenW * dt
	m.taken[ti] += m.takenRem / 3600
	m.takenRem %= 3600
	m.injRem += m.now.injW * dt
	m.injected[ti] += m.injRem / 3600
	m.injRem %= 3600
	m.qJ += m.now.takenW * dt
	m.gasRem += m.now.gasLph * dt
	m.gasL += m.gasRem / 3600
	m.gasRem %= 3600
	m.waterRem += m.now.waterLph * dt
	m.waterL += m.waterRem / 3600
	m.waterRem %= 3600
}

// start sets the meter up at its first render.
func (m *Meter) start(t time.Time) {
	m.started = true
	m.last = t
	m.qStart = t.Truncate(quarter)
	m.qFrom = t
	m.monthStart = m.monthOf(t)
	m.initPeaks(t)
	m.initFailures(t)
	gasEvery := time.Duration(m.lay.gasEvery) * time.Second
	m.gasCapL, m.gasCapAt = m.gasL, lastCapture(t, gasEvery, m.gasAfter)
	m.waterCapL, m.waterCapT = m.waterL, lastCapture(t, 5*time.Minute, m.waterOff)
	m.model.evaluate(m, t, 0)
}

// rewind handles a clock that went back (or a gap too long to integrate):
// registers keep their values and counting resumes from t.
func (m *Meter) rewind(t time.Time) {
	m.last = t
	m.qStart = t.Truncate(quarter)
	m.qFrom = t
	m.qJ = 0
	if ms := m.monthOf(t); !ms.Equal(m.monthStart) {
		m.monthStart = ms
		m.monthMaxW, m.monthMaxAt = 0, ms
	}
	gasEvery := time.Duration(m.lay.gasEvery) * time.Second
	if m.gasCapAt.After(t) {
		m.gasCapAt = lastCapture(t, gasEvery, m.gasAfter)
	}
	if m.waterCapT.After(t) {
		m.waterCapT = lastCapture(t, 5*time.Minute, m.waterOff)
	}
}

// monthOf returns the local start of t's month.
func (m *Meter) monthOf(t time.Time) time.Time {
	y, mo, _ := t.In(m.loc).Date()
	return time.Date(y, mo, 1, 0, 0, 0, 0, m.loc)
}

// tariffAt returns the tariff in force at t: Belgium counts weekdays
// 07:00–22:00 as peak (1), the Netherlands weekdays 07:00–23:00 as normal
// (2). Public holidays are not modelled.
func (m *Meter) tariffAt(t time.Time) int {
	lt := t.In(m.loc)
	h := lt.Hour()
	weekday := lt.Weekday() != time.Saturday && lt.Weekday() != time.Sunday
	if m.lay.belgian {
		if weekday && h >= 7 && h < 22 {
			return 1
		}
		return 2
	}
	if weekday && h >= 7 && h < 23 {
		return 2
	}
	return 1
}

// closeQuarter ends the quarter-hour at end: its average demand may become
// the month's peak, and a new month moves the peak into the history.
func (m *Meter) closeQuarter(end time.Time) {
	if secs := int64(end.Sub(m.qFrom) / time.Second); secs > 0 {
		if avg := m.qJ / secs; avg > m.monthMaxW {
			m.monthMaxW, m.monthMaxAt = avg, m.qStart
		}
	}
	m.qStart, m.qFrom, m.qJ = end, end, 0
	if ms := m.monthOf(end); !ms.Equal(m.monthStart) {
		p := parser.MonthPeak{Month: m.monthStart, Value: parser.Decimal{Int: m.monthMaxW}}
		if m.monthMaxW > 0 {
			p.At = m.monthMaxAt
		}
		m.setPeaks(append(append([]parser.MonthPeak(nil), m.peaks...), p))
		m.monthStart = ms
		m.monthMaxW, m.monthMaxAt = 0, ms
	}
}

// currentDemand is 1-0:1.4.0: the average power taken since the current
// quarter-hour began.
func (m *Meter) currentDemand() int64 {
	secs := int64(m.last.Sub(m.qFrom) / time.Second)
	if secs <= 0 {
		return 0
	}
	return m.qJ / secs
}

// maxPeaks is the longest history a Belgian meter keeps.
const maxPeaks = 13

// initPeaks invents the months before the first render: a history of
// monthly peaks, the oldest month empty when the meter was installed then,
// and a peak so far in the current month.
func (m *Meter) initPeaks(t time.Time) {
	if !m.lay.belgian {
		return
	}
	r := m.rng
	n := 2 + r.IntN(maxPeaks-1)
	var ps []parser.MonthPeak
	for i := n; i >= 1; i-- {
		month := m.monthStart.AddDate(0, -i, 0)
		p := parser.MonthPeak{Month: month}
		if i < maxPeaks && i == n {
			// The meter was installed during this month and has no peak yet.
			ps = append(ps, p)
			continue
		}
		p.At, p.Value = m.randomPeak(month, month.AddDate(0, 1, 0))
		ps = append(ps, p)
	}
	m.setPeaks(ps)
	m.monthMaxW, m.monthMaxAt = 0, m.monthStart
	if m.qStart.Sub(m.monthStart) >= quarter {
		at, v := m.randomPeak(m.monthStart, m.qStart)
		m.monthMaxAt, m.monthMaxW = at, v.Int
	}
}

// randomPeak returns the start of a quarter-hour in [from, to) and a
// plausible peak demand in W.
func (m *Meter) randomPeak(from, to time.Time) (time.Time, parser.Decimal) {
	quarters := int64(to.Sub(from) / quarter)
	at := from.Add(time.Duration(m.rng.Int64N(max(quarters, 1))) * quarter)
	return at, parser.Decimal{Int: 1800 + m.rng.Int64N(4500)}
}

// setPeaks installs a new history (at most 13 months) and its line.
func (m *Meter) setPeaks(ps []parser.MonthPeak) {
	if len(ps) > maxPeaks {
		ps = ps[len(ps)-maxPeaks:]
	}
	m.peaks = ps
	b := append(m.peaksLine[:0:0], "0-0:98.1.0("...)
	b = appendInt(b, int64(len(ps)), 1)
	b = append(b, ")(1-0:1.6.0)(1-0:1.6.0)"...)
	for _, p := range ps {
		b = append(b, '(')
		b = m.appendTime(b, p.Month.AddDate(0, 1, 0))
		b = append(b, ")("...)
		if p.At.IsZero() {
			b = append(b, "632525252525W"...)
		} else {
			b = m.appendTime(b, p.At)
		}
		b = append(b, ")("...)
		b = appendFixed(b, p.Value.Int, 2, 3)
		b = append(b, "*kW)"...)
	}
	m.peaksLine = append(b, "\r\n"...)
}

// initFailures invents the DSMR 5 long power failure log.
func (m *Meter) initFailures(t time.Time) {
	if m.cfg.Profile != ProfileNL5 {
		return
	}
	n := min(m.longFailures, 10)
	log := make([]parser.PowerFailure, n)
	end := t
	for i := n - 1; i >= 0; i-- {
		end = end.Add(-time.Duration(1+m.rng.IntN(120*24)) * time.Hour).Truncate(time.Second)
		log[i] = parser.PowerFailure{End: end, Duration: time.Duration(180+m.rng.IntN(20000)) * time.Second}
	}
	m.failLog = log
	b := []byte("1-0:99.97.0(")
	b = appendInt(b, int64(n), 1)
	b = append(b, ")(0-0:96.7.19)"...)
	for _, f := range log {
		b = append(b, '(')
		b = m.appendTime(b, f.End)
		b = append(b, ")("...)
		b = appendInt(b, int64(f.Duration/time.Second), 10)
		b = append(b, "*s)"...)
	}
	m.failLine = append(b, "\r\n"...)
}
