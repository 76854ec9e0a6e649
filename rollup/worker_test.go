package rollup

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/answerlimit"
	"github.com/p1logger/p1logger/parser"
)

// local returns the instant of a wall-clock time in loc.
func local(loc *time.Location, y int, m time.Month, d, h, mi int) time.Time {
	return time.Date(y, m, d, h, mi, 0, 0, loc)
}

func (h *harness) point(gw string, k kind, start time.Time) (map[string]string, bool) {
	h.t.Helper()
	p, ok := h.rec.points(h.t)[pointKey{gw, k.String(), start.UnixNano()}]
	return p.fields, ok
}

// expect checks selected fields of a written point.
func (h *harness) expect(gw string, k kind, start time.Time, want map[string]string) {
	h.t.Helper()
	got, ok := h.point(gw, k, start)
	if !ok {
		h.t.Errorf("%s %s %s: no point, want %v", gw, k, start.UTC(), want)
		return
	}
	for f, v := range want {
		if got[f] != v {
			h.t.Errorf("%s %s %s: %s = %q, want %q (all: %v)", gw, k, start.UTC(), f, got[f], v, got)
		}
	}
}

// TestWorkerCalendar runs a household through the days and months the
// calendar makes hard, with a reading every 5 minutes and a rollup every
// minute, and checks every point against the rule and, for the day in the
// middle, against the energy of its real length.
func TestWorkerCalendar(t *testing.T) {
	tests := []struct {
		name  string
		zone  string
		y     int
		m     time.Month
		d     int
		hours int // length of the middle day
	}{
		{"brussels 23h day", "Europe/Brussels", 2026, 3, 29, 23},
		{"brussels 25h day", "Europe/Brussels", 2026, 10, 25, 25},
		{"brussels month end", "Europe/Brussels", 2026, 4, 30, 24},
		{"brussels year end", "Europe/Brussels", 2026, 12, 31, 24},
		{"leap day", "Europe/Brussels", 2028, 2, 29, 24},
		{"kathmandu", "Asia/Kathmandu", 2026, 6, 30, 24},
		{"santiago skips midnight", "America/Santiago", 2026, 9, 6, 23},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			from := local(loc, tt.y, tt.m, tt.d-1, 20, 0)
			to := local(loc, tt.y, tt.m, tt.d+1, 2, 0)
			m := &meter{id: "E0001", gasID: "G0001", t1: 1_000_000, t2: 2_000_000, withGas: true}
			hist := m.readings(from, to, 5*time.Minute, loc)
			h := newHarness(t, loc, from, "home")
			h.play("home", hist, to.Add(time.Minute), time.Minute)

			mid := periodOf(day, local(loc, tt.y, tt.m, tt.d, 12, 0), loc)
			if got := mid.end.Sub(mid.start); got != time.Duration(tt.hours)*time.Hour {
				t.Fatalf("middle day is %v long, want %dh", got, tt.hours)
			}
			for _, p := range []period{mid.previous(loc), mid, periodOf(day, mid.end, loc),
				periodOf(month, from, loc), periodOf(month, to, loc)} {
				h.check("home", hist, p)
			}
			// 102 Wh and one gas step (7 dm³) every 5 minutes, 4 hours of 64 Wh injected.
			steps := int64(tt.hours * 12)
			h.expect("home", day, mid.start, map[string]string{
				"taken_kwh":       normal(parser.Decimal{Int: steps * 102, Scale: 3}).String(),
				"injected_kwh":    "3.072",
				"injected_t1_kwh": "3.072",
				"injected_t2_kwh": "0",
				"gas_m3":          normal(parser.Decimal{Int: steps * 7, Scale: 3}).String(),
			})
		})
	}
}

