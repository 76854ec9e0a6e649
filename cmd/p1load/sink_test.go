package main

import (
	"testing"
	"time"
)

func TestWindowLost(t *testing.T) {
	s := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	w := window{start: s, end: s.Add(30 * time.Second), cycle: 5 * time.Second}
	at := func(secs ...float64) []time.Time {
		var ts []time.Time
		for _, x := range secs {
			ts = append(ts, s.Add(time.Duration(x*float64(time.Second))))
		}
		return ts
	}
	for _, c := range []struct {
		name  string
		times []time.Time
		want  int
	}{
		{"every cycle", at(4.5, 9.6, 14.4, 19.5, 24.7, 29.5), 0},
		{"jitter within a cycle", at(3.1, 9.9, 14.0, 20.2, 24.1, 29.9), 0},
		{"one missing", at(4.5, 9.6, 19.5, 24.7, 29.5), 1},
		{"missing at both ends", at(9.6, 14.4, 19.5), 2},
		{"none", nil, 5},
		{"outside the window ignored", at(-1, 4.5, 9.6, 14.4, 19.5, 24.7, 29.5, 31), 0},
	} {
		var gaps []string
		if got := w.lost("gw", c.times, &gaps); got != c.want {
			t.Errorf("%s: lost %d, want %d (%v)", c.name, got, c.want, gaps)
		}
	}
}

func TestP1Point(t *testing.T) {
	gw, at, ok := p1Point([]byte(`p1,gateway=gw00042,meter_id=1SAG power_net_w=1.5 1773489600000000000`))
	if !ok || gw != "gw00042" || at.UnixNano() != 1773489600000000000 {
		t.Errorf("got %q %v %v", gw, at, ok)
	}
	if _, _, ok := p1Point([]byte(`p1 power_net_w=1.5`)); ok {
		t.Error("a line without gateway tag and time was accepted")
	}
}
