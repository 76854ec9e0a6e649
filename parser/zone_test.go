package parser

import (
	"fmt"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/calendar"
)

// TestZoneCache checks that timestamps converted through the zone cache are
// the instants time.Date and resolve give, around DST changes (both flags
// and none), in zones with half-hour DST and a skipped day, over the years
// a meter can print.
func TestZoneCache(t *testing.T) {
	var locs []*time.Location
	for _, name := range []string{"Europe/Brussels", "Europe/Luxembourg", "Australia/Lord_Howe", "Pacific/Apia", "America/Santiago", "UTC",
		// Midnight changes, negative DST, DST on and off within a year, 45-minute offsets.
		"America/Sao_Paulo", "Europe/Dublin", "Africa/Casablanca", "Asia/Tehran", "Pacific/Chatham", "America/St_Johns", "Local"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	check := func(z *zoneCache, loc *time.Location, w time.Time, flag string) {
		t.Helper()
		text := fmt.Sprintf("%02d%02d%02d%02d%02d%02d%s", w.Year()-2000, int(w.Month()), w.Day(), w.Hour(), w.Minute(), w.Second(), flag)
		got, ok := z.parseTimestamp([]byte(text), loc)
		if !ok {
			t.Fatalf("%s in %s: not a timestamp", text, loc)
		}
		var f byte
		if flag != "" {
			f = flag[0] | 0x20
		}
		want := resolve(time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc), f)
		if got != want {
			t.Fatalf("%s in %s: got %v, want %v", text, loc, got, want)
		}
		// The month before a peak stamp's, as peaks computes it.
		if w.Year() > 2000 && w.Day() == 1 {
			got := z.monthBefore(w.Year(), w.Month(), loc)
			want := calendar.Midnight(w.Year(), w.Month()-1, 1, loc)
			if got != want {
				t.Fatalf("month before %s in %s: got %v, want %v", text, loc, got, want)
			}
		}
	}
	for _, loc := range locs {
		var z zoneCache
		// Sparse over the century, one cache for all, as a long run sees it.
		for w := time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC); w.Year() < 2099; w = w.Add(97*time.Hour + 13*time.Minute + 7*time.Second) {
			for _, f := range []string{"", "S", "W"} {
				check(&z, loc, w, f)
			}
		}
		// Every first of the month, and the days around it.
		for w := time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC); w.Year() < 2099; w = w.AddDate(0, 0, 1) {
			if w.Year() == 2070 && w.YearDay() == 1 {
				continue // a "not set" marker
			}
			if d := w.Day(); d == 1 || d == 2 || d >= 28 {
				check(&z, loc, w, "")
			}
		}
		// Dense around every transition of a few years.
		for y := 2010; y <= 2027; y++ {
			at := time.Date(y, 1, 1, 0, 0, 0, 0, loc)
			end := time.Date(y+1, 1, 1, 0, 0, 0, 0, loc)
			for at.Before(end) {
				_, next := at.ZoneBounds()
				if next.IsZero() || !next.Before(end) {
					break
				}
				for d := -30 * time.Hour; d <= 30*time.Hour; d += 10 * time.Minute {
					w := next.Add(d).In(time.UTC) // any wall clock near the change
					for _, f := range []string{"", "S", "W"} {
						check(&z, loc, w, f)
					}
				}
				at = next
			}
		}
	}
}

func TestDaysSinceEpoch(t *testing.T) {
	for d := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2100; d = d.AddDate(0, 0, 1) {
		if got, want := daysSinceEpoch(d.Year(), int(d.Month()), d.Day()), d.Unix()/86400; got != want {
			t.Fatalf("%s: got %d, want %d", d.Format(time.DateOnly), got, want)
		}
	}
}

// TestTimestampBytes changes every byte of a few timestamps to every value
// and checks the result against a plain byte-by-byte reading.
func TestTimestampBytes(t *testing.T) {
	// want reads g the simple way: ok false when g is not a timestamp (or
	// not a date and time), zero time for the "not set" markers.
	want := func(g []byte) (time.Time, bool) {
		if len(g) != 12 && len(g) != 13 {
			return time.Time{}, false
		}
		var v [6]int
		for i := range v {
			a, b := g[2*i], g[2*i+1]
			if a < '0' || a > '9' || b < '0' || b > '9' {
				return time.Time{}, false
			}
			v[i] = int(a-'0')*10 + int(b-'0')
		}
		var flag byte
		if len(g) == 13 {
			switch g[12] {
			case 'S', 's':
				flag = 's'
			case 'W', 'w':
				flag = 'w'
			default:
				return time.Time{}, false
			}
		}
		y, mo, d, h, mi, s := 2000+v[0], v[1], v[2], v[3], v[4], v[5]
		if string(g[:12]) == "000000000000" || string(g[:12]) == "632525252525" {
			return time.Time{}, true
		}
		if mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) || h > 23 || mi > 59 || s > 59 {
			return time.Time{}, false
		}
		if (y == 2000 || y == 2070) && mo == 1 && d == 1 {
			return time.Time{}, true
		}
		return resolve(time.Date(y, time.Month(mo), d, h, mi, s, 0, brussels), flag), true
	}
	var z zoneCache
	for _, base := range []string{"261124123237W", "280229235959S", "991231000000", "000102030405w", "000000000000W", "632525252525S", "700101000000"} {
		for i := range len(base) {
			for c := range 256 {
				g := []byte(base)
				g[i] = byte(c)
				got, ok := z.parseTimestamp(g, brussels)
				wantT, wantOK := want(g)
				if got != wantT || ok != wantOK {
					t.Fatalf("%q: got %v %v, want %v %v", g, got, ok, wantT, wantOK)
				}
			}
		}
	}
}