// TestWorkerPointShape checks the exact line the worker writes.
func TestWorkerPointShape(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	h := newHarness(t, loc, local(loc, 2026, 3, 29, 10, 0), "home", "idle")
	for _, r := range []struct {
		at time.Time
		v  string
	}{
		{local(loc, 2026, 3, 28, 12, 0), "99"},
		{local(loc, 2026, 3, 28, 23, 58), "100.000"},
		{local(loc, 2026, 3, 29, 0, 58), "100.5"},
		{local(loc, 2026, 3, 29, 9, 58), "134.444"},
	} {
		tg := &parser.Telegram{MeterID: []byte("E1")}
		tg.Set(parser.Taken, dec(t, r.v))
		h.w.Observe("home", r.at, tg)
	}
	h.tick(local(loc, 2026, 3, 29, 10, 0))
	h.rec.mu.Lock()
	got := string(h.rec.writes[len(h.rec.writes)-1])
	h.rec.mu.Unlock()
	// 2026-03-01 00:00 CET = 2026-02-28T23:00Z, 2026-03-28 00:00 CET =
	// 2026-03-27T23:00Z, 2026-03-29 00:00 CET = 2026-03-28T23:00Z. The
	// previous day is written too; February has no reading, so no point.
	want := "p1_energy,gateway=home,period=month taken_kwh=35.444 1772319600000000000\n" +
		"p1_energy,gateway=home,period=day taken_kwh=1 1774652400000000000\n" +
		"p1_energy,gateway=home,period=day taken_kwh=34.444 1774738800000000000\n"
	if got != want {
		t.Errorf("wrote\n%s\nwant\n%s", got, want)
	}
}

func TestWorkerResetAndMeterChange(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	at := func(h, m int) time.Time { return local(loc, 2026, 5, 12, h, m) }
	r := func(at time.Time, meter, taken, t1 string) reading {
		return reading{at: at, meter: meter, vals: map[field]parser.Decimal{fTaken: dec(t, taken), fTakenT1: dec(t, t1)}}
	}
	hist := []reading{
		r(local(loc, 2026, 5, 11, 23, 59), "A", "1000.000", "600.000"),
		r(at(6, 0), "A", "1002.000", "601.000"),
		r(at(7, 0), "A", "0.250", "0.250"), // reset: both registers restart
		r(at(8, 0), "A", "1.250", "1.000"),
		r(at(9, 0), "B", "5000.000", "4000.000"), // meter replaced, new meter starts high
		r(at(10, 0), "B", "5000.500", "4000.100"),
		r(at(11, 0), "B", "4999.000", "4000.200"), // only taken resets
		r(at(12, 0), "B", "4999.125", "4000.300"),
	}
	h := newHarness(t, loc, hist[0].at, "home")
	h.play("home", hist, at(12, 1), time.Minute)
	d := periodOf(day, at(12, 0), loc)
	// taken: (1002−1000) + (1.25−0.25) + (5000.5−5000) + (4999.125−4999) = 3.625
	// t1:    (601−600) + (1−0.25) + (4000.3−4000) = 2.05
	h.expect("home", day, d.start, map[string]string{"taken_kwh": "3.625", "taken_t1_kwh": "2.05"})
	h.check("home", hist, d)
	h.check("home", hist, periodOf(month, at(12, 0), loc))
}

// TestWorkerGapAcrossMidnight: the gateway is silent from 23:00 to 02:00
// while the worker runs. Yesterday closes at its 23:00 reading; the night's
// energy goes to today, whose baseline is that 23:00 reading.
func TestWorkerGapAcrossMidnight(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	r := func(at time.Time, taken string) reading {
		return reading{at: at, meter: "A", vals: map[field]parser.Decimal{fTaken: dec(t, taken)}}
	}
	hist := []reading{
		r(local(loc, 2026, 10, 24, 0, 30), "500.000"),
		r(local(loc, 2026, 10, 24, 22, 0), "510.000"),
		r(local(loc, 2026, 10, 24, 23, 0), "511.111"),
		r(local(loc, 2026, 10, 25, 2, 0), "514.000"), // the 25-hour day
		r(local(loc, 2026, 10, 25, 9, 0), "520.500"),
	}
	h := newHarness(t, loc, hist[0].at, "home")
	h.play("home", hist, local(loc, 2026, 10, 25, 9, 1), time.Minute)
	h.expect("home", day, local(loc, 2026, 10, 24, 0, 0), map[string]string{"taken_kwh": "11.111"})
	h.expect("home", day, local(loc, 2026, 10, 25, 0, 0), map[string]string{"taken_kwh": "9.389"})
	h.expect("home", month, local(loc, 2026, 10, 1, 0, 0), map[string]string{"taken_kwh": "20.5"})
}

