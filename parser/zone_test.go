package parser

import (
	"fmt"
	"testing"
	"time"
)

// TestZoneCache checks that timestamps converted through the zone cache are
// the instants time.Date and resolve give, around DST changes (both flags
// and none), in zones with half-hour DST and a skipped day, over the years
// a meter can print.
func TestZoneCache(t *testing.T) {
	var locs []*time.Location
	for _, name := range []string{"Europe/Brussels", "Europe/Luxembourg", "Australia/Lord_Howe", "Pacific/Apia", "America/Santiago", "UTC"} {
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
		if !got.Equal(want) || got.Location() != want.Location() {
			t.Fatalf("%s in %s: got %v, want %v", text, loc, got, want)
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
