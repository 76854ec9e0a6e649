package rollup

import (
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPeriodOf(t *testing.T) {
	tests := []struct {
		name       string
		zone       string
		k          kind
		at         string // any instant inside the period
		start, end string // UTC
		hours      float64
	}{
		{"brussels spring forward", "Europe/Brussels", day, "2026-03-29T12:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 23},
		{"brussels fall back", "Europe/Brussels", day, "2026-10-25T12:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 25},
		{"brussels just before midnight", "Europe/Brussels", day, "2026-03-28T22:59:59Z", "2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z", 24},
		{"brussels at midnight", "Europe/Brussels", day, "2026-03-28T23:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 23},
		{"brussels march", "Europe/Brussels", month, "2026-03-31T21:59:59Z", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 31*24 - 1},
		{"brussels october", "Europe/Brussels", month, "2026-10-01T00:00:00Z", "2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", 31*24 + 1},
		{"brussels month end", "Europe/Brussels", month, "2026-04-30T21:59:59Z", "2026-03-31T22:00:00Z", "2026-04-30T22:00:00Z", 30 * 24},
		{"leap day", "Europe/Brussels", day, "2028-02-29T12:00:00Z", "2028-02-28T23:00:00Z", "2028-02-29T23:00:00Z", 24},
		{"leap february", "Europe/Brussels", month, "2028-02-29T22:59:59Z", "2028-01-31T23:00:00Z", "2028-02-29T23:00:00Z", 29 * 24},
		{"december to january", "Europe/Brussels", month, "2026-12-31T22:59:59Z", "2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z", 31 * 24},
		{"kathmandu +05:45", "Asia/Kathmandu", day, "2026-06-15T18:14:59Z", "2026-06-14T18:15:00Z", "2026-06-15T18:15:00Z", 24},
		{"kathmandu month", "Asia/Kathmandu", month, "2026-06-30T18:15:00Z", "2026-06-30T18:15:00Z", "2026-07-31T18:15:00Z", 31 * 24},
		{"chatham +13:45", "Pacific/Chatham", day, "2026-01-10T00:00:00Z", "2026-01-09T10:15:00Z", "2026-01-10T10:15:00Z", 24},
		// Clocks that jump from 24:00 to 01:00: the day starts at the jump.
		{"santiago skips midnight", "America/Santiago", day, "2026-09-06T12:00:00Z", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z", 23},
		{"santiago day before", "America/Santiago", day, "2026-09-06T03:59:59Z", "2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", 24},
		{"havana skips midnight", "America/Havana", day, "2026-03-08T12:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", 23},
		// Samoa skipped 30 December 2011 altogether.
		{"apia before the skipped day", "Pacific/Apia", day, "2011-12-30T09:00:00Z", "2011-12-29T10:00:00Z", "2011-12-30T10:00:00Z", 24},
		{"apia after the skipped day", "Pacific/Apia", day, "2011-12-30T10:00:00Z", "2011-12-30T10:00:00Z", "2011-12-31T10:00:00Z", 24},
		{"utc", "UTC", day, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			p := periodOf(tt.k, utc(tt.at), loc)
			if got, want := p.start, utc(tt.start); !got.Equal(want) {
				t.Errorf("start = %s, want %s", got.UTC(), want)
			}
			if got, want := p.end, utc(tt.end); !got.Equal(want) {
				t.Errorf("end = %s, want %s", got.UTC(), want)
			}
			if got := p.end.Sub(p.start).Hours(); got != tt.hours {
				t.Errorf("length = %vh, want %vh", got, tt.hours)
			}
			if p.kind != tt.k {
				t.Errorf("kind = %s, want %s", p.kind, tt.k)
			}
		})
	}
}

// TestPeriodsTile walks through two years in zones with every kind of
// oddity and checks that days and months tile time: each instant is in
// exactly the period periodOf gives, consecutive periods touch, and each
// period starts at local 00:00 (or, where that does not exist, at the jump).
func TestPeriodsTile(t *testing.T) {
	zones := []string{"Europe/Brussels", "Asia/Kathmandu", "America/Santiago", "America/Havana",
		"Asia/Beirut", "Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham", "Pacific/Apia", "UTC"}
	for _, z := range zones {
		loc := mustLoad(t, z)
		for _, k := range []kind{day, month} {
			from := time.Date(2011, 6, 1, 0, 0, 0, 0, loc)
			if z != "Pacific/Apia" {
				from = time.Date(2025, 6, 1, 0, 0, 0, 0, loc)
			}
			to := from.AddDate(2, 0, 0)
			p := periodOf(k, from, loc)
			n := 0
			for p.start.Before(to) {
				if !p.end.After(p.start) {
					t.Fatalf("%s %s: empty period", z, p)
				}
				if h := p.end.Sub(p.start); k == day && (h < 22*time.Hour || h > 26*time.Hour) {
					// Apia's 30 Dec 2011 vanished: its neighbours are normal.
					t.Errorf("%s %s: %v long", z, p, h)
				}
				ls := p.start.In(loc)
				if hh, mm, ss := ls.Clock(); hh != 0 || mm != 0 || ss != 0 {
					// Only allowed at a jump: the instant before is still the previous day.
					before := p.start.Add(-time.Nanosecond).In(loc)
					if localDate(before).Equal(localDate(ls)) {
						t.Errorf("%s %s: starts at %s, not at midnight or a jump", z, p, ls)
					}
				}
				if k == month && ls.Day() != 1 {
					t.Errorf("%s %s: month starts on day %d", z, p, ls.Day())
				}
				for _, at := range []time.Time{p.start, p.start.Add(p.end.Sub(p.start) / 2), p.end.Add(-time.Nanosecond)} {
					if q := periodOf(k, at, loc); !q.start.Equal(p.start) || !q.end.Equal(p.end) {
						t.Fatalf("%s: %s is in %s, periodOf says %s", z, at, p, q)
					}
				}
				next := periodOf(k, p.end, loc)
				if !next.start.Equal(p.end) {
					t.Fatalf("%s: %s ends at %s, next starts at %s", z, p, p.end, next.start)
				}
				if prev := next.previous(loc); !prev.start.Equal(p.start) {
					t.Fatalf("%s: previous of %s is %s, want %s", z, next, prev, p)
				}
				p = next
				n++
			}
			if k == day && (n < 729 || n > 732) || k == month && n != 24 {
				t.Errorf("%s: %d %ss in two years", z, n, k)
			}
		}
	}
}

// localDate returns t's wall-clock date as UTC midnight, to compare dates.
func localDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