// TestWorkerLateReading: the 23:59:59 reading reaches the worker only
// after the first rollup of the new day. It still closes yesterday and
// becomes today's baseline.
func TestWorkerLateReading(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	obs := func(h *harness, at time.Time, taken string) {
		tg := &parser.Telegram{MeterID: []byte("A")}
		tg.Set(parser.Taken, dec(t, taken))
		h.w.Observe("home", at, tg)
	}
	h := newHarness(t, loc, local(loc, 2026, 3, 28, 12, 0), "home")
	obs(h, local(loc, 2026, 3, 28, 12, 0), "100")
	h.tick(local(loc, 2026, 3, 28, 12, 0))
	obs(h, local(loc, 2026, 3, 28, 23, 59), "110")
	h.tick(local(loc, 2026, 3, 28, 23, 59).Add(30 * time.Second))
	mid := local(loc, 2026, 3, 29, 0, 0)
	obs(h, mid.Add(-time.Second), "110.5") // stamped 23:59:59 …
	h.tick(mid.Add(time.Second))           // … but not yet delivered
	obs(h, mid.Add(4*time.Second), "110.6")
	h.tick(mid.Add(time.Minute))
	h.expect("home", day, local(loc, 2026, 3, 28, 0, 0), map[string]string{"taken_kwh": "10.5"})
	h.expect("home", day, mid, map[string]string{"taken_kwh": "0.1"})
	h.expect("home", month, local(loc, 2026, 3, 1, 0, 0), map[string]string{"taken_kwh": "10.6"})
}

// TestWorkerGatewaysWithoutReadings: a configured gateway that never sends
// gets no point; a gateway Observe reports but config does not is rolled up.
func TestWorkerGatewaysWithoutReadings(t *testing.T) {
	loc := mustLoad(t, "UTC")
	now := utc("2026-07-01T12:00:00Z")
	h := newHarness(t, loc, now, "silent", "home")
	tg := &parser.Telegram{}
	tg.Set(parser.Taken, dec(t, "5"))
	h.w.Observe("extra", now.Add(-time.Hour), tg)
	tg.Set(parser.Taken, dec(t, "6.5"))
	h.w.Observe("extra", now, tg)
	h.tick(now)
	pts := h.rec.points(t)
	for k := range pts {
		if k.gw != "extra" {
			t.Errorf("point for %s written", k.gw)
		}
	}
	h.expect("extra", day, utc("2026-07-01T00:00:00Z"), map[string]string{"taken_kwh": "1.5"})
	if len(pts) != 2 {
		t.Errorf("%d points, want 2", len(pts))
	}
}

// TestObserveCopies: the caller reuses its Telegram after Observe.
func TestObserveCopies(t *testing.T) {
	loc := mustLoad(t, "UTC")
	now := utc("2026-07-01T12:00:00Z")
	h := newHarness(t, loc, now, "home")
	tg := &parser.Telegram{MeterID: []byte("M1"), MBus: []parser.MBus{
		{Channel: 2, Kind: parser.KindGas, ID: []byte("G2"), Value: dec(t, "50"), HasValue: true, Time: now.Add(-2 * time.Hour)},
		{Channel: 1, Kind: parser.KindGas, ID: []byte("G1"), Value: dec(t, "10"), HasValue: true, Time: now.Add(-2 * time.Hour)},
		{Channel: 3, Kind: parser.KindWater, Value: dec(t, "99"), HasValue: true, Time: now.Add(-time.Hour)},
	}}
	tg.Set(parser.Taken, dec(t, "1"))
	h.w.Observe("home", now.Add(-2*time.Hour), tg)
	tg.Set(parser.Taken, dec(t, "3"))
	tg.MBus[1].Value, tg.MBus[1].Time = dec(t, "10.25"), now.Add(-time.Hour)
	h.w.Observe("home", now.Add(-time.Hour), tg)
	// Reuse: scribble over everything.
	tg.Set(parser.Taken, dec(t, "1000"))
	copy(tg.MeterID, "XX")
	copy(tg.MBus[1].ID, "XX")
	tg.MBus[1].Value = dec(t, "2000")
	h.tick(now)
	h.expect("home", day, utc("2026-07-01T00:00:00Z"), map[string]string{"taken_kwh": "2", "gas_m3": "0.25"})
}

