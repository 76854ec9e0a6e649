package rollup

import (
	"time"

	"github.com/p1logger/p1logger/internal/calendar"
)

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
	if k == month {
		return period{kind: month, start: calendar.MonthStart(t, loc), end: calendar.NextMonth(t, loc)}
	}
	return period{kind: day, start: calendar.DayStart(t, loc), end: calendar.NextDay(t, loc)}
}

// previous returns the period of the same kind that ends where p starts.
func (p period) previous(loc *time.Location) period {
	return periodOf(p.kind, p.start.Add(-time.Nanosecond), loc)
}
