package rollup

import "time"

// kind is the length of a rollup period; its String is the "period" tag.
type kind uint8

const (
	day kind = iota
	month
)

func (k kind) String() string {
	if k == month {
		return "month"
	}
	return "day"
}

// period is one local calendar day or month as a half-open interval of
// instants [start, end). start is also the time of its p1_energy point.
type period struct {
	kind       kind
	start, end time.Time
}

func (p period) String() string {
	return p.kind.String() + " " + p.start.Format("2006-01-02T15:04:05Z07:00")
}

// periodOf returns the day or month of loc that contains t.
func periodOf(k kind, t time.Time, loc *time.Location) period {
	y, m, d := t.In(loc).Date()
	if k == month {
		return period{kind: month, start: midnight(y, m, 1, loc), end: midnight(y, m+1, 1, loc)}
	}
	return period{kind: day, start: midnight(y, m, d, loc), end: midnight(y, m, d+1, loc)}
}

// previous returns the period of the same kind that ends where p starts.
func (p period) previous(loc *time.Location) period {
	return periodOf(p.kind, p.start.Add(-time.Nanosecond), loc)
}

// midnight returns the first instant whose local date in loc is y-m-d or
// later (y, m and d are normalised as time.Date does, so d = 32 is fine).
//
// Normally that is time.Date(y, m, d, 0, 0, 0, 0, loc). In a zone whose clock
// jumps over midnight (America/Santiago, America/Havana, Asia/Beirut spring
// forward from 24:00 to 01:00) 00:00 does not exist and time.Date may return
// an instant on either side of the jump; the day then starts at the jump.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
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

// localDate returns t's wall-clock date in t's location as UTC midnight, a
// value that compares by calendar date.
func localDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
