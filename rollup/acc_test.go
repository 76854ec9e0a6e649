package rollup

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
)

func TestFieldAcc(t *testing.T) {
	p := period{kind: day, start: utc("2026-03-28T23:00:00Z"), end: utc("2026-03-29T22:00:00Z")}
	at := func(s string) time.Time { return utc("2026-03-29T" + s + "Z") }
	before := utc("2026-03-28T22:59:55Z")
	type in struct {
		at    time.Time
		v     string
		meter string
	}
	tests := []struct {
		name string
		in   []in
		want string // "" = no value
	}{
		{"no readings", nil, ""},
		{"only a baseline", []in{{before, "100", "A"}}, ""},
		{"baseline before the period", []in{{before, "100.000", "A"}, {at("00:00:00"), "100.5", "A"}, {at("10:00:00"), "134.444", "A"}}, "34.444"},
		{"no baseline: first reading inside", []in{{at("01:00:00"), "100.5", "A"}, {at("10:00:00"), "134.444", "A"}}, "33.944"},
		{"float-hostile decimals", []in{{before, "0.1", "A"}, {at("01:00:00"), "0.3", "A"}}, "0.2"},
		{"register reset", []in{{before, "100", "A"}, {at("01:00:00"), "110", "A"}, {at("02:00:00"), "0.5", "A"}, {at("03:00:00"), "2.5", "A"}}, "12"},
		{"meter replaced with a higher register", []in{{before, "100", "A"}, {at("01:00:00"), "110", "A"}, {at("02:00:00"), "5000", "B"}, {at("03:00:00"), "5003", "B"}}, "13"},
		{"meter changed across midnight", []in{{before, "100", "A"}, {at("01:00:00"), "7", "B"}, {at("03:00:00"), "9", "B"}}, "2"},
		{"register lower than the baseline", []in{{before, "100", "A"}, {at("01:00:00"), "7", "A"}, {at("03:00:00"), "9", "A"}}, "2"},
		{"two resets", []in{{before, "10", "A"}, {at("01:00:00"), "11", "A"}, {at("02:00:00"), "1", "A"}, {at("03:00:00"), "4", "A"}, {at("04:00:00"), "0", "A"}, {at("05:00:00"), "0.25", "A"}}, "4.25"},
		{"a later baseline wins", []in{{utc("2026-03-28T20:00:00Z"), "90", "A"}, {before, "100", "A"}, {at("01:00:00"), "101", "A"}}, "1"},
		{"an older baseline does not", []in{{before, "100", "A"}, {utc("2026-03-28T20:00:00Z"), "90", "A"}, {at("01:00:00"), "101", "A"}}, "1"},
		{"baseline learnt after the first reading", []in{{utc("2026-03-28T20:00:00Z"), "90", "A"}, {at("01:00:00"), "101", "A"}, {before, "100", "A"}, {at("02:00:00"), "102", "A"}}, "2"},
		{"out-of-order reading ignored", []in{{before, "100", "A"}, {at("02:00:00"), "102", "A"}, {at("01:00:00"), "101", "A"}, {at("03:00:00"), "103", "A"}}, "3"},
		{"reading after the period ignored", []in{{before, "100", "A"}, {at("02:00:00"), "102", "A"}, {at("22:00:00"), "150", "A"}}, "2"},
		{"same reading twice", []in{{before, "100", "A"}, {at("02:00:00"), "102", "A"}, {at("02:00:00"), "102", "A"}}, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a fieldAcc
			for _, x := range tt.in {
				a.add(sample{at: instantOf(x.at), v: dec(t, x.v), meter: x.meter}, p)
			}
			got, ok := a.value()
			switch {
			case tt.want == "" && ok:
				t.Errorf("value = %s, want none", got)
			case tt.want != "" && !ok:
				t.Errorf("no value, want %s", tt.want)
			case tt.want != "" && got.String() != tt.want:
				t.Errorf("value = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDecFromFloat(t *testing.T) {
	for _, s := range []string{"0", "34.444", "123456.789", "0.1", "0.0000001", "99999999.9999999", "-2.5", "1e-9"} {
		f := mustFloat(t, s)
		d, ok := decFromFloat(f)
		if !ok {
			t.Fatalf("%s: not ok", s)
		}
		if got := d.Float64(); got != f {
			t.Errorf("%s: got %s (%v)", s, d, got)
		}
	}
	// Differences computed in float64 come back exact to 1e-7.
	for _, c := range []struct{ a, b, want string }{
		{"34.444", "0", "34.444"}, {"100.001", "12345.678", "-12245.677"}, {"0.3", "0.1", "0.2"},
		{"99999999.9999999", "99999998.0000001", "1.9999998"},
	} {
		d, _ := decFromDiff(mustFloat(t, c.a) - mustFloat(t, c.b))
		if d.String() != c.want {
			t.Errorf("%s − %s = %s, want %s", c.a, c.b, d, c.want)
		}
	}
	if _, ok := decFromFloat(1e300); ok {
		t.Error("1e300 accepted")
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestReplayEqualsReadings checks that the compressed form recovery builds
// (per run: first, each drop with the reading before it, last) gives the
// same value as every reading one by one, and as the reference.
func TestReplayEqualsReadings(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	p := period{kind: day, start: utc("2026-10-24T22:00:00Z"), end: utc("2026-10-25T23:00:00Z")}
	for iter := range 500 {
		var hist []reading
		at := p.start.Add(-time.Duration(rng.IntN(3)+1) * time.Hour)
		v := int64(rng.IntN(1_000_000))
		meters := []string{"A", "B", "C"}
		m := "A"
		for range rng.IntN(40) + 1 {
			at = at.Add(time.Duration(rng.IntN(120)+1) * time.Minute)
			switch r := rng.IntN(20); {
			case r == 0:
				v = int64(rng.IntN(1000)) // reset
			case r == 1:
				m = meters[rng.IntN(len(meters))] // meter change (or flip back)
			default:
				v += int64(rng.IntN(2000))
			}
			hist = append(hist, reading{at: at, meter: m, vals: map[field]parser.Decimal{fTaken: {Int: v, Scale: 3}}})
		}
		var live fieldAcc
		for _, r := range hist {
			live.add(sample{at: instantOf(r.at), v: r.vals[fTaken], meter: r.meter}, p)
		}
		s := compress(hist, p)
		replay := s.acc(p)
		want, wok := reference(hist, fTaken, p)
		got, gok := live.value()
		rgot, rok := replay.value()
		if gok != wok || rok != wok || (wok && (got != want || rgot != want)) {
			t.Fatalf("iter %d: live %s (%v), replay %s (%v), reference %s (%v)", iter, got, gok, rgot, rok, want, wok)
		}
	}
}

// compress is what the recovery queries return for hist in p, computed
// the slow way: the last reading before p, then per run of consecutive
// readings of one meter its first and last reading and its drops.
func compress(hist []reading, p period) fieldSummary {
	var s fieldSummary
	var cur *run
	var prev sample
	for _, r := range hist {
		x := sample{at: instantOf(r.at), v: r.vals[fTaken], meter: r.meter}
		if r.at.Before(p.start) {
			s.base, s.hasBase = x, true
			continue
		}
		if !r.at.Before(p.end) {
			break
		}
		switch {
		case cur == nil || cur.first.meter != x.meter:
			cur = &run{first: x}
			s.runs = append(s.runs, cur)
		case less(x.v, prev.v):
			cur.drops = append(cur.drops, drop{at: x.at, prev: prev.v, v: x.v})
		}
		cur.last = x
		prev = x
	}
	return s
}

// TestAppendObsKeepsValues: readings kept short by appendObs, filed into
// the accumulators of every day and month they touch, give exactly the
// values of all the readings filed one by one — with resets, meter changes,
// registers that come and go, gas captured before midnight, out-of-order
// times, across a DST change and a month end — while most readings are
// dropped.
func TestAppendObsKeepsValues(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	rng := rand.New(rand.NewPCG(7, 11))
	kept, total := 0, 0
	for iter := range 400 {
		start := time.Date(2026, 10, 24, 20, 0, 0, 0, loc) // DST ends on the 25th
		if iter%2 == 1 {
			start = time.Date(2026, 10, 31, 21, 0, 0, 0, loc) // month end
		}
		var all, q []obs
		at, gasAt := start, start
		var maxAt time.Time
		vals := [numP1Fields]int64{}
		gas := int64(0)
		meter, gasMeter := "A", "G"
		for range rng.IntN(300) + 1 {
			at = at.Add(time.Duration(rng.IntN(600)+1) * time.Second)
			if rng.IntN(50) == 0 {
				at = at.Add(-time.Duration(rng.IntN(900)) * time.Second) // a step back
			}
			o := obs{at: at, meter: meter, date: dateKey(at, loc), newest: len(all) == 0 || at.After(maxAt)}
			if o.newest {
				maxAt = at
			}
			switch r := rng.IntN(100); {
			case r == 0:
				meter = []string{"A", "B"}[rng.IntN(2)]
				o.meter = meter
			case r == 1:
				vals[rng.IntN(numP1Fields)] = int64(rng.IntN(100)) // reset
			}
			for f := range numP1Fields {
				vals[f] += int64(rng.IntN(50))
				if rng.IntN(60) != 0 { // now and then a register is missing
					o.vals[f] = parser.Decimal{Int: vals[f], Scale: 3}
					o.has |= 1 << f
				}
			}
			if rng.IntN(10) != 0 {
				if rng.IntN(4) == 0 {
					gasAt = at.Add(-time.Duration(rng.IntN(300)) * time.Second).Truncate(5 * time.Minute)
					gas += int64(rng.IntN(20))
					if rng.IntN(80) == 0 {
						gasMeter = []string{"G", "H"}[rng.IntN(2)]
					}
				}
				o.gas = sample{at: instantOf(gasAt), v: parser.Decimal{Int: gas, Scale: 3}, meter: gasMeter}
				o.hasGas, o.gasDate = true, dateKey(gasAt, loc)
			}
			all = append(all, o)
			q = appendObs(q, o)
		}
		kept += len(q)
		total += len(all)
		for _, k := range []kind{day, month} {
			for p := periodOf(k, start, loc); p.start.Before(at.Add(time.Hour)); p = periodOf(k, p.end, loc) {
				var want, got [numFields]fieldAcc
				for i := range all {
					for f := range numFields {
						if s, ok := all[i].sample(f); ok {
							want[f].add(s, p)
						}
					}
				}
				for i := range q {
					for f := range numFields {
						if s, ok := q[i].sample(f); ok {
							got[f].add(s, p)
						}
					}
				}
				for f := range numFields {
					wv, wok := want[f].value()
					gv, gok := got[f].value()
					if wok != gok || wv != gv || want[f].base != got[f].base || want[f].last != got[f].last {
						t.Fatalf("iter %d, %s, %s: all %d readings give %s (%v), the %d kept give %s (%v)",
							iter, p, fieldNames[f], len(all), wv, wok, len(q), gv, gok)
					}
				}
			}
		}
	}
	// These histories change something every few readings; most are
	// still dropped. A meter's usual day is TestAppendObsDay's.
	if kept*10 > total*7 {
		t.Errorf("appendObs kept %d of %d readings; want at least 30%% dropped", kept, total)
	}
}

// TestAppendObsDay: a meter's readings every 5 s with gas captured every 5
// minutes, from the afternoon to the next morning, are kept as the first
// and last of each day.
func TestAppendObsDay(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	m := &meter{id: "M", gasID: "G", withGas: true}
	var q []obs
	var maxAt time.Time
	hist := m.readings(time.Date(2026, 3, 28, 14, 0, 0, 0, loc), time.Date(2026, 3, 29, 9, 0, 0, 0, loc), 5*time.Second, loc)
	for _, r := range hist {
		o := obs{at: r.at, meter: r.meter, date: dateKey(r.at, loc), newest: r.at.After(maxAt)}
		maxAt = r.at
		for f := range numP1Fields {
			o.vals[f], o.has = r.vals[field(f)], o.has|1<<f
		}
		o.gas = sample{at: instantOf(r.gasAt), v: r.vals[fGas], meter: r.gasMeter}
		o.hasGas, o.gasDate = true, dateKey(r.gasAt, loc)
		q = appendObs(q, o)
	}
	var got []string
	for _, o := range q {
		got = append(got, o.at.In(loc).Format("02 15:04:05"))
	}
	want := []string{"28 14:00:00", "28 23:59:55", "29 00:00:00", "29 09:00:00"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("%d readings kept as %v, want %v", len(hist), got, want)
	}
}