// TestWorkerQueryFailure: without recovery no point is written (a wrong
// one would overwrite the right one); once InfluxDB answers, points come.
// A period that begins while the worker watches continues from what it saw.
func TestWorkerQueryFailure(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	h := newHarness(t, loc, local(loc, 2026, 3, 28, 22, 0), "home")
	h.q.setErr(errors.New("connection refused"))
	obs := func(at time.Time, taken string) {
		tg := &parser.Telegram{}
		tg.Set(parser.Taken, dec(t, taken))
		h.w.Observe("home", at, tg)
	}
	obs(local(loc, 2026, 3, 28, 22, 0), "10")
	h.tick(local(loc, 2026, 3, 28, 22, 0))
	if n := len(h.rec.points(t)); n != 0 {
		t.Fatalf("%d points written without recovery", n)
	}
	h.q.setErr(nil)
	obs(local(loc, 2026, 3, 28, 23, 0), "11")
	h.tick(local(loc, 2026, 3, 28, 23, 0))
	h.expect("home", day, local(loc, 2026, 3, 28, 0, 0), map[string]string{"taken_kwh": "1"})

	h.q.setErr(errors.New("timeout"))
	obs(local(loc, 2026, 3, 29, 1, 0), "12.5")
	h.tick(local(loc, 2026, 3, 29, 1, 0))
	h.expect("home", day, local(loc, 2026, 3, 29, 0, 0), map[string]string{"taken_kwh": "1.5"})
	h.expect("home", day, local(loc, 2026, 3, 28, 0, 0), map[string]string{"taken_kwh": "1"})
}

// TestWorkerWriteFailure: failed writes are retried at the next interval.
func TestWorkerWriteFailure(t *testing.T) {
	loc := mustLoad(t, "UTC")
	h := newHarness(t, loc, utc("2026-01-31T23:00:00Z"), "home")
	h.rec.setFail(errors.New("queue full"))
	for i, v := range []string{"1", "2", "4"} {
		tg := &parser.Telegram{}
		tg.Set(parser.Injected, dec(t, v))
		at := utc("2026-01-31T23:00:00Z").Add(time.Duration(i) * 50 * time.Minute)
		h.w.Observe("home", at, tg)
		h.tick(at)
	}
	if n := len(h.rec.points(t)); n != 0 {
		t.Fatalf("%d points recorded while failing", n)
	}
	h.rec.setFail(nil)
	h.tick(utc("2026-02-01T01:00:00Z"))
	h.expect("home", day, utc("2026-01-31T00:00:00Z"), map[string]string{"injected_kwh": "1"})
	h.expect("home", month, utc("2026-01-01T00:00:00Z"), map[string]string{"injected_kwh": "1"})
	h.expect("home", day, utc("2026-02-01T00:00:00Z"), map[string]string{"injected_kwh": "2"})
	h.expect("home", month, utc("2026-02-01T00:00:00Z"), map[string]string{"injected_kwh": "2"})
}

