package rollup

import (
	"context"
	"time"
)

// Querier answers what recovery needs to know about the readings InfluxDB
// already holds: per series, a period's summary, where registers went down,
// the runs of a meter_id that came back, and the last reading before a
// period. It says what is asked, not how: internal/influx answers it in
// Flux or InfluxQL, whichever the server speaks, and the answers are the
// same either way. An error means the question was not answered (InfluxDB
// down, slow, or an answer past its size limit); the worker retries later.
//
// Every question covers the readings of sel.Gateways in [sel.Start,
// sel.Stop): the p1 fields sel.Fields and, when sel.Gas is set, the value
// of p1_mbus devices of kind gas. The answers list series in any order;
// numbers are the stored float64s.
type Querier interface {
	// Summary returns, per series, the first and last reading and whether
	// the register went down anywhere between consecutive readings.
	Summary(ctx context.Context, sel Select) ([]SeriesSummary, error)
	// Drops returns, per series, every reading where the register went
	// down, in time order.
	Drops(ctx context.Context, sel Select) ([]Drop, error)
	// Runs splits each register's readings, in time order across all its
	// series, into runs of consecutive readings of one series, and returns
	// every run with its first and last reading and its drops.
	Runs(ctx context.Context, sel Select) ([]Run, error)
	// Last returns, per series, the latest reading.
	Last(ctx context.Context, sel Select) ([]Reading, error)
}

// Select is the readings a question is about.
type Select struct {
	Start, Stop time.Time // [Start, Stop)
	Gateways    []string  // sorted, at least one
	Fields      []string  // p1 field keys (taken_t1_kwh, ...)
	Gas         bool      // also p1_mbus kind=gas, field value
}

// Measurements and the field of p1_mbus that recovery reads (DESIGN.md).
const (
	MeasurementP1   = "p1"
	MeasurementMBus = "p1_mbus"
	MBusValue       = "value"
)

// Series identifies one stored series of a register. Tags the rollup does
// not look at (p1_mbus unit, kind) are not part of it: two series that
// differ only there are answered as two entries with the same Series.
type Series struct {
	Gateway     string
	Measurement string // MeasurementP1 or MeasurementMBus
	Field       string // the p1 field key, or MBusValue
	Channel     string // p1_mbus only
	Meter       string // meter_id; "" when absent
}

// Point is one reading's time and value.
type Point struct {
	At    time.Time
	Value float64
}

// SeriesSummary is Summary's answer for one series.
type SeriesSummary struct {
	Series
	First, Last Point
	Falls       bool // a reading is lower than the one before it
}

// Drop is a reading lower than the one before it.
type Drop struct {
	Series
	At    time.Time
	Diff  float64 // this reading minus the one before (negative)
	After float64 // this reading
}

// Run is a stretch of consecutive readings of one series (see Runs).
// ID tells runs of the same series apart; it is unique per register.
type Run struct {
	Series
	ID          int64
	First, Last Point
	Drops       []Drop
}

// Reading is one reading of a series.
type Reading struct {
	Series
	Point
}

// P1Fields returns the p1 field keys the rollup reads, in DESIGN.md's order.
func P1Fields() []string {
	out := make([]string, numP1Fields)
	copy(out, fieldNames[:numP1Fields])
	return out
}

// fieldOf maps s to the register it holds; ok is false for a series the
// rollup does not sum.
func fieldOf(s Series) (field, bool) {
	switch s.Measurement {
	case MeasurementP1:
		return p1FieldByName(s.Field)
	case MeasurementMBus:
		return fGas, s.Field == MBusValue
	}
	return 0, false
}

// newRow starts the row of s; ok is false for a series the rollup does not sum.
func newRow(result string, s Series) (row, bool) {
	f, ok := fieldOf(s)
	if !ok {
		return row{}, false
	}
	r := row{result: result, gw: s.Gateway, f: f, meter: s.Meter}
	if f == fGas {
		r.channel = s.Channel
	}
	return r, true
}

// selectOf is the question about gws in [start, stop) for fields.
func selectOf(start, stop time.Time, gws []string, fields [numFields]bool) Select {
	sel := Select{Start: start, Stop: stop, Gateways: gws, Gas: fields[fGas]}
	for f := range field(numP1Fields) {
		if fields[f] {
			sel.Fields = append(sel.Fields, fieldNames[f])
		}
	}
	return sel
}

// summaryRows, dropRows, runRows and readingRows turn the answers into the
// rows recovery works on.
func summaryRows(list []SeriesSummary) []row {
	rows := make([]row, 0, 3*len(list))
	for _, s := range list {
		r, ok := newRow("first", s.Series)
		if !ok {
			continue
		}
		r.at, r.value = s.First.At, s.First.Value
		rows = append(rows, r)
		r.result, r.at, r.value = "last", s.Last.At, s.Last.Value
		rows = append(rows, r)
		if s.Falls {
			r.result, r.value = "mindiff", -1
			rows = append(rows, r)
		}
	}
	return rows
}

func dropRows(list []Drop, run int64) []row {
	rows := make([]row, 0, len(list))
	for _, d := range list {
		r, ok := newRow("drops", d.Series)
		if !ok {
			continue
		}
		r.at, r.value, r.v, r.run = d.At, d.Diff, d.After, run
		rows = append(rows, r)
	}
	return rows
}

func runRows(list []Run) []row {
	var rows []row
	for _, x := range list {
		r, ok := newRow("first", x.Series)
		if !ok {
			continue
		}
		r.run = x.ID
		r.at, r.value = x.First.At, x.First.Value
		rows = append(rows, r)
		r.result, r.at, r.value = "last", x.Last.At, x.Last.Value
		rows = append(rows, r)
		rows = append(rows, dropRows(x.Drops, x.ID)...)
	}
	return rows
}

func readingRows(list []Reading) []row {
	rows := make([]row, 0, len(list))
	for _, x := range list {
		r, ok := newRow("base", x.Series)
		if !ok {
			continue
		}
		r.at, r.value = x.At, x.Value
		rows = append(rows, r)
	}
	return rows
}
