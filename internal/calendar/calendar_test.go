package calendar

import (
	"testing"
	"time"
)

func load(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDayAndMonth: for an instant, the start of its day and month and of
// the next ones, in zones with 23 and 25 hour days, clocks that skip
// midnight, month ends and leap years.
func TestDayAndMonth(t *testing.T) {
	tests := []struct {
		name                string
		zone                string
		at                  string // any instant, UTC
		day, nextDay        string // UTC
		month, nextMonth    string // UTC
		dayHours, monthDays float64
	}{
		{"brussels 23h day", "Europe/Brussels", "2026-03-29T12:00:00Z",
			"2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 23, 31 - 1.0/24},
		{"brussels 25h day", "Europe/Brussels", "2026-10-25T12:00:00Z",
			"2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", "2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", 25, 31 + 1.0/24},
		{"brussels repeated hour", "Europe/Brussels", "2026-10-25T00:30:00Z", // 02:30 CEST
			"2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", "2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", 25, 31 + 1.0/24},
		{"brussels last instant of a month", "Europe/Brussels", "2026-04-30T21:59:59Z",
			"2026-04-29T22:00:00Z", "2026-04-30T22:00:00Z", "2026-03-31T22:00:00Z", "2026-04-30T22:00:00Z", 24, 30},
		{"brussels first instant of a month", "Europe/Brussels", "2026-04-30T22:00:00Z",
			"2026-04-30T22:00:00Z", "2026-05-01T22:00:00Z", "2026-04-30T22:00:00Z", "2026-05-31T22:00:00Z", 24, 31},
		{"december to january", "Europe/Brussels", "2026-12-31T22:59:59Z",
			"2026-12-30T23:00:00Z", "2026-12-31T23:00:00Z", "2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z", 24, 31},
		{"leap day", "Europe/Brussels", "2028-02-29T12:00:00Z",
			"2028-02-28T23:00:00Z", "2028-02-29T23:00:00Z", "2028-01-31T23:00:00Z", "2028-02-29T23:00:00Z", 24, 29},
		{"common february", "Europe/Brussels", "2027-02-28T12:00:00Z",
			"2027-02-27T23:00:00Z", "2027-02-28T23:00:00Z", "2027-01-31T23:00:00Z", "2027-02-28T23:00:00Z", 24, 28},
		{"2100 is no leap year", "UTC", "2100-02-28T12:00:00Z",
			"2100-02-28T00:00:00Z", "2100-03-01T00:00:00Z", "2100-02-01T00:00:00Z", "2100-03-01T00:00:00Z", 24, 28},
		// 00:00 does not exist: the clock goes from 23:59:59 to 01:00. The
		// day starts at the jump; time.Date would give 23:00 the day before.
		{"santiago skips midnight", "America/Santiago", "2026-09-06T12:00:00Z",
			"2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z", "2026-09-01T04:00:00Z", "2026-10-01T03:00:00Z", 23, 30 - 1.0/24},
		{"santiago first instant after the jump", "America/Santiago", "2026-09-06T04:00:00Z",
			"2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z", "2026-09-01T04:00:00Z", "2026-10-01T03:00:00Z", 23, 30 - 1.0/24},
		{"santiago last instant before the jump", "America/Santiago", "2026-09-06T03:59:59Z",
			"2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "2026-09-01T04:00:00Z", "2026-10-01T03:00:00Z", 24, 30 - 1.0/24},
		// Midnight comes twice (00:00 -03, back to 23:00 -04): the day
		// before the change has 25 hours, the new day starts at the first
		// 00:00 after it.
		{"santiago falls back at midnight", "America/Santiago", "2026-04-04T12:00:00Z",
			"2026-04-04T03:00:00Z", "2026-04-05T04:00:00Z", "2026-04-01T03:00:00Z", "2026-05-01T04:00:00Z", 25, 30 + 1.0/24},
		{"havana skips midnight", "America/Havana", "2026-03-08T12:00:00Z",
			"2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z", 23, 31 - 1.0/24},
		{"beirut skipped midnight, 2023", "Asia/Beirut", "2023-03-26T06:00:00Z",
			"2023-03-25T22:00:00Z", "2023-03-26T21:00:00Z", "2023-02-28T22:00:00Z", "2023-03-31T21:00:00Z", 23, 31 - 1.0/24},
		{"kathmandu +05:45", "Asia/Kathmandu", "2026-06-15T18:14:59Z",
			"2026-06-14T18:15:00Z", "2026-06-15T18:15:00Z", "2026-05-31T18:15:00Z", "2026-06-30T18:15:00Z", 24, 30},
		// Samoa skipped 30 December 2011: the 29th is followed by the 31st.
		{"apia before the skipped day", "Pacific/Apia", "2011-12-30T09:00:00Z",
			"2011-12-29T10:00:00Z", "2011-12-30T10:00:00Z", "2011-12-01T10:00:00Z", "2011-12-31T10:00:00Z", 24, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			loc := load(t, tc.zone)
			at := utc(t, tc.at)
			for _, c := range []struct {
				what string
				got  time.Time
				want string
			}{
				{"DayStart", DayStart(at, loc), tc.day},
				{"NextDay", NextDay(at, loc), tc.nextDay},
				{"MonthStart", MonthStart(at, loc), tc.month},
				{"NextMonth", NextMonth(at, loc), tc.nextMonth},
			} {
				if want := utc(t, c.want); !c.got.Equal(want) {
					t.Errorf("%s = %s, want %s", c.what, c.got.UTC().Format(time.RFC3339), c.want)
				}
			}
			if got := NextDay(at, loc).Sub(DayStart(at, loc)).Hours(); got != tc.dayHours {
				t.Errorf("day length = %vh, want %vh", got, tc.dayHours)
			}
			if got := NextMonth(at, loc).Sub(MonthStart(at, loc)).Hours() / 24; got != tc.monthDays {
				t.Errorf("month length = %v days, want %v", got, tc.monthDays)
			}
		})
	}
}

// TestMidnightNormalises: out-of-range days and months roll over as in
// time.Date, which the parser relies on for "the month before" (m = 0).
func TestMidnightNormalises(t *testing.T) {
	loc := load(t, "Europe/Brussels")
	tests := []struct {
		y    int
		m    time.Month
		d    int
		want string
	}{
		{2026, 0, 1, "2025-11-30T23:00:00Z"},  // December 2025
		{2026, 13, 1, "2026-12-31T23:00:00Z"}, // January 2027
		{2026, 1, 32, "2026-01-31T23:00:00Z"}, // 1 February
		{2028, 2, 30, "2028-02-29T23:00:00Z"}, // 1 March of a leap year
		{2026, 3, 0, "2026-02-27T23:00:00Z"},  // 28 February
	}
	for _, tc := range tests {
		if got := Midnight(tc.y, tc.m, tc.d, loc); !got.Equal(utc(t, tc.want)) {
			t.Errorf("Midnight(%d, %d, %d) = %s, want %s", tc.y, tc.m, tc.d, got.UTC().Format(time.RFC3339), tc.want)
		}
	}
}

// TestDaysTile walks two years of days and months in zones with every kind
// of oddity: consecutive periods touch, each starts at local 00:00 or,
// where that does not exist, at the jump, and DayStart/MonthStart of any
// instant inside give the period back.
func TestDaysTile(t *testing.T) {
	for _, z := range []string{"Europe/Brussels", "Europe/Dublin", "America/Santiago", "America/Havana",
		"Asia/Beirut", "Australia/Lord_Howe", "Pacific/Chatham", "Pacific/Apia", "UTC"} {
		loc := load(t, z)
		for _, month := range []bool{false, true} {
			start, next := DayStart, NextDay
			if month {
				start, next = MonthStart, NextMonth
			}
			from := time.Date(2011, 6, 1, 12, 0, 0, 0, loc)
			p := start(from, loc)
			for n := 0; n < 800 && p.Before(from.AddDate(2, 0, 0)); n++ {
				end := next(p, loc)
				if !end.After(p) {
					t.Fatalf("%s: empty period at %s", z, p)
				}
				ls := p.In(loc)
				if h, m, s := ls.Clock(); h != 0 || m != 0 || s != 0 {
					if before := p.Add(-time.Nanosecond).In(loc); localDate(before).Equal(localDate(ls)) {
						t.Errorf("%s: period starts at %s, not at midnight or a jump", z, ls)
					}
				}
				if month && ls.Day() != 1 {
					t.Errorf("%s: month starts on day %d", z, ls.Day())
				}
				for _, at := range []time.Time{p, p.Add(end.Sub(p) / 2), end.Add(-time.Nanosecond)} {
					if got := start(at, loc); !got.Equal(p) {
						t.Fatalf("%s: %s lies in the period from %s, start gives %s", z, at, p, got)
					}
				}
				p = end
			}
		}
	}
}
