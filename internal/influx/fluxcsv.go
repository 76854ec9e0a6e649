package influx

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// fluxCSV reads the rows of a query's annotated CSV (the form QueryRaw
// returns with api.DefaultDialect), in one pass and without a map per
// record: recovering thousands of gateways reads millions of records, and
// the client's FluxRecord costs a map of every column for each.
//
// The CSV is a series of blocks, one per table schema: annotation rows
// ("#datatype", "#group", "#default"), a header row, then records. An empty
// cell takes the block's #default (the result column carries the yield's
// name there). A block whose header has an "error" column reports a failure
// of the query after it started answering.
type fluxCSV struct {
	strs map[string]string // each gateway, meter and channel name once
}

// column indexes of one block's header; -1 when absent.
type fluxCols struct {
	result, time, value, field, meas, gw, meter, channel, v, run, err int
}

func newFluxCols(header []string) fluxCols {
	c := fluxCols{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
	byName := map[string]*int{
		"result": &c.result, "_time": &c.time, "_value": &c.value, "_field": &c.field,
		"_measurement": &c.meas, "gateway": &c.gw, "meter_id": &c.meter, "channel": &c.channel,
		"v": &c.v, "run": &c.run, "error": &c.err,
	}
	for i, h := range header {
		if p := byName[h]; p != nil {
			*p = i
		}
	}
	return c
}

// fluxRow is one record of a query's answer, with the columns p1logger's
// queries use.
type fluxRow struct {
	result  string // the yield's name
	meas    string
	field   string
	gw      string
	meter   string
	channel string // p1_mbus only
	run     int64  // runs query only
	at      time.Time
	value   float64
	v       float64 // drops: the register after the drop
}

// rows reads text. Records whose value is not a number are skipped; a
// malformed CSV or an error block is an error.
func (fc *fluxCSV) rows(text string) ([]fluxRow, error) {
	if fc.strs == nil {
		fc.strs = map[string]string{}
	}
	r := csv.NewReader(strings.NewReader(text))
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	var (
		rows     []fluxRow
		defaults []string
		cols     fluxCols
		header   bool // the next non-annotation record is a header
		inBlock  bool
	)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("flux csv: %w", err)
		}
		if strings.HasPrefix(rec[0], "#") {
			if !header {
				defaults = defaults[:0]
			}
			if rec[0] == "#default" {
				defaults = append(defaults[:0], rec...)
				for i := range defaults {
					defaults[i] = strings.Clone(defaults[i])
				}
			}
			header = true
			continue
		}
		if header || !inBlock {
			cols = newFluxCols(rec)
			header, inBlock = false, true
			continue
		}
		cell := func(i int) string {
			if i < 0 {
				return ""
			}
			if i < len(rec) && rec[i] != "" {
				return rec[i]
			}
			if i < len(defaults) {
				return defaults[i]
			}
			return ""
		}
		if cols.err >= 0 {
			msg := cell(cols.err)
			if msg == "" {
				msg = "unknown error"
			}
			return nil, errors.New("flux query: " + msg)
		}
		x := fluxRow{result: fc.str(cell(cols.result)), meas: fc.str(cell(cols.meas)), field: fc.str(cell(cols.field)),
			gw: fc.str(cell(cols.gw)), meter: fc.str(cell(cols.meter)), channel: fc.str(cell(cols.channel))}
		var ok bool
		if x.value, ok = parseNumber(cell(cols.value)); !ok {
			continue
		}
		if x.result == "drops" {
			if x.v, ok = parseNumber(cell(cols.v)); !ok {
				continue
			}
		}
		if s := cell(cols.run); s != "" {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				x.run = n
			}
		}
		if s := cell(cols.time); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("flux csv: _time %q: %w", s, err)
			}
			x.at = t
		}
		rows = append(rows, x)
	}
}

// str returns s, the same string for the same text across a recovery: the
// rows of one gateway share its name and meter_id, and a kept meter_id
// does not hold on to the record it was read from.
func (fc *fluxCSV) str(s string) string {
	if s == "" {
		return ""
	}
	if k, ok := fc.strs[s]; ok {
		return k
	}
	k := strings.Clone(s)
	fc.strs[k] = k
	return k
}

// parseNumber reads a _value cell: a float, or an integer of a register
// written as one.
func parseNumber(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}
