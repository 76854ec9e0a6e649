package rollup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/internal/lineproto"
	"github.com/p1logger/p1logger/parser"
)

func TestMain(m *testing.M) { os.Exit(influxtest.Main(m)) }

// influxWriter is the PointWriter the daemon's ingest writer stands for:
// line protocol, nanoseconds, into the test's bucket.
type influxWriter struct {
	srv    *influxtest.Server
	bucket string
}

func (w influxWriter) WriteLines(ctx context.Context, lines []byte) error {
	return w.srv.WriteLines(ctx, w.bucket, lines)
}

// TestQuerier, set by dialects_test.go (package rollup_test, which may
// import internal/influx where this package may not), returns
// internal/influx's Querier for bucket at url in lang (flux, influxql or
// auto).
var TestQuerier func(tb testing.TB, url, bucket, lang string) Querier

// testQueriers returns the Flux and the InfluxQL Querier of bucket on srv.
func testQueriers(tb testing.TB, srv *influxtest.Server, bucket string) (flux, influxQL Querier) {
	return TestQuerier(tb, srv.URL(), bucket, "flux"), TestQuerier(tb, srv.URL(), bucket, "influxql")
}

// countingQuerier asks every question in both languages, fails the test
// where the answers differ, and answers with InfluxQL's: every scenario
// recovered through it is recovered identically by either. It remembers
// the questions asked. Without ql it asks Flux only.
type countingQuerier struct {
	flux, ql Querier
	t        testing.TB
	mu       sync.Mutex
	queries  []string
	checked  int // answers compared that had entries
}

func (q *countingQuerier) note(method string, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queries = append(q.queries, method)
	if n > 0 {
		q.checked++
	}
}

// both asks a question in both languages and fails the test where the
// answers differ. A test that writes while a worker runs can change the
// data between the two; so a difference is asked again, twice, and only one
// that persists fails.
func both[T any](q *countingQuerier, method string, sel Select, ask func(Querier) ([]T, error)) ([]T, error) {
	var msg string
	if q.ql == nil {
		a, err := ask(q.flux)
		q.note(method, len(a))
		return a, err
	}
	for range 3 {
		a, errA := ask(q.flux)
		b, errB := ask(q.ql)
		ja, jb := normalTimes(a), normalTimes(b)
		switch {
		case (errA != nil) != (errB != nil):
			msg = fmt.Sprintf("%s %v: flux error %v, influxql error %v", method, sel.Gateways, errA, errB)
		case ja != jb:
			msg = fmt.Sprintf("%s %v [%s, %s): flux and influxql differ:\nflux     %s\ninfluxql %s", method, sel.Gateways,
				sel.Start.Format(time.RFC3339), sel.Stop.Format(time.RFC3339), ja, jb)
		default:
			q.note(method, len(b))
			return b, errB
		}
	}
	q.t.Error(msg)
	return nil, errors.New(msg)
}

// normalTimes prints times as Unix nanoseconds, so that equal instants in
// other locations compare equal.
func normalTimes[T any](list []T) string {
	var b strings.Builder
	for _, x := range list {
		fmt.Fprintf(&b, "%+v\n", x)
	}
	return timeRE.ReplaceAllStringFunc(b.String(), func(s string) string {
		t, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", s)
		if err != nil {
			return s
		}
		return strconv.FormatInt(t.UnixNano(), 10)
	})
}

var timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} [A-Z]+`)

func (q *countingQuerier) Summary(ctx context.Context, sel Select) ([]SeriesSummary, error) {
	return both(q, "Summary", sel, func(x Querier) ([]SeriesSummary, error) { return x.Summary(ctx, sel) })
}

func (q *countingQuerier) Drops(ctx context.Context, sel Select) ([]Drop, error) {
	return both(q, "Drops", sel, func(x Querier) ([]Drop, error) { return x.Drops(ctx, sel) })
}

func (q *countingQuerier) Runs(ctx context.Context, sel Select) ([]Run, error) {
	return both(q, "Runs", sel, func(x Querier) ([]Run, error) { return x.Runs(ctx, sel) })
}

func (q *countingQuerier) Last(ctx context.Context, sel Select) ([]Reading, error) {
	return both(q, "Last", sel, func(x Querier) ([]Reading, error) { return x.Last(ctx, sel) })
}

func (q *countingQuerier) ran(method string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, s := range q.queries {
		if s == method {
			n++
		}
	}
	return n
}

// influxEnv is one test's InfluxDB bucket and a clock for its workers.
type influxEnv struct {
	t      *testing.T
	srv    *influxtest.Server
	bucket string
	q      *countingQuerier
	clock  *fakeClock
	loc    *time.Location
}

func newInfluxEnv(t *testing.T, loc *time.Location) *influxEnv {
	t.Helper()
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	flux, ql := testQueriers(t, srv, bucket)
	q := &countingQuerier{flux: flux, ql: ql, t: t}
	t.Cleanup(func() { t.Logf("%d answers with entries alike in Flux and InfluxQL", q.checked) })
	return &influxEnv{t: t, srv: srv, bucket: bucket, q: q, clock: &fakeClock{}, loc: loc}
}

func (e *influxEnv) worker(now time.Time, gws ...string) *Worker {
	e.t.Helper()
	e.clock.set(now)
	w, err := New(Config{Location: e.loc, Interval: 20 * time.Millisecond, Bucket: e.bucket, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn})), Gateways: gws},
		influxWriter{e.srv, e.bucket}, e.q)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// seed writes hist as the ingest would: p1 points at the readings' times
// and the gas device's p1_mbus points at its capture times.
func (e *influxEnv) seed(gw string, hist []reading) {
	e.t.Helper()
	e.seedTB(e.t, gw, hist)
}

func (e *influxEnv) seedTB(t testing.TB, gw string, hist []reading) {
	t.Helper()
	var b lineproto.Builder
	var text []byte
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.srv.WriteLines(ctx, e.bucket, b.Buf); err != nil {
			t.Fatal(err)
		}
		b.Reset()
	}
	for _, r := range hist {
		b.Measurement("p1")
		b.Tag("gateway", gw)
		b.Tag("meter_id", r.meter)
		for f := range field(numP1Fields) {
			if v, ok := r.vals[f]; ok {
				text = v.AppendText(text[:0])
				b.FieldDecimalText(fieldNames[f], text)
			}
		}
		b.FieldFloat("power_taken_w", 321)
		b.End(r.at)
		if v, ok := r.vals[fGas]; ok {
			b.Measurement("p1_mbus")
			b.Tag("channel", "1")
			b.Tag("gateway", gw)
			b.Tag("kind", "gas")
			b.Tag("meter_id", r.gasMeter)
			b.Tag("unit", "m3")
			text = v.AppendText(text[:0])
			b.FieldDecimalText("value", text)
			b.End(r.gasAt)
		}
		if b.Len() > 1<<20 {
			flush()
		}
	}
	if b.Len() > 0 {
		flush()
	}
}

func (e *influxEnv) writeRaw(lines string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.srv.WriteLines(ctx, e.bucket, []byte(lines)); err != nil {
		e.t.Fatal(err)
	}
}

// energy reads every p1_energy point back with Flux, values printed as the
// shortest text of the stored float.
func (e *influxEnv) energy() map[pointKey]map[string]string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := e.srv.Flux(ctx, fmt.Sprintf(`from(bucket: %q)
  |> range(start: 1970-01-01T00:00:00Z, stop: 2100-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "p1_energy")`, e.bucket))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[pointKey]map[string]string{}
	for _, r := range rows {
		k := pointKey{gw: r["gateway"].(string), period: r["period"].(string), at: r["_time"].(time.Time).UnixNano()}
		if out[k] == nil {
			out[k] = map[string]string{}
		}
		out[k][r["_field"].(string)] = strconv.FormatFloat(r["_value"].(float64), 'f', -1, 64)
	}
	return out
}

// want is the reference value of every field of gw's point for p.
func want(hist []reading, p period) map[string]string {
	out := map[string]string{}
	for f := range numFields {
		if v, ok := reference(hist, f, p); ok {
			out[fieldNames[f]] = v.String()
		}
	}
	return out
}

// checkEnergy compares the stored point of gw for p with the rule.
func (e *influxEnv) checkEnergy(got map[pointKey]map[string]string, gw string, hist []reading, p period) {
	e.t.Helper()
	w := want(hist, p)
	g, ok := got[pointKey{gw, p.kind.String(), p.start.UnixNano()}]
	switch {
	case len(w) == 0 && ok:
		e.t.Errorf("%s %s: point %v stored, want none", gw, p, g)
	case len(w) > 0 && !equalFields(g, w):
		e.t.Errorf("%s %s:\n got %v\nwant %v", gw, p, g, w)
	}
}

func between(hist []reading, from, to time.Time) []reading {
	var out []reading
	for _, r := range hist {
		if !r.at.Before(from) && r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

func findAt(t *testing.T, hist []reading, at time.Time) reading {
	t.Helper()
	for _, r := range hist {
		if r.at.Equal(at) {
			return r
		}
	}
	t.Fatalf("no reading at %s", at)
	return reading{}
}

// TestRecoverSeededHistory seeds a month of p1 history with decoys around
// it, starts a worker on Brussels' 23-hour day that has observed nothing,
// and reads the p1_energy points back with Flux.
func TestRecoverSeededHistory(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	e := newInfluxEnv(t, loc)
	now := local(loc, 2026, 3, 29, 15, 0)
	m := &meter{id: "1SAG1100000292", gasID: "G4", t1: 123_456_789, t2: 98_765_432, i1: 5_000, withGas: true}
	hist := m.readings(local(loc, 2026, 2, 20, 0, 0), now.Add(-time.Minute), 10*time.Minute, loc)
	// Yesterday's last reading one second before midnight; the one at
	// March's first instant stays: it belongs to March, not February.
	mid := local(loc, 2026, 3, 29, 0, 0)
	for i := range hist {
		if hist[i].at.Equal(mid) {
			hist[i].at = mid.Add(-time.Second)
		}
	}
	e.seed("home", hist)
	// Decoys: another gateway with later readings on both sides of the
	// boundaries, a home point with no energy register just before
	// midnight, a water meter, and stale p1_energy values to overwrite.
	n := &meter{id: "OTHER", gasID: "GX", t1: 900_000_000, withGas: true}
	e.seed("neighbour", n.readings(local(loc, 2026, 2, 27, 0, 0), now, 7*time.Minute, loc))
	e.writeRaw(fmt.Sprintf("p1,gateway=neighbour,meter_id=OTHER taken_kwh=1 %d\n", mid.Add(-100*time.Millisecond).UnixNano()) +
		fmt.Sprintf("p1,gateway=home,meter_id=1SAG1100000292 power_taken_w=5 %d\n", mid.Add(-time.Millisecond).UnixNano()) +
		fmt.Sprintf("p1_mbus,channel=2,gateway=home,kind=water,meter_id=W,unit=m3 value=0.001 %d\n", now.Add(-time.Hour).UnixNano()) +
		fmt.Sprintf("p1_energy,gateway=home,period=day taken_kwh=999,gas_m3=999 %d\n", mid.UnixNano()))

	w := e.worker(now, "home", "nobody")
	w.tick(context.Background(), true)
	got := e.energy()

	day := periodOf(day, now, loc)
	mon := periodOf(month, now, loc)
	for _, p := range []period{day, mon, day.previous(loc), mon.previous(loc)} {
		e.checkEnergy(got, "home", hist, p)
	}
	// By hand: the 14:50 reading minus the one a second before midnight.
	last := findAt(t, hist, local(loc, 2026, 3, 29, 14, 50))
	base := findAt(t, hist, mid.Add(-time.Second))
	wantDay := normal(mustSub(last.vals[fTaken], base.vals[fTaken])).String()
	if g := got[pointKey{"home", "day", mid.UnixNano()}]["taken_kwh"]; g != wantDay {
		t.Errorf("day taken_kwh = %s, want %s", g, wantDay)
	}
	for k := range got {
		if k.gw != "home" {
			t.Errorf("point for %s written", k.gw)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d points, want 4 (day, month, previous day, previous month): %v", len(got), got)
	}
	if n := e.q.ran("Runs") + e.q.ran("Drops"); n != 0 {
		t.Errorf("the runs or drops query ran %d times for a history without meter changes or resets", n)
	}
}

// TestRestartContinues stops a worker mid-day and starts a new one: the
// numbers go on where they were, before and after new readings arrive.
func TestRestartContinues(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	e := newInfluxEnv(t, loc)
	m := &meter{id: "E1", gasID: "G1", t1: 5_000_000, t2: 6_000_000, withGas: true}
	start := local(loc, 2026, 10, 23, 18, 0)
	hist := m.readings(start, local(loc, 2026, 10, 25, 13, 0), 30*time.Second, loc)
	restartAt := local(loc, 2026, 10, 25, 11, 0)
	e.seed("home", between(hist, start, local(loc, 2026, 10, 25, 9, 0)))

	// Worker A runs from 09:00 to 11:00, live readings observed and
	// written to InfluxDB as the ingest does.
	a := e.worker(local(loc, 2026, 10, 25, 9, 0), "home")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	live := between(hist, local(loc, 2026, 10, 25, 9, 0), restartAt)
	for i, r := range live {
		a.Observe("home", r.at, r.telegram())
		if i%60 == 59 || i == len(live)-1 {
			e.seed("home", live[i-i%60:i+1])
			e.clock.set(r.at)
			time.Sleep(5 * time.Millisecond)
		}
	}
	seen := between(hist, start, restartAt)
	d := periodOf(day, restartAt, loc)
	mo := periodOf(month, restartAt, loc)
	// Wait (bounded) for A's points to catch up with the last reading.
	wantDay := want(seen, d)
	deadline := time.Now().Add(20 * time.Second)
	for !equalFields(e.energy()[pointKey{"home", "day", d.start.UnixNano()}], wantDay) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	before := e.energy()
	e.checkEnergy(before, "home", seen, d)
	e.checkEnergy(before, "home", seen, mo)

	// Worker B starts at 11:00:30 with nothing observed: same numbers.
	b := e.worker(restartAt.Add(30*time.Second), "home")
	b.tick(context.Background(), true)
	after := e.energy()
	for _, p := range []period{d, mo} {
		k := pointKey{"home", p.kind.String(), p.start.UnixNano()}
		if !equalFields(before[k], after[k]) {
			t.Errorf("%s after restart:\n got %v\nwant %v", p, after[k], before[k])
		}
	}
	// And it goes on with new readings.
	more := between(hist, restartAt, local(loc, 2026, 10, 25, 13, 0))
	for _, r := range more {
		b.Observe("home", r.at, r.telegram())
	}
	e.clock.set(local(loc, 2026, 10, 25, 13, 0))
	b.tick(context.Background(), true)
	final := e.energy()
	all := append(append([]reading{}, seen...), more...)
	e.checkEnergy(final, "home", all, d)
	e.checkEnergy(final, "home", all, mo)
	if got := final[pointKey{"home", "day", d.start.UnixNano()}]["taken_kwh"]; got == before[pointKey{"home", "day", d.start.UnixNano()}]["taken_kwh"] {
		t.Errorf("day did not grow after new readings: %s", got)
	}
}

// TestStartAfterMidnight: a worker started 40 s into the day books
// yesterday's final value exactly, from InfluxDB alone.
func TestStartAfterMidnight(t *testing.T) {
	loc := mustLoad(t, "Asia/Kathmandu")
	e := newInfluxEnv(t, loc)
	m := &meter{id: "E1", t1: 1_000, t2: 2_000}
	mid := local(loc, 2026, 7, 1, 0, 0) // also a month boundary
	hist := m.readings(local(loc, 2026, 6, 29, 0, 0).Add(7*time.Second), mid.Add(30*time.Second), 5*time.Second, loc)
	e.seed("home", hist)
	w := e.worker(mid.Add(40*time.Second), "home")
	w.tick(context.Background(), true)
	got := e.energy()
	for _, p := range []period{periodOf(day, mid, loc), periodOf(month, mid, loc),
		periodOf(day, mid.Add(-time.Second), loc), periodOf(month, mid.Add(-time.Second), loc)} {
		e.checkEnergy(got, "home", hist, p)
	}
	last := findAt(t, hist, mid.Add(-3*time.Second)) // 23:59:57, the last before midnight
	prev := findAt(t, hist, local(loc, 2026, 6, 30, 0, 0).Add(-3*time.Second))
	want := normal(mustSub(last.vals[fTaken], prev.vals[fTaken])).String()
	if g := got[pointKey{"home", "day", local(loc, 2026, 6, 30, 0, 0).UnixNano()}]["taken_kwh"]; g != want {
		t.Errorf("yesterday = %s, want %s", g, want)
	}
}

// TestMonthBeganWhileDown: the logger was down from 28 March to 2 April.
// The new worker finds the baseline of the day and of April 40 days back,
// in a zone with a quarter-hour offset, and books the night and the month
// start from it.
func TestMonthBeganWhileDown(t *testing.T) {
	loc := mustLoad(t, "Asia/Kathmandu")
	e := newInfluxEnv(t, loc)
	m := &meter{id: "E1", gasID: "G1", t1: 10_000_000, t2: 20_000_000, withGas: true}
	old := m.readings(local(loc, 2026, 2, 25, 0, 0), local(loc, 2026, 3, 28, 12, 0), 15*time.Minute, loc)
	e.seed("home", old)
	now := local(loc, 2026, 4, 2, 10, 0)
	fresh := m.readings(now, now.Add(20*time.Minute), time.Minute, loc)
	hist := append(append([]reading{}, old...), fresh...)
	w := e.worker(now, "home")
	for _, r := range fresh {
		w.Observe("home", r.at, r.telegram())
	}
	e.clock.set(now.Add(20 * time.Minute))
	w.tick(context.Background(), true)
	got := e.energy()
	for _, p := range []period{periodOf(day, now, loc), periodOf(month, now, loc), periodOf(month, local(loc, 2026, 3, 5, 0, 0), loc)} {
		e.checkEnergy(got, "home", hist, p)
	}
	if _, ok := got[pointKey{"home", "day", local(loc, 2026, 4, 1, 0, 0).UnixNano()}]; ok {
		t.Error("point for 1 April, a day without readings")
	}
	day := got[pointKey{"home", "day", local(loc, 2026, 4, 2, 0, 0).UnixNano()}]
	mon := got[pointKey{"home", "month", local(loc, 2026, 4, 1, 0, 0).UnixNano()}]
	if !equalFields(day, mon) || day["taken_kwh"] == "" {
		t.Errorf("day %v and month %v should both run from the 28 March baseline", day, mon)
	}
	// The baseline is the 28 March 12:00 reading, five days old.
	lastOld, lastNew := old[len(old)-1], fresh[len(fresh)-1]
	if want := normal(mustSub(lastNew.vals[fTaken], lastOld.vals[fTaken])).String(); day["taken_kwh"] != want {
		t.Errorf("day taken_kwh = %s, want %s", day["taken_kwh"], want)
	}
}

// TestRecoverMeterChanges seeds a day with a register reset, a meter swap,
// a meter_id that flips back (series that overlap in time, so the runs
// query is needed), a gas meter swap, and a second gas device on a higher
// channel as a decoy.
// meterChangeHistory seeds e with a day of meter swaps on the 25-hour
// day of 2026-10-25 in Brussels: a reset, a gas meter swapped, an
// electricity meter swapped and back (series that overlap in time), and a
// second gas channel. It returns the history and the time to recover at.
func meterChangeHistory(t *testing.T, e *influxEnv, loc *time.Location) ([]reading, time.Time) {
	at := func(h, m int) time.Time { return local(loc, 2026, 10, 25, h, m) }
	r := func(at time.Time, meter, taken, t2, gasMeter, gas string) reading {
		rd := reading{at: at, meter: meter, vals: map[field]parser.Decimal{fTaken: dec(t, taken), fTakenT2: dec(t, t2)}}
		if gas != "" {
			rd.vals[fGas], rd.gasMeter, rd.gasAt = dec(t, gas), gasMeter, at.Add(-time.Minute)
		}
		return rd
	}
	hist := []reading{
		r(local(loc, 2026, 10, 24, 23, 59), "A", "1000.001", "500", "G1", "300.5"),
		r(at(1, 0), "A", "1001.001", "500.5", "G1", "300.75"),
		r(at(2, 0), "A", "1001.5", "500.6", "G1", "301"),
		r(at(2, 30), "A", "0.125", "0.1", "G1", "301.25"), // reset
		r(at(3, 0), "A", "1.125", "0.6", "G2", "0.5"),     // gas meter swapped
		r(at(4, 0), "B", "7000", "3000", "G2", "1.5"),     // electricity meter swapped
		r(at(5, 0), "B", "7002.25", "3001", "G2", "2"),
		r(at(6, 0), "A", "1.5", "0.7", "G2", "2.5"), // … and back: A's series overlaps B's
		r(at(7, 0), "A", "1.75", "0.8", "G2", "3"),
		r(at(8, 0), "B", "7003", "3001.5", "G2", "3.5"),
	}
	e.seed("home", hist)
	e.writeRaw(fmt.Sprintf("p1_mbus,channel=3,gateway=home,kind=gas,meter_id=G9,unit=m3 value=77 %d\n", at(1, 0).UnixNano()) +
		fmt.Sprintf("p1_mbus,channel=3,gateway=home,kind=gas,meter_id=G9,unit=m3 value=99 %d\n", at(7, 0).UnixNano()))
	return hist, at(9, 0)
}

func TestRecoverMeterChanges(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	e := newInfluxEnv(t, loc)
	hist, now := meterChangeHistory(t, e, loc)
	w := e.worker(now, "home")
	w.tick(context.Background(), true)
	got := e.energy()
	d := periodOf(day, now, loc)
	e.checkEnergy(got, "home", hist, d)
	e.checkEnergy(got, "home", hist, periodOf(month, now, loc))
	// taken: (1001.5−1000.001) + (1.125−0.125) + (7002.25−7000) + (1.75−1.5) + 0 = 4.999
	// t2:    (500.6−500) + (0.6−0.1) + (3001−3000) + (0.8−0.7) = 2.2
	// gas:   (301.25−300.5) + (3.5−0.5) = 3.75
	wantDay := map[string]string{"taken_kwh": "4.999", "taken_t2_kwh": "2.2", "gas_m3": "3.75"}
	if g := got[pointKey{"home", "day", d.start.UnixNano()}]; !equalFields(g, wantDay) {
		t.Errorf("day = %v, want %v", g, wantDay)
	}
	if e.q.ran("Runs") == 0 {
		t.Error("the runs query did not run for overlapping meter series")
	}
}

// TestRecoverReset: registers that go down without a meter change are
// found by the drops query, in electricity and gas, in a month that began
// while the logger was down.
func TestRecoverReset(t *testing.T) {
	loc := mustLoad(t, "America/Santiago")
	e := newInfluxEnv(t, loc)
	at := func(d, h int) time.Time { return local(loc, 2026, 9, d, h, 0) }
	r := func(at time.Time, taken, inj, gas string) reading {
		return reading{at: at, meter: "M", gasMeter: "G", gasAt: at.Add(-5 * time.Minute),
			vals: map[field]parser.Decimal{fTaken: dec(t, taken), fInjected: dec(t, inj), fGas: dec(t, gas)}}
	}
	hist := []reading{
		r(local(loc, 2026, 8, 30, 12, 0), "100", "7", "40"),
		r(at(6, 2), "104", "7.5", "41"), // the day that starts at 01:00
		r(at(6, 3), "105.5", "7.5", "0.25"),
		r(at(6, 4), "0.5", "8", "0.5"),
		r(at(6, 5), "0.75", "8", "0.75"),
		r(at(6, 6), "0.25", "8.25", "1"),
		r(at(6, 7), "1.25", "8.5", "1.5"),
	}
	e.seed("home", hist)
	w := e.worker(at(6, 8), "home")
	w.tick(context.Background(), true)
	got := e.energy()
	d := periodOf(day, at(6, 8), loc)
	if want := local(loc, 2026, 9, 6, 1, 0); !d.start.Equal(want) {
		t.Fatalf("day starts %s, want %s", d.start, want)
	}
	for _, p := range []period{d, periodOf(month, at(6, 8), loc), periodOf(month, local(loc, 2026, 8, 30, 0, 0), loc)} {
		e.checkEnergy(got, "home", hist, p)
	}
	// taken: (105.5−100) + (0.75−0.5) + (1.25−0.25) = 6.75; gas: (41−40) + (1.5−0.25) = 2.25
	wantDay := map[string]string{"taken_kwh": "6.75", "injected_kwh": "1.5", "gas_m3": "2.25"}
	if g := got[pointKey{"home", "day", d.start.UnixNano()}]; !equalFields(g, wantDay) {
		t.Errorf("day = %v, want %v", g, wantDay)
	}
	if e.q.ran("Drops") == 0 {
		t.Error("the drops query did not run")
	}
	if e.q.ran("Runs") != 0 {
		t.Error("the runs query ran without a meter change")
	}
}

// TestRecoverRandom seeds random histories (resets, meter swaps and flips,
// silences, gas swaps) in several zones, starts a worker at a random moment
// and compares the four periods it writes with the rule.
func TestRecoverRandom(t *testing.T) {
	zones := []string{"Europe/Brussels", "America/Santiago", "Asia/Kathmandu", "Australia/Lord_Howe"}
	rng := rand.New(rand.NewPCG(99, 1))
	for iter, z := range zones {
		loc := mustLoad(t, z)
		e := newInfluxEnv(t, loc)
		start := time.Date(2026, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), 0, 0, 0, loc)
		var hist []reading
		at := start
		taken, inj := int64(rng.IntN(1e9)), int64(rng.IntN(1e6))
		meters := []string{"A", "B", "C"}
		meterID := "A"
		gas, gasID, gasAt := int64(rng.IntN(1e6)), "G", time.Time{}
		for at.Before(start.Add(75 * time.Hour)) {
			switch r := rng.IntN(300); {
			case r == 0:
				at = at.Add(time.Duration(rng.IntN(900)) * time.Minute)
			case r == 1:
				taken = int64(rng.IntN(1000))
			case r == 2:
				meterID = meters[rng.IntN(len(meters))]
			}
			at = at.Add(time.Duration(10+rng.IntN(110)) * time.Second)
			taken += int64(rng.IntN(90))
			inj += int64(rng.IntN(5))
			if c := at.Truncate(5 * time.Minute); !c.Equal(gasAt) {
				gasAt = c
				gas += int64(rng.IntN(30))
				if rng.IntN(100) == 0 {
					gasID += "'"
					gas = int64(rng.IntN(100))
				}
			}
			hist = append(hist, reading{at: at, meter: meterID, vals: map[field]parser.Decimal{
				fTaken: {Int: taken, Scale: 3}, fInjected: {Int: inj, Scale: 7}, fGas: {Int: gas, Scale: 3},
			}, gasAt: gasAt, gasMeter: gasID})
		}
		now := start.Add(time.Duration(40+rng.IntN(30)) * time.Hour)
		seen := between(hist, start, now)
		e.seed("gw", seen)
		w := e.worker(now, "gw")
		w.tick(context.Background(), true)
		got := e.energy()
		for _, k := range []kind{day, month} {
			p := periodOf(k, now, loc)
			e.checkEnergy(got, "gw", seen, p)
			e.checkEnergy(got, "gw", seen, p.previous(loc))
		}
		if t.Failed() {
			t.Fatalf("iter %d (%s, now %s) failed", iter, z, now)
		}
	}
}

// noFluxProxy stands in front of the real InfluxDB as InfluxDB 3 would: no
// /api/v2/query (404), and /ping saying version (none: as it is). It
// counts the requests per path.
func noFluxProxy(t *testing.T, target string, version string) (*httptest.Server, func(path string) int) {
	var mu sync.Mutex
	seen := map[string]int{}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/api/v2/query") {
			http.Error(w, `{"error": "404 page not found"}`, http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("proxy: read request: %v", err)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			t.Errorf("proxy: %v", err)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := tr.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		if r.URL.Path == "/ping" && version != "" {
			w.Header().Set("X-Influxdb-Version", version)
			w.Header().Set("X-Influxdb-Build", "Core")
		}
		w.WriteHeader(resp.StatusCode)
		if _, err := io.Copy(w, resp.Body); err != nil {
			t.Logf("proxy: copy answer of %s: %v", r.URL.Path, err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[path]
	}
}

// TestRecoverWithoutFlux: behind a proxy that refuses Flux as InfluxDB 3
// does, P1_INFLUX_QUERY=auto finds InfluxQL and recovers the meter swaps of
// TestRecoverMeterChanges to the same values as Flux on the server itself;
// with /ping saying nothing (a 1.8 without flux-enabled) as well as saying
// version 3.
func TestRecoverWithoutFlux(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	e := newInfluxEnv(t, loc)
	hist, now := meterChangeHistory(t, e, loc)
	d, m := periodOf(day, now, loc), periodOf(month, now, loc)

	recover := func(q Querier) map[pointKey]map[string]string {
		rec := &recorder{}
		w, err := New(Config{Location: loc, Bucket: e.bucket, Now: func() time.Time { return now }, Gateways: []string{"home"},
			Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}, rec, q)
		if err != nil {
			t.Fatal(err)
		}
		w.tick(context.Background(), true)
		out := map[pointKey]map[string]string{}
		for k, p := range rec.points(t) {
			out[k] = p.fields
		}
		return out
	}
	want := recover(TestQuerier(t, e.srv.URL(), e.bucket, "flux"))
	if len(want[pointKey{"home", "day", d.start.UnixNano()}]) == 0 || len(want[pointKey{"home", "month", m.start.UnixNano()}]) == 0 {
		t.Fatalf("flux recovered %v", want)
	}
	for _, version := range []string{"3.0.3", ""} {
		proxy, seen := noFluxProxy(t, e.srv.URL(), version)
		got := recover(TestQuerier(t, proxy.URL, e.bucket, "auto"))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("version %q: auto behind the proxy recovered\n%v\nwant (flux)\n%v", version, got, want)
		}
		for _, p := range []period{d, m} {
			ref := map[string]string{}
			for f := range numFields {
				if v, ok := reference(hist, f, p); ok {
					ref[fieldNames[f]] = normal(v).String()
				}
			}
			if g := got[pointKey{"home", p.kind.String(), p.start.UnixNano()}]; !equalFields(g, ref) {
				t.Errorf("version %q: %s = %v, want %v", version, p, g, ref)
			}
		}
		if seen("/query") == 0 || seen("/ping") != 1 {
			t.Errorf("version %q: %d InfluxQL requests, %d pings; want some and one", version, seen("/query"), seen("/ping"))
		}
		if n := seen("/api/v2/query"); (version != "" && n != 0) || (version == "" && n != 1) {
			t.Errorf("version %q: %d Flux requests; want none for version 3, one probe otherwise", version, n)
		}
	}
}

// TestGatewayNamesAreQuoted: names with quotes, backslashes and "${" go
// into Flux as literals, not code.
func TestGatewayNamesAreQuoted(t *testing.T) {
	loc := mustLoad(t, "UTC")
	e := newInfluxEnv(t, loc)
	now := utc("2026-05-05T12:00:00Z")
	// Each name's pattern must match only itself: the decoys (recovered
	// too, with other values) must not leak into it.
	names := []string{`we"ird ${x}\gw`, "a/b", "gw.1", "gwX1", `g+w(1)|[x]^$`, "pre", "prefix", "x", "über meter"}
	for i, gw := range names {
		hist := []reading{
			{at: utc("2026-05-04T23:00:00Z"), meter: "M", vals: map[field]parser.Decimal{fTaken: {Int: 10_000 * int64(i+1), Scale: 3}}},
			{at: utc("2026-05-05T11:00:00Z"), meter: "M", vals: map[field]parser.Decimal{fTaken: {Int: 10_000*int64(i+1) + 500*int64(i+1), Scale: 3}}},
		}
		e.seed(gw, hist)
	}
	w := e.worker(now, names...)
	w.tick(context.Background(), true)
	got := e.energy()
	for i, gw := range names {
		want := parser.Decimal{Int: 500 * int64(i+1), Scale: 3}
		if g := got[pointKey{gw, "day", utc("2026-05-05T00:00:00Z").UnixNano()}]; g["taken_kwh"] != normal(want).String() {
			t.Errorf("day for %q = %v, want taken_kwh %s", gw, g, normal(want))
		}
	}
}