// TestWorkerRandom plays random histories (resets, meter swaps, silences,
// readings delivered up to 90 s late, irregular rollups) through random
// zones and compares every day and month with the rule.
func TestWorkerRandom(t *testing.T) {
	zones := []string{"Europe/Brussels", "Asia/Kathmandu", "America/Santiago", "Australia/Lord_Howe", "UTC"}
	rng := rand.New(rand.NewPCG(7, 11))
	for iter := range 12 {
		loc := mustLoad(t, zones[iter%len(zones)])
		start := time.Date(2026, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), 0, 0, 0, loc)
		var hist []reading
		at := start
		taken, inj, gas := int64(rng.IntN(1e8)), int64(rng.IntN(1e6)), int64(rng.IntN(1e7))
		meterID, gasID := "A", "G"
		var gasAt time.Time
		gasSwap := false
		for at.Before(start.Add(80 * time.Hour)) {
			switch r := rng.IntN(400); {
			case r == 0:
				at = at.Add(time.Duration(rng.IntN(600)) * time.Minute) // silence
			case r == 1:
				taken = int64(rng.IntN(1000))
			case r == 2:
				meterID += "'"
			case r == 3:
				gasSwap = true // at the next capture
			}
			at = at.Add(time.Duration(5+rng.IntN(60)) * time.Second)
			taken += int64(rng.IntN(50))
			inj += int64(rng.IntN(3))
			if c := at.Truncate(5 * time.Minute); !c.Equal(gasAt) {
				// A new capture every 5 minutes; the value holds until the next.
				gasAt = c
				gas += int64(rng.IntN(20))
				if gasSwap {
					gasID += "'"
					gas = int64(rng.IntN(100))
					gasSwap = false
				}
			}
			hist = append(hist, reading{at: at, meter: meterID, vals: map[field]parser.Decimal{
				fTaken: {Int: taken, Scale: 3}, fInjected: {Int: inj, Scale: 4}, fGas: {Int: gas, Scale: 3},
			}, gasAt: gasAt, gasMeter: gasID})
		}
		h := newHarness(t, loc, start, "home")
		i := 0
		for now := start; now.Before(at.Add(3 * time.Minute)); now = now.Add(time.Duration(20+rng.IntN(80)) * time.Second) {
			for ; i < len(hist) && !hist[i].at.Add(time.Duration(rng.IntN(90))*time.Second).After(now); i++ {
				h.w.Observe("home", hist[i].at, hist[i].telegram())
			}
			h.tick(now)
		}
		for i < len(hist) {
			t.Fatalf("iter %d: %d readings not observed", iter, len(hist)-i)
		}
		for _, k := range []kind{day, month} {
			for p := periodOf(k, start, loc); p.start.Before(at); p = periodOf(k, p.end, loc) {
				h.check("home", hist, p)
			}
		}
	}
}

