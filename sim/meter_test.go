package sim_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

var brussels = mustLoad("Europe/Brussels")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func newMeter(t testing.TB, cfg sim.MeterConfig) *sim.Meter {
	t.Helper()
	if cfg.Loc == nil {
		cfg.Loc = brussels
	}
	m, err := sim.NewMeter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func parse(t testing.TB, frame []byte) *parser.Telegram {
	t.Helper()
	tg, err := parser.Parse(frame, brussels)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, frame)
	}
	return tg
}

var (
	logLine = regexp.MustCompile(`^(0-0:98\.1\.0)\(\d+\)\(1-0:1\.6\.0\)\(1-0:1\.6\.0\)(\(\d{12}[SW]\)\(\d{12}[SW]\)\(\d\d\.\d{3}\*kW\))*$|` +
		`^(1-0:99\.97\.0)\(\d+\)\(0-0:96\.7\.19\)(\(\d{12}[SW]\)\(\d{10}\*s\))*$`)
	idLine    = regexp.MustCompile(`^(0-\d:96\.1\.[01])\(([0-9A-F]{2})+\)$`)
	timestamp = regexp.MustCompile(`\d{12}[SW]`)
	digits    = regexp.MustCompile(`\d`)
)

// shape reduces a telegram to its layout: codes, value widths and units,
// with digits as 9, ids and logs reduced to their code.
func shape(frame []byte) []string {
	var out []string
	text := strings.TrimSuffix(string(frame), "\r\n")
	for l := range strings.SplitSeq(text, "\r\n") {
		switch {
		case strings.HasPrefix(l, "!"):
			l = "!" + strings.Repeat("X", len(l)-1)
		case logLine.MatchString(l):
			m := logLine.FindStringSubmatch(l)
			l = m[1] + m[3] + "(log)"
		case idLine.MatchString(l):
			l = idLine.FindStringSubmatch(l)[1] + "(id)"
		default:
			if i := strings.IndexAny(l, "(\\ "); i >= 0 {
				l = l[:i] + digits.ReplaceAllString(timestamp.ReplaceAllString(l[i:], "999999999999X"), "9")
			}
		}
		out = append(out, l)
	}
	return out
}

