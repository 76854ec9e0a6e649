// Package cyclecheck proves the "nothing lost" promise: it compares the p1
// points a gateway has in InfluxDB with the telegrams a simulated gateway
// really sent, and counts every telegram found once, missing, duplicated, or
// a point that matches no telegram. The outage tests of cmd/p1logger and the
// p1soak command both judge with it, so the test and the soak cannot drift
// apart.
package cyclecheck

import (
	"sort"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

// Result is the comparison of one gateway's points with its telegrams.
type Result struct {
	Expected, Found, Missing, Duplicated, Unexpected int
	MissingAt                                        []time.Time // when the missing telegrams were sent
}

// lookahead bounds how far past the expected telegram a point is searched
// for: a gap longer than this many cycles counts its points as unexpected.
const lookahead = 10000

// RowMatches reports whether a p1 row (a pivoted Flux record) holds exactly
// the telegram's values: the same meter_id, and every p1 field equal to the
// one sent or absent in both.
func RowMatches(row influxtest.Row, s *sim.Sent) bool {
	if row["meter_id"] != s.MeterID {
		return false
	}
	for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
		d, ok := s.Get(f)
		got := row[f.Name()]
		if !ok {
			if got != nil {
				return false
			}
			continue
		}
		var want any = d.Float64()
		if f.IsInteger() {
			want = d.Int
		}
		if got != want {
			return false
		}
	}
	return true
}

// SortRows orders rows by _time.
func SortRows(rows []influxtest.Row) {
	sort.SliceStable(rows, func(i, j int) bool {
		return rows[i]["_time"].(time.Time).Before(rows[j]["_time"].(time.Time))
	})
}

// Cycles walks the points in time order against the good telegrams in the
// order they were sent: each telegram must be the next point. A point equal
// to the telegram just matched is a duplicate; a point further ahead marks
// the telegrams it skipped as missing. It sorts rows.
func Cycles(rows []influxtest.Row, sent []sim.Sent) Result {
	SortRows(rows)
	c := Result{Expected: len(sent)}
	i := 0
	for _, r := range rows {
		if i < len(sent) && RowMatches(r, &sent[i]) {
			c.Found++
			i++
			continue
		}
		if i > 0 && RowMatches(r, &sent[i-1]) {
			c.Duplicated++ // the same telegram twice, at another time
			continue
		}
		k := -1
		for j := i + 1; j < len(sent) && j < i+lookahead; j++ {
			if RowMatches(r, &sent[j]) {
				k = j
				break
			}
		}
		if k < 0 {
			c.Unexpected++
			continue
		}
		for ; i < k; i++ {
			c.Missing++
			c.MissingAt = append(c.MissingAt, sent[i].At)
		}
		c.Found++
		i++
	}
	for ; i < len(sent); i++ {
		c.Missing++
		c.MissingAt = append(c.MissingAt, sent[i].At)
	}
	return c
}
