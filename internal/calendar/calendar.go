// Package calendar holds p1logger's one rule for where a local day and a
// local month begin. The parser dates the Belgian monthly peaks with it,
// ingest the current month's peak, and rollup its day and month periods, so
// that p1_peak and p1_energy always agree on when a month starts.
//
// The package is pure (no clock, no I/O): every function is given the
// location and the date or instant it works on.
package calendar

import "time"

// Midnight returns the first instant whose local date in loc is y-m-d or
// later (y, m and d are normalised as time.Date does, so d = 32 or m = 0 is
// fine).
//
// Normally that is time.Date(y, m, d, 0, 0, 0, 0, loc). In a zone whose clock
// jumps over midnight (America/Santiago, America/Havana, Asia/Beirut spring
// forward from 24:00 to 01:00) 00:00 does not exist and time.Date may return
// an instant on either side of the jump; the day then starts at the jump.
func Midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	want := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	// Fell before the jump: it shows as the previous day, 23:xx.
	for i := 0; i < 4 && localDate(t).Before(want); i++ {
		_, end := t.ZoneBounds()
		if end.IsZero() {
			break
		}
		t = end
	}
	// Fell after the jump: 01:00 (or later) of the right day. The day began
	// at the jump itself, the start of t's zone period.
	if h, mi, s := t.Clock(); h != 0 || mi != 0 || s != 0 || t.Nanosecond() != 0 {
		if start, _ := t.ZoneBounds(); !start.IsZero() && !localDate(start).Before(want) {
			t = start
		}
	}
	return t
}

// DayStart returns the start of the local day in loc that contains t.
func DayStart(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return Midnight(y, m, d, loc)
}

// NextDay returns the start of the local day in loc after the one that
// contains t: the end of t's day, 23, 24 or 25 hours after its start.
func NextDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return Midnight(y, m, d+1, loc)
}

// MonthStart returns the start of the local month in loc that contains t.
func MonthStart(t time.Time, loc *time.Location) time.Time {
	y, m, _ := t.In(loc).Date()
	return Midnight(y, m, 1, loc)
}

// NextMonth returns the start of the local month in loc after the one that
// contains t.
func NextMonth(t time.Time, loc *time.Location) time.Time {
	y, m, _ := t.In(loc).Date()
	return Midnight(y, m+1, 1, loc)
}

// localDate returns t's wall-clock date in t's location as UTC midnight, a
// value that compares by calendar date.
func localDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