// TestLayoutMatchesRealMeters compares the simulated telegrams line by line
// with real telegrams of the same meter types: same codes in the same
// order, same widths, same units, CRLF everywhere.
func TestLayoutMatchesRealMeters(t *testing.T) {
	for _, tc := range []struct {
		profile sim.Profile
		file    string
		drop    string // lines of the real telegram the profile does not have
	}{
		{sim.ProfileBE3, "be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt", ""},
		{sim.ProfileBE1, "be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt", `^1-0:(41|61|42|62|52|72|51|71)\.7\.0`},
		{sim.ProfileNL5, "nl-dsmr50-iskra-am550-3ph-export-gas.txt", ""},
		{sim.ProfileNL22, "nl-dsmr22-kamstrup-ka6u-export-gas.txt", ""},
	} {
		t.Run(string(tc.profile), func(t *testing.T) {
			real, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			want := shape(real)
			if tc.drop != "" {
				re := regexp.MustCompile(tc.drop)
				var kept []string
				for _, l := range want {
					if !re.MatchString(l) {
						kept = append(kept, l)
					}
				}
				want = kept
			}
			m := newMeter(t, sim.MeterConfig{Profile: tc.profile, Water: true, Seed: 7})
			s := m.Render(time.Date(2026, 1, 14, 18, 30, 0, 0, brussels))
			if bytes.Count(s.Frame, []byte("\n")) != bytes.Count(s.Frame, []byte("\r\n")) {
				t.Errorf("bare LF in frame:\n%q", s.Frame)
			}
			got := shape(s.Frame)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("layout differs from %s\ngot:\n%s\nwant:\n%s", tc.file, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestRenderDecodes checks, over two days of telegrams per profile, that
// parser.Parse accepts every one (with a valid CRC where the profile has
// one) and decodes exactly the values recorded in Sent.
func TestRenderDecodes(t *testing.T) {
	for _, p := range sim.Profiles {
		t.Run(string(p), func(t *testing.T) {
			m := newMeter(t, sim.MeterConfig{Profile: p, Water: true, SolarKWp: 5, Seed: 3})
			now := time.Date(2026, 6, 30, 6, 0, 0, 0, brussels)
			r := rand.New(rand.NewPCG(1, 2))
			for range 300 {
				now = now.Add(time.Duration(1+r.IntN(600)) * time.Second)
				s := m.Render(now)
				tg := parse(t, s.Frame)
				compareReading(t, &s.Reading, tg)
				if t.Failed() {
					t.Fatalf("telegram:\n%s", s.Frame)
				}
			}
		})
	}
}

func compareReading(t *testing.T, want *sim.Reading, tg *parser.Telegram) {
	t.Helper()
	wantCRC := parser.CRCNone
	if want.CRC {
		wantCRC = parser.CRCOK
	}
	if tg.CRC != wantCRC {
		t.Errorf("crc %v, want %v", tg.CRC, wantCRC)
	}
	for f := range parser.Field(parser.NumFields) {
		g, gok := tg.Get(f)
		w, wok := want.Get(f)
		if g != w || gok != wok {
			t.Errorf("%v: parsed %v (%v), sent %v (%v)", f, g, gok, w, wok)
		}
	}
	if string(tg.Header) != want.Header || string(tg.MeterID) != want.MeterID || string(tg.Version) != want.Version {
		t.Errorf("header/id/version %q %q %q, sent %q %q %q", tg.Header, tg.MeterID, tg.Version, want.Header, want.MeterID, want.Version)
	}
	if !tg.Time.Equal(want.Time) {
		t.Errorf("time %v, sent %v", tg.Time, want.Time)
	}
	if !tg.DemandMaxAt.Equal(want.DemandMaxAt) {
		t.Errorf("demand max at %v, sent %v", tg.DemandMaxAt, want.DemandMaxAt)
	}
	if len(tg.Peaks) != len(want.Peaks) {
		t.Errorf("%d peaks, sent %d", len(tg.Peaks), len(want.Peaks))
	} else {
		for i, p := range tg.Peaks {
			w := want.Peaks[i]
			if !p.Month.Equal(w.Month) || !p.At.Equal(w.At) || p.Value != w.Value {
				t.Errorf("peak %d: %v %v %v, sent %v %v %v", i, p.Month, p.At, p.Value, w.Month, w.At, w.Value)
			}
		}
	}
	if len(tg.FailureLog) != len(want.FailureLog) {
		t.Errorf("%d failures, sent %d", len(tg.FailureLog), len(want.FailureLog))
	} else {
		for i, f := range tg.FailureLog {
			if w := want.FailureLog[i]; !f.End.Equal(w.End) || f.Duration != w.Duration {
				t.Errorf("failure %d: %v %v, sent %v %v", i, f.End, f.Duration, w.End, w.Duration)
			}
		}
	}
	var devs []sim.MBusReading
	for _, d := range []sim.MBusReading{want.Gas, want.Water} {
		if d.Channel != 0 {
			devs = append(devs, d)
		}
	}
	if len(tg.MBus) != len(devs) {
		t.Fatalf("%d M-Bus devices, sent %d", len(tg.MBus), len(devs))
	}
	for i, d := range tg.MBus {
		w := devs[i]
		if d.Channel != w.Channel || d.Type != w.Type || d.Kind != w.Kind || string(d.ID) != w.ID ||
			d.Value != w.Value || !d.HasValue || string(d.Unit) != w.Unit || !d.Time.Equal(w.Time) {
			t.Errorf("M-Bus %d: %+v, sent %+v", i, d, w)
		}
	}
}

// TestEnergyFollowsPower walks meters through both 2026 DST changes with
// irregular steps: registers never go down, and every energy increment is
// the power of the previous telegram times the time between the two, to
// within the 1 Wh the register shows.
func TestEnergyFollowsPower(t *testing.T) {
	starts := []time.Time{
		time.Date(2026, 3, 28, 20, 0, 0, 0, brussels),
		time.Date(2026, 10, 24, 20, 0, 0, 0, brussels),
		time.Date(2026, 6, 22, 4, 0, 0, 0, brussels),
	}
	for _, p := range sim.Profiles {
		for _, start := range starts {
			m := newMeter(t, sim.MeterConfig{Profile: p, Water: true, SolarKWp: 6, Seed: 11})
			r := rand.New(rand.NewPCG(5, 6))
			prev := m.Render(start)
			var night, day [1]int
			var tariffs [3]int
			now := start
			for now.Sub(start) < 36*time.Hour {
				now = now.Add(time.Duration(1+r.IntN(59)) * time.Second)
				s := m.Render(now)
				dt := now.Sub(prev.At).Seconds()
				for _, c := range []struct {
					total, power parser.Field
				}{{parser.Taken, parser.PowerTaken}, {parser.Injected, parser.PowerInjected}} {
					e0, _ := prev.Get(c.total)
					e1, _ := s.Get(c.total)
					pw, _ := prev.Get(c.power)
					gotWh := float64(e1.Int - e0.Int)
					wantWh := pw.Float64() * dt / 3600
					if gotWh < wantWh-1 || gotWh > wantWh+1 {
						t.Fatalf("%s %v: %v grew by %v Wh in %vs at %v W, want %.2f Wh", p, now, c.total, gotWh, dt, pw, wantWh)
					}
				}
				for _, f := range []parser.Field{parser.TakenT1, parser.TakenT2, parser.InjectedT1, parser.InjectedT2} {
					a, _ := prev.Get(f)
					b, _ := s.Get(f)
					if b.Int < a.Int {
						t.Fatalf("%s %v: %v went down from %v to %v", p, now, f, a, b)
					}
				}
				if s.Gas.Value.Int < prev.Gas.Value.Int || s.Water.Value.Int < prev.Water.Value.Int {
					t.Fatalf("%s %v: gas or water went down", p, now)
				}
				if pw, _ := s.Get(parser.PowerInjected); pw.Int > 0 {
					if h := s.At.In(brussels).Hour(); h < 5 || h >= 22 {
						night[0]++
					} else {
						day[0]++
					}
				}
				tf, _ := s.Get(parser.Tariff)
				tariffs[tf.Int]++
				prev = s
			}
			// Panels inject by day only, and both tariffs occur.
			if night[0] != 0 {
				t.Errorf("%s from %v: %d telegrams with injection at night", p, start, night[0])
			}
			if start.Month() == time.June && day[0] == 0 {
				t.Errorf("%s from %v: no injection on a June day", p, start)
			}
			if start.Month() == time.June && (tariffs[1] == 0 || tariffs[2] == 0) {
				t.Errorf("%s from %v: tariffs seen %v, want both", p, start, tariffs)
			}
		}
	}
}

// TestTariffAndDST stands on the 2026 DST changes in Europe/Brussels (both
// Sundays) and the Monday after: the S/W flag, the decoded instant, and
// the tariff by country.
func TestTariffAndDST(t *testing.T) {
	utc := func(mo time.Month, d, h, mi, s int) time.Time { return time.Date(2026, mo, d, h, mi, s, 0, time.UTC) }
	for _, tc := range []struct {
		at       time.Time
		stamp    string
		be, nl   int64
		describe string
	}{
		{utc(3, 29, 0, 59, 59), "260329015959W", 2, 1, "last second of winter time"},
		{utc(3, 29, 1, 0, 0), "260329030000S", 2, 1, "02:00 CET became 03:00 CEST"},
		{utc(3, 29, 10, 0, 0), "260329120000S", 2, 1, "Sunday noon"},
		{utc(3, 30, 4, 59, 59), "260330065959S", 2, 1, "Monday before 07:00"},
		{utc(3, 30, 5, 0, 0), "260330070000S", 1, 2, "Monday 07:00"},
		{utc(3, 30, 19, 59, 59), "260330215959S", 1, 2, "Monday before 22:00"},
		{utc(3, 30, 20, 0, 0), "260330220000S", 2, 2, "Monday 22:00"},
		{utc(3, 30, 21, 0, 0), "260330230000S", 2, 1, "Monday 23:00"},
		{utc(10, 25, 0, 30, 0), "261025023000S", 2, 1, "first 02:30, summer time"},
		{utc(10, 25, 1, 30, 0), "261025023000W", 2, 1, "second 02:30, winter time"},
		{utc(10, 24, 11, 0, 0), "261024130000S", 2, 1, "Saturday"},
		{utc(10, 26, 11, 0, 0), "261026120000W", 1, 2, "Monday noon in winter time"},
	} {
		for _, p := range []sim.Profile{sim.ProfileBE3, sim.ProfileNL5} {
			m := newMeter(t, sim.MeterConfig{Profile: p})
			s := m.Render(tc.at)
			if !bytes.Contains(s.Frame, []byte("0-0:1.0.0("+tc.stamp+")")) {
				t.Errorf("%s %s: want 0-0:1.0.0(%s) in\n%s", p, tc.describe, tc.stamp, s.Frame)
			}
			tg := parse(t, s.Frame)
			if !tg.Time.Equal(tc.at) || !s.Time.Equal(tc.at) {
				t.Errorf("%s %s: decoded %v, recorded %v, want %v", p, tc.describe, tg.Time, s.Time, tc.at)
			}
			want := tc.be
			if p == sim.ProfileNL5 {
				want = tc.nl
			}
			if got, _ := tg.Get(parser.Tariff); got.Int != want {
				t.Errorf("%s %s: tariff %v, want %d", p, tc.describe, got, want)
			}
		}
	}

	// Both changes happen within 3 hours; the meter counts real seconds.
	for _, day := range []struct {
		start time.Time
		hours float64
	}{{time.Date(2026, 3, 29, 0, 0, 0, 0, brussels), 23}, {time.Date(2026, 10, 25, 0, 0, 0, 0, brussels), 25}} {
		m := newMeter(t, sim.MeterConfig{})
		first := m.Render(day.start)
		var last sim.Sent
		for now := day.start; now.Before(day.start.AddDate(0, 0, 1)); now = now.Add(10 * time.Second) {
			last = m.Render(now)
		}
		last = m.Render(day.start.AddDate(0, 0, 1))
		if got := parse(t, last.Frame).Time.Sub(parse(t, first.Frame).Time).Hours(); got != day.hours {
			t.Errorf("day %v lasted %v h by the meter clock, want %v", day.start, got, day.hours)
		}
	}
}

// TestDemand follows the Belgian capacity-tariff registers across a month
// end: 1.4.0 is the average taken since the quarter-hour began, 1.6.0 the
// month's highest quarter, and at the month change that peak moves into
// 98.1.0, stamped with the first of the new month.
func TestDemand(t *testing.T) {
	m := newMeter(t, sim.MeterConfig{Profile: sim.ProfileBE3, Seed: 4})
	start := time.Date(2026, 3, 31, 18, 0, 0, 0, brussels)
	prev := m.Render(start)
	var qJ int64
	qFrom := start
	maxW, _ := prev.Get(parser.DemandMaxMonth)
	maxAt := prev.DemandMaxAt
	marchMax, marchAt := maxW, maxAt
	peaksBefore := len(prev.Peaks)
	for now := start.Add(10 * time.Second); now.Before(start.Add(8 * time.Hour)); now = now.Add(10 * time.Second) {
		s := m.Render(now)
		pw, _ := prev.Get(parser.PowerTaken)
		qJ += pw.Int * 10
		secs := int64(now.Sub(qFrom) / time.Second)
		if now.Truncate(15 * time.Minute).Equal(now) { // a quarter ended
			avg := qJ / secs
			if avg > maxW.Int {
				maxW, maxAt = parser.Decimal{Int: avg}, qFrom
			}
			if now.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, brussels)) {
				marchMax, marchAt = maxW, maxAt
				maxW, maxAt = parser.Decimal{}, now
			}
			qJ, qFrom, secs = 0, now, 0
		}
		var wantAvg int64
		if secs > 0 {
			wantAvg = qJ / secs
		}
		if got, _ := s.Get(parser.DemandAvg); got.Int != wantAvg {
			t.Fatalf("%v: 1.4.0 = %v W, want %d W", now, got, wantAvg)
		}
		if got, _ := s.Get(parser.DemandMaxMonth); got != maxW || !s.DemandMaxAt.Equal(maxAt) {
			t.Fatalf("%v: 1.6.0 = %v W at %v, want %v W at %v", now, got, s.DemandMaxAt, maxW, maxAt)
		}
		prev = s
	}
	if len(prev.Peaks) != min(peaksBefore+1, 13) {
		t.Fatalf("%d peaks after the month change, had %d", len(prev.Peaks), peaksBefore)
	}
	last := prev.Peaks[len(prev.Peaks)-1]
	if !last.Month.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, brussels)) || last.Value != marchMax || !last.At.Equal(marchAt) {
		t.Errorf("March in the history: %+v, want %v at %v", last, marchMax, marchAt)
	}
	if marchMax.Int == 0 {
		t.Errorf("no peak in March")
	}
	stamp := "(260401000000S)(" + marchAt.In(brussels).Format("060102150405")
	if !bytes.Contains(prev.Frame, []byte(stamp)) {
		t.Errorf("98.1.0 lacks %s…:\n%s", stamp, prev.Frame)
	}
	tg := parse(t, prev.Frame)
	compareReading(t, &prev.Reading, tg)
}

// TestGasCaptures checks the M-Bus capture rhythm: Belgian and DSMR 5 gas
// every 5 minutes (stamped a few seconds past), DSMR 2.2 on the hour.
func TestGasCaptures(t *testing.T) {
	for _, tc := range []struct {
		p      sim.Profile
		period time.Duration
		maxOff time.Duration
	}{{sim.ProfileBE3, 5 * time.Minute, 10 * time.Second}, {sim.ProfileNL5, 5 * time.Minute, 10 * time.Second}, {sim.ProfileNL22, time.Hour, 0}} {
		m := newMeter(t, sim.MeterConfig{Profile: tc.p, Seed: 9})
		start := time.Date(2026, 1, 10, 6, 0, 0, 0, brussels)
		captures := map[time.Time]parser.Decimal{}
		for now := start; now.Before(start.Add(6 * time.Hour)); now = now.Add(7 * time.Second) {
			s := m.Render(now)
			g := s.Gas
			if off := g.Time.Sub(g.Time.Truncate(tc.period)); off > tc.maxOff {
				t.Fatalf("%s: capture at %v, %v past the period", tc.p, g.Time, off)
			}
			if g.Time.After(now) || now.Sub(g.Time) >= tc.period {
				t.Fatalf("%s: capture at %v shown at %v", tc.p, g.Time, now)
			}
			if v, ok := captures[g.Time]; ok && v != g.Value {
				t.Fatalf("%s: capture %v changed from %v to %v", tc.p, g.Time, v, g.Value)
			}
			captures[g.Time] = g.Value
		}
		if want := int(6*time.Hour/tc.period) - 1; len(captures) < want {
			t.Errorf("%s: %d captures in 6 h, want at least %d", tc.p, len(captures), want)
		}
		first, last := m.Render(start), m.Render(start.Add(6*time.Hour))
		if used := last.Gas.Value.Int - first.Gas.Value.Int; used < 500 || used > 10000 {
			t.Errorf("%s: %d l of gas on a January morning, want 0.5–10 m3", tc.p, used)
		}
	}
}

// TestDeterministic: the same seed and times give the same bytes; Index
// gives every meter of a name its own id.
func TestDeterministic(t *testing.T) {
	times := []time.Time{time.Date(2026, 5, 1, 12, 0, 0, 0, brussels)}
	for i := 1; i < 50; i++ {
		times = append(times, times[i-1].Add(time.Duration(i)*time.Second))
	}
	for _, p := range sim.Profiles {
		a := newMeter(t, sim.MeterConfig{Profile: p, Seed: 42, Water: true})
		b := newMeter(t, sim.MeterConfig{Profile: p, Seed: 42, Water: true})
		c := newMeter(t, sim.MeterConfig{Profile: p, Seed: 43, Water: true})
		differ := false
		for _, now := range times {
			sa, sb, sc := a.Render(now), b.Render(now), c.Render(now)
			if !bytes.Equal(sa.Frame, sb.Frame) {
				t.Fatalf("%s: same seed, different telegrams:\n%s\n%s", p, sa.Frame, sb.Frame)
			}
			differ = differ || !bytes.Equal(sa.Frame, sc.Frame)
		}
		if !differ {
			t.Errorf("%s: seeds 42 and 43 gave the same telegrams", p)
		}
		ids := map[string]int{}
		for i := range 2000 {
			m := newMeter(t, sim.MeterConfig{Profile: p, Name: "load", Index: i})
			if j, dup := ids[m.ID()]; dup {
				t.Fatalf("%s: meters %d and %d share id %q", p, j, i, m.ID())
			}
			ids[m.ID()] = i
		}
	}
}

func TestNewMeterErrors(t *testing.T) {
	for _, cfg := range []sim.MeterConfig{{Profile: "xx"}, {Index: -1}} {
		if _, err := sim.NewMeter(cfg); err == nil {
			t.Errorf("NewMeter(%+v) succeeded", cfg)
		}
	}
	if _, err := sim.ParseProfile("nl5"); err != nil {
		t.Error(err)
	}
}

func BenchmarkRender(b *testing.B) {
	for _, p := range sim.Profiles {
		b.Run(string(p), func(b *testing.B) {
			m := newMeter(b, sim.MeterConfig{Profile: p, Water: true, SolarKWp: 4})
			now := time.Date(2026, 6, 1, 12, 0, 0, 0, brussels)
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Second)
				s := m.Render(now)
				b.SetBytes(int64(len(s.Frame)))
			}
		})
	}
}