// BenchmarkRecoverMonth measures the start-up recovery of a month of
// 5-second readings (about 535,000 p1 points) for one gateway: the case the
// queries were written for. Seeding takes a while; run it on its own:
//
//	go test -run '^$' -bench RecoverMonth -benchtime 3x ./rollup/
//
// With -short (as CI runs every benchmark) it seeds two days of 1-minute
// readings, recovers them once and skips the timing loop: each recovery is
// several queries, too slow for 100 iterations in CI.
func BenchmarkRecoverMonth(b *testing.B) {
	loc := mustLoad(b, "Europe/Brussels")
	srv := influxtest.Shared(b)
	bucket := srv.NewBucket(b)
	m := &meter{id: "E1", gasID: "G1", t1: 1_000_000, t2: 2_000_000, withGas: true}
	now := local(loc, 2026, 3, 31, 23, 0)
	e := &influxEnv{srv: srv, bucket: bucket}
	from, step := local(loc, 2026, 2, 27, 0, 0), 5*time.Second
	if testing.Short() {
		from, step = local(loc, 2026, 3, 30, 0, 0), time.Minute
	}
	for day := from; day.Before(now); day = day.Add(24 * time.Hour) {
		to := day.Add(24*time.Hour - step)
		if to.After(now) {
			to = now
		}
		e.seedTB(b, "home", m.readings(day, to, step, loc))
	}
	flux, ql := testQueriers(b, srv, bucket)
	for _, d := range []struct {
		name string
		q    Querier
	}{{"flux", flux}, {"influxql", ql}} {
		b.Run(d.name, func(b *testing.B) {
			clock := &fakeClock{t: now}
			recoverOnce := func() {
				w, err := New(Config{Location: loc, Bucket: bucket, Now: clock.Now, Gateways: []string{"home"}},
					influxWriter{srv, bucket}, d.q)
				if err != nil {
					b.Fatal(err)
				}
				w.tick(context.Background(), true)
			}
			if testing.Short() {
				recoverOnce()
				b.Skip("-short: recovered once; run without -short for the timing")
			}
			for b.Loop() {
				recoverOnce()
			}
		})
	}
}

