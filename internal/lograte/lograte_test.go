package lograte

import (
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var l Limit
	for _, tc := range []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{10 * time.Second, false, 0},
		{59 * time.Second, false, 0},
		{60 * time.Second, true, 2},
		{61 * time.Second, false, 0},
		{5 * time.Minute, true, 1},
	} {
		ok, n := l.Allow(t0.Add(tc.at), time.Minute)
		if ok != tc.ok || n != tc.suppressed {
			t.Errorf("at +%v: got %v, %d; want %v, %d", tc.at, ok, n, tc.ok, tc.suppressed)
		}
	}
}