// TestRun runs the real loop with a short interval while readings arrive
// from another goroutine, cancels it, and checks the final write.
func TestRun(t *testing.T) {
	loc := mustLoad(t, "Asia/Kathmandu")
	clock := &fakeClock{t: utc("2026-06-15T06:00:00Z")}
	rec := &recorder{}
	w, err := New(Config{Location: loc, Interval: 5 * time.Millisecond, Bucket: "p1/autogen", Now: clock.Now,
		Gateways: []string{"a", "b"}}, rec, &stubQuerier{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	var wg sync.WaitGroup
	for _, gw := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg := &parser.Telegram{}
			for i := range 200 {
				at := utc("2026-06-15T06:00:00Z").Add(time.Duration(i) * time.Second)
				tg.Set(parser.Taken, parser.Decimal{Int: int64(1000 + i), Scale: 3})
				w.Observe(gw, at, tg)
				clock.set(at)
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	h := &harness{t: t, rec: rec}
	for _, gw := range []string{"a", "b"} {
		h.expect(gw, day, utc("2026-06-14T18:15:00Z"), map[string]string{"taken_kwh": "0.199"})
		h.expect(gw, month, utc("2026-05-31T18:15:00Z"), map[string]string{"taken_kwh": "0.199"})
	}
}

func TestNew(t *testing.T) {
	loc := mustLoad(t, "UTC")
	ok := Config{Location: loc, Bucket: "p1/autogen"}
	for _, c := range []struct {
		name string
		cfg  Config
		w    PointWriter
		q    Querier
		err  string
	}{
		{"no location", Config{Bucket: "b"}, &recorder{}, &stubQuerier{}, "location"},
		{"no bucket", Config{Location: loc}, &recorder{}, &stubQuerier{}, "bucket"},
		{"negative interval", Config{Location: loc, Bucket: "b", Interval: -time.Second}, &recorder{}, &stubQuerier{}, "interval"},
		{"nil writer", ok, nil, &stubQuerier{}, "nil"},
		{"nil querier", ok, &recorder{}, nil, "nil"},
	} {
		if _, err := New(c.cfg, c.w, c.q); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err = %v, want one mentioning %q", c.name, err, c.err)
		}
	}
	w, err := New(ok, &recorder{}, &stubQuerier{})
	if err != nil {
		t.Fatal(err)
	}
	if w.cfg.Interval != time.Minute {
		t.Errorf("default interval %v", w.cfg.Interval)
	}
}

// slowQuerier answers like stubQuerier after a delay, and records how many
// gateways each summary question named.
type slowQuerier struct {
	stubQuerier
	delay time.Duration
	sizes []int
}

func (q *slowQuerier) Summary(ctx context.Context, sel Select) ([]SeriesSummary, error) {
	time.Sleep(q.delay)
	q.mu.Lock()
	q.sizes = append(q.sizes, len(sel.Gateways))
	q.mu.Unlock()
	return q.stubQuerier.Summary(ctx, sel)
}

func (q *slowQuerier) Drops(ctx context.Context, sel Select) ([]Drop, error) {
	time.Sleep(q.delay)
	return q.stubQuerier.Drops(ctx, sel)
}

func (q *slowQuerier) Runs(ctx context.Context, sel Select) ([]Run, error) {
	time.Sleep(q.delay)
	return q.stubQuerier.Runs(ctx, sel)
}

func (q *slowQuerier) Last(ctx context.Context, sel Select) ([]Reading, error) {
	time.Sleep(q.delay)
	return q.stubQuerier.Last(ctx, sel)
}

func gatewayNames(n int) []string {
	gws := make([]string, n)
	for i := range gws {
		gws[i] = fmt.Sprintf("gw%04d", i)
	}
	return gws
}

// TestRecoveryBatches: recovery batches grow while InfluxDB answers fast,
// so that a thousand gateways cost a handful of queries per period, and
// shrink when a batch is slow.
func TestRecoveryBatches(t *testing.T) {
	loc := mustLoad(t, "UTC")
	q := &slowQuerier{}
	w, err := New(Config{Location: loc, Bucket: "p1/autogen", Gateways: gatewayNames(1000),
		Now: func() time.Time { return utc("2026-05-10T12:00:00Z") }}, &recorder{}, q)
	if err != nil {
		t.Fatal(err)
	}
	w.tick(context.Background(), true)
	// Four periods (yesterday, today, last month, this month) of 1000
	// gateways: the batches double from 10 while queries are fast.
	want := []int{10, 20, 40, 80, 160, 320, 370, 640, 360, 1000, 1000}
	if fmt.Sprint(q.sizes) != fmt.Sprint(want) {
		t.Errorf("series queries named %v gateways, want %v", q.sizes, want)
	}
	for _, tp := range w.tracked {
		for gw, gp := range tp.gws {
			if !gp.recovered {
				t.Fatalf("%s: %s not recovered", tp.period, gw)
			}
		}
	}

	for _, tt := range []struct {
		batch, n int
		took     time.Duration
		timedOut bool
		want     int
	}{
		{batch: 10, n: 10, took: time.Second, want: 20},
		{batch: 10, n: 7, took: time.Second, want: 10}, // a period's short last batch says little
		{batch: 640, n: 640, took: 4 * time.Second, want: maxBatch},
		{batch: maxBatch, n: maxBatch, took: time.Second, want: maxBatch},
		{batch: 40, n: 40, took: 10 * time.Second, want: 40},
		{batch: 40, n: 40, took: 31 * time.Second, want: 20},
		{batch: 40, n: 40, took: 2 * time.Minute, timedOut: true, want: 20},
		{batch: 1, n: 1, took: time.Minute, want: 1},
	} {
		w.batch = tt.batch
		w.resize(tt.n, tt.took, tt.timedOut)
		if w.batch != tt.want {
			t.Errorf("batch %d, %d gateways took %s (timed out %v): next batch %d, want %d",
				tt.batch, tt.n, tt.took, tt.timedOut, w.batch, tt.want)
		}
	}
}

// TestRecoveryBudget: a rollup stops recovering when its budget is spent,
// and the next one goes on where it stopped.
func TestRecoveryBudget(t *testing.T) {
	loc := mustLoad(t, "UTC")
	q := &slowQuerier{delay: 20 * time.Millisecond}
	w, err := New(Config{Location: loc, Bucket: "p1/autogen", Gateways: gatewayNames(100),
		Now: func() time.Time { return utc("2026-05-10T12:00:00Z") }}, &recorder{}, q)
	if err != nil {
		t.Fatal(err)
	}
	w.track(w.cfg.Now())
	recovered := func() (n int) {
		for _, tp := range w.tracked {
			for _, gp := range tp.gws {
				if gp.recovered {
					n++
				}
			}
		}
		return n
	}
	w.recoverAll(context.Background(), 100*time.Millisecond)
	if n := recovered(); n == 0 || n >= 400 {
		t.Fatalf("%d of 400 gateway-periods recovered within the budget; want some, not all", n)
	}
	for i := 0; recovered() < 400 && i < 50; i++ {
		w.recoverAll(context.Background(), 100*time.Millisecond)
	}
	if n := recovered(); n != 400 {
		t.Errorf("%d of 400 gateway-periods recovered after more rollups", n)
	}
}

// TestRecoveryDown: once InfluxDB refuses a batch, the other batches of the
// rollup send no query.
func TestRecoveryDown(t *testing.T) {
	loc := mustLoad(t, "UTC")
	q := &stubQuerier{err: errors.New("dial tcp 127.0.0.1:8086: connection refused")}
	w, err := New(Config{Location: loc, Bucket: "p1/autogen", Gateways: gatewayNames(100),
		Now: func() time.Time { return utc("2026-05-10T12:00:00Z") }}, &recorder{}, q)
	if err != nil {
		t.Fatal(err)
	}
	w.tick(context.Background(), true)
	if len(q.queries) != 1 {
		t.Errorf("%d queries, want 1", len(q.queries))
	}
	q.setErr(nil)
	w.tick(context.Background(), true)
	if len(q.queries) < 5 {
		t.Errorf("%d queries in all after InfluxDB came back, want the recovery's", len(q.queries))
	}
}

// bigAnswerQuerier fails every summary question that names more than max
// gateways as internal/influx fails an answer past its limit.
type bigAnswerQuerier struct {
	slowQuerier
	max int
}

func (q *bigAnswerQuerier) Summary(ctx context.Context, sel Select) ([]SeriesSummary, error) {
	got, err := q.slowQuerier.Summary(ctx, sel)
	if len(sel.Gateways) > q.max {
		return nil, fmt.Errorf("recover: %w", &answerlimit.TooLargeError{Limit: answerlimit.DefaultMax})
	}
	return got, err
}

// TestRecoveryAnswerTooLarge: an answer longer than the client's limit
// halves the batch, as a timeout does, and does not stop the other batches
// as an InfluxDB that is down does: smaller batches get answers that fit.
func TestRecoveryAnswerTooLarge(t *testing.T) {
	loc := mustLoad(t, "UTC")
	q := &bigAnswerQuerier{max: 25}
	w, err := New(Config{Location: loc, Bucket: "p1/autogen", Gateways: gatewayNames(100),
		Now: func() time.Time { return utc("2026-05-10T12:00:00Z") }}, &recorder{}, q)
	if err != nil {
		t.Fatal(err)
	}
	w.tick(context.Background(), true)
	// 10 and 20 fit; 40 is refused, and the next batch is sent, halved.
	want := []int{10, 20, 40, 20}
	if got := q.sizes[:min(len(q.sizes), len(want))]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first series queries named %v gateways, want %v", got, want)
	}
	for i := 0; i < 3; i++ {
		w.tick(context.Background(), true)
	}
	for _, tp := range w.tracked {
		for gw, gp := range tp.gws {
			if !gp.recovered {
				t.Errorf("%s: %s not recovered after 4 rollups", tp.period, gw)
			}
		}
	}
}