// BenchmarkColdStart1000 measures a cold start (no local state) of 1,000
// gateways with a month of history: every gateway's day and month, and
// yesterday and last month, recovered from InfluxDB, in Flux and in
// InfluxQL. The history is coarse (a reading every two hours, with gas) so
// that seeding stays within a minute; the queries' cost follows the number
// of series and the scan, not the step, as long as both are the same for
// both languages. Run it on its own:
//
//	go test -run '^$' -bench ColdStart1000 -benchtime 1x ./rollup/
func BenchmarkColdStart1000(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: seeding 1,000 gateways takes a minute")
	}
	loc := mustLoad(b, "Europe/Brussels")
	srv := influxtest.Shared(b)
	bucket := srv.NewBucket(b)
	e := &influxEnv{srv: srv, bucket: bucket}
	now := local(loc, 2026, 3, 31, 12, 0)
	gws := gatewayNames(1000)
	t0 := time.Now()
	for i, gw := range gws {
		m := &meter{id: fmt.Sprintf("1SAG%010d", i), gasID: fmt.Sprintf("G%06d", i), t1: 1_000_000 + int64(i), t2: 2_000_000, withGas: true}
		e.seedTB(b, gw, m.readings(local(loc, 2026, 2, 27, 0, 0), now.Add(-time.Hour), 2*time.Hour, loc))
	}
	b.Logf("seeded 1,000 gateways in %s", time.Since(t0).Round(time.Second))
	flux, ql := testQueriers(b, srv, bucket)
	for _, d := range []struct {
		name string
		q    Querier
	}{{"flux", flux}, {"influxql", ql}} {
		b.Run(d.name, func(b *testing.B) {
			for b.Loop() {
				q := &stubCounter{q: d.q}
				w, err := New(Config{Location: loc, Bucket: bucket, Now: func() time.Time { return now }, Gateways: gws},
					&recorder{}, q)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < 20 && !w.allRecovered(); i++ {
					w.tick(context.Background(), true)
				}
				if !w.allRecovered() {
					b.Fatal("not recovered after 20 rollups")
				}
				b.ReportMetric(float64(q.n.Load()), "questions")
			}
		})
	}
}

// stubCounter counts the questions asked of q.
type stubCounter struct {
	q Querier
	n atomic.Int64
}

func (c *stubCounter) Summary(ctx context.Context, sel Select) ([]SeriesSummary, error) {
	c.n.Add(1)
	return c.q.Summary(ctx, sel)
}

func (c *stubCounter) Drops(ctx context.Context, sel Select) ([]Drop, error) {
	c.n.Add(1)
	return c.q.Drops(ctx, sel)
}

func (c *stubCounter) Runs(ctx context.Context, sel Select) ([]Run, error) {
	c.n.Add(1)
	return c.q.Runs(ctx, sel)
}

func (c *stubCounter) Last(ctx context.Context, sel Select) ([]Reading, error) {
	c.n.Add(1)
	return c.q.Last(ctx, sel)
}

// allRecovered reports whether every tracked gateway-period is recovered.
func (w *Worker) allRecovered() bool {
	for _, tp := range w.tracked {
		for _, gp := range tp.gws {
			if !gp.recovered {
				return false
			}
		}
	}
	return len(w.tracked) > 0
}