// TestLongGapAndRewind: a meter rendered again after two months has
// counted them (monthly peaks included); a clock that goes back leaves the
// registers alone.
func TestLongGapAndRewind(t *testing.T) {
	m := newMeter(t, sim.MeterConfig{Profile: sim.ProfileBE3, Seed: 5, SolarKWp: -1})
	jan := m.Render(time.Date(2026, 1, 15, 12, 0, 0, 0, brussels))
	mar := m.Render(time.Date(2026, 3, 20, 12, 0, 0, 0, brussels))
	days := 64.0
	t0, _ := jan.Get(parser.Taken)
	t1, _ := mar.Get(parser.Taken)
	if kwh := float64(t1.Int-t0.Int) / 1000; kwh < 2*days || kwh > 40*days {
		t.Errorf("%.0f kWh in %v days", kwh, days)
	}
	if len(mar.Peaks) != min(len(jan.Peaks)+2, 13) {
		t.Fatalf("%d peaks after two month ends, had %d", len(mar.Peaks), len(jan.Peaks))
	}
	peakVals := map[int64]bool{}
	for i, month := range []time.Month{time.January, time.February} {
		p := mar.Peaks[len(mar.Peaks)-2+i]
		if p.Month.Month() != month || p.At.Month() != month || p.Value.Int < 500 {
			t.Errorf("peak of %v: %+v", month, p)
		}
		peakVals[p.Value.Int] = true
	}
	if len(peakVals) != 2 {
		t.Errorf("January and February have the same peak: the load was not re-drawn over the gap")
	}
	compareReading(t, &mar.Reading, parse(t, mar.Frame))

	back := m.Render(time.Date(2026, 3, 20, 11, 0, 0, 0, brussels))
	for _, f := range []parser.Field{parser.TakenT1, parser.TakenT2, parser.InjectedT1, parser.InjectedT2} {
		a, _ := mar.Get(f)
		b, _ := back.Get(f)
		if a != b {
			t.Errorf("%v changed from %v to %v when the clock went back", f, a, b)
		}
	}
	if !back.Time.Equal(time.Date(2026, 3, 20, 11, 0, 0, 0, brussels)) {
		t.Errorf("clock shows %v", back.Time)
	}
	later := m.Render(time.Date(2026, 3, 20, 12, 0, 0, 0, brussels))
	if a, _ := later.Get(parser.Taken); a.Int <= t1.Int {
		t.Errorf("registers did not resume after the clock went back")
	}
}
