package rollup

import (
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
)

func TestCurrent(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	h := newHarness(t, loc, local(loc, 2026, 3, 29, 10, 0), "home", "idle")
	if got := h.w.Current(); len(got) != 0 {
		t.Fatalf("before the first rollup: %v, want nothing", got)
	}
	for _, r := range []struct {
		at time.Time
		v  string
	}{
		{local(loc, 2026, 3, 28, 23, 58), "100.000"},
		{local(loc, 2026, 3, 29, 0, 58), "100.5"},
		{local(loc, 2026, 3, 29, 9, 58), "134.444"},
	} {
		tg := &parser.Telegram{MeterID: []byte("E1")}
		tg.Set(parser.Taken, dec(t, r.v))
		tg.Set(parser.InjectedT1, dec(t, "7"))
		h.w.Observe("home", r.at, tg)
	}
	now := local(loc, 2026, 3, 29, 10, 0)
	h.tick(now)
	// The 29th is the 23-hour day; the month began on 2026-03-01 00:00 CET
	// and its first reading is the baseline, 100.000 on the 28th: the
	// month's values count since then, the day's since midnight.
	want := []Energy{
		{Gateway: "home", Period: "day", Start: local(loc, 2026, 3, 29, 0, 0), End: local(loc, 2026, 3, 30, 0, 0),
			Values: map[string]float64{"taken_kwh": 34.444, "injected_t1_kwh": 0}, At: now},
		{Gateway: "home", Period: "month", Start: local(loc, 2026, 3, 1, 0, 0), End: local(loc, 2026, 4, 1, 0, 0),
			Values: map[string]float64{"taken_kwh": 34.444, "injected_t1_kwh": 0}, Since: local(loc, 2026, 3, 28, 23, 58), At: now},
	}
	checkCurrent(t, h.w.Current(), want)

	// After midnight, without a reading of the new day: no day entry yet;
	// the month goes on.
	old := h.w.Current()
	now = local(loc, 2026, 3, 30, 0, 1)
	h.tick(now)
	want = want[1:]
	want[0].At = now
	checkCurrent(t, h.w.Current(), want)
	if len(old) != 2 || old[0].Period != "day" {
		t.Errorf("a kept snapshot changed: %v", old)
	}
}

func checkCurrent(t *testing.T, got, want []Energy) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Gateway != w.Gateway || g.Period != w.Period || !g.Start.Equal(w.Start) || !g.End.Equal(w.End) ||
			!g.At.Equal(w.At) || !g.Since.Equal(w.Since) || len(g.Values) != len(w.Values) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, g, w)
			continue
		}
		for k, v := range w.Values {
			if gv, ok := g.Values[k]; !ok || gv != v {
				t.Errorf("entry %d: %s = %v, want %v", i, k, gv, v)
			}
		}
	}
}

// TestCurrentSince: a day whose first reading came after midnight, with none
// before it, says so; a reading from before midnight delivered later
// becomes its baseline and the day counts from midnight again.
func TestCurrentSince(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	h := newHarness(t, loc, local(loc, 2026, 10, 25, 14, 0), "home")
	obs := func(at time.Time, v string) {
		tg := &parser.Telegram{MeterID: []byte("E1")}
		tg.Set(parser.Taken, dec(t, v))
		h.w.Observe("home", at, tg)
	}
	obs(local(loc, 2026, 10, 25, 13, 7), "500.000")
	obs(local(loc, 2026, 10, 25, 13, 59), "500.250")
	now := local(loc, 2026, 10, 25, 14, 0)
	h.tick(now)
	for _, e := range h.w.Current() {
		if want := local(loc, 2026, 10, 25, 13, 7); !e.Since.Equal(want) {
			t.Errorf("%s: Since = %v, want %v (the first reading, no baseline)", e.Period, e.Since, want)
		}
	}
	obs(local(loc, 2026, 10, 24, 23, 50), "499.000")
	h.tick(now.Add(time.Minute))
	got := h.w.Current()
	if len(got) != 2 || got[0].Period != "day" || !got[0].Since.IsZero() || got[0].Values["taken_kwh"] != 1.25 {
		t.Errorf("day after its baseline arrived: %+v, want since midnight, 1.25 kWh", got)
	}
	// In the month the late reading lies inside the period and is older than
	// the latest: the rollup ignores it, so the month still counts from 13:07.
	if len(got) == 2 && !got[1].Since.Equal(local(loc, 2026, 10, 25, 13, 7)) {
		t.Errorf("month: Since = %v, want still the first reading", got[1].Since)
	}
}
