package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/p1logger/p1logger/rollup"
)

// influxQLDialect asks in InfluxQL, through the v1 /query API: native on
// 1.8 and InfluxDB 3, and on 2.7+ through the bucket's DBRP mapping
// (database = bucket, retention policy autogen; Cloud needs the mapping
// made by hand). Only what all three implement is used: SELECT with
// first, last, min, difference, subqueries, regular expressions on tags,
// tag columns next to a field, GROUP BY *, epoch=ns, chunked answers.
//
// InfluxQL has no "yield": each question is one or more statements sent in
// one request, and the answer's statement_id says which is which.
type influxQLDialect struct{ c *Client }

// qlSeries is one series (or, in a chunked answer, one piece of it) of a
// statement's result.
type qlSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

type qlAnswer struct {
	Results []struct {
		StatementID int        `json:"statement_id"`
		Series      []qlSeries `json:"series"`
		Error       string     `json:"error"`
	} `json:"results"`
	Error string `json:"error"`
}

// chunkSize is the rows per chunk asked for: the answer is decoded one
// chunk at a time, so memory follows the chunk, not the answer (which
// answerlimit bounds as a whole).
const chunkSize = 10000

// query sends stmts in one request and calls each for every series piece of
// every statement's result, in the order the server sends them. The
// answer may be chunked or not. A statement's error is the query's error.
func (d influxQLDialect) query(ctx context.Context, stmts []string, each func(stmt int, s *qlSeries) error) error {
	form := url.Values{
		"db":         {d.c.db},
		"q":          {strings.Join(stmts, ";\n")},
		"epoch":      {"ns"},
		"chunked":    {"true"},
		"chunk_size": {strconv.Itoa(chunkSize)},
	}
	if d.c.rp != "" {
		form.Set("rp", d.c.rp)
	}
	resp, err := d.c.do(ctx, http.MethodPost, "/query", strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
	if err != nil {
		return fmt.Errorf("influxql query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("influxql query: %w", statusError(resp))
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	for {
		var a qlAnswer
		err := dec.Decode(&a)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("influxql query: read answer: %w", err)
		}
		if a.Error != "" {
			return fmt.Errorf("influxql query: %s", oneLine(a.Error))
		}
		for _, r := range a.Results {
			if r.Error != "" {
				return fmt.Errorf("influxql query: statement %d: %s", r.StatementID, oneLine(r.Error))
			}
			if r.StatementID < 0 || r.StatementID >= len(stmts) {
				return fmt.Errorf("influxql query: answer to statement %d of %d", r.StatementID, len(stmts))
			}
			for i := range r.Series {
				if err := each(r.StatementID, &r.Series[i]); err != nil {
					return err
				}
			}
		}
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// register is one field of one measurement that a question reads.
type register struct {
	meas, field string
}

func registers(sel rollup.Select) []register {
	var out []register
	for _, f := range sel.Fields {
		out = append(out, register{rollup.MeasurementP1, f})
	}
	if sel.Gas {
		out = append(out, register{rollup.MeasurementMBus, rollup.MBusValue})
	}
	return out
}

// where is the condition of sel's readings of reg in [start, stop).
func where(reg register, gws []string, start, stop time.Time) string {
	w := `"gateway" =~ ` + regexOneOf(gws) + ` AND ` + timeRange(start, stop)
	if reg.meas == rollup.MeasurementMBus {
		w += ` AND "kind" = 'gas'`
	}
	return w
}

func timeRange(start, stop time.Time) string {
	return "time >= " + qlTime(start) + " AND time < " + qlTime(stop)
}

func qlTime(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'" }

// qlIdent quotes an InfluxQL identifier.
func qlIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// seriesOf is the rollup.Series of s's tags for reg.
func seriesOf(reg register, s *qlSeries) rollup.Series {
	out := rollup.Series{Gateway: s.Tags["gateway"], Measurement: reg.meas, Field: reg.field, Meter: s.Tags["meter_id"]}
	if reg.meas == rollup.MeasurementMBus {
		out.Channel = s.Tags["channel"]
	}
	return out
}

// cellTime and cellNumber read a row's cells; ok is false for null or a
// value of another type.
func cellTime(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return unixNano(ns), true
}

func cellNumber(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	return f, err == nil
}

// point reads the time and the column col of row.
func point(row []any, col int) (rollup.Point, bool) {
	if len(row) <= col || col < 1 {
		return rollup.Point{}, false
	}
	at, ok1 := cellTime(row[0])
	v, ok2 := cellNumber(row[col])
	return rollup.Point{At: at, Value: v}, ok1 && ok2
}

func (d influxQLDialect) summary(ctx context.Context, sel rollup.Select) ([]rollup.SeriesSummary, error) {
	regs := registers(sel)
	var stmts []string
	for _, reg := range regs {
		w := where(reg, sel.Gateways, sel.Start, sel.Stop)
		from := qlIdent(reg.meas)
		f := qlIdent(reg.field)
		stmts = append(stmts,
			fmt.Sprintf(`SELECT first(%s) FROM %s WHERE %s GROUP BY *`, f, from, w),
			fmt.Sprintf(`SELECT last(%s) FROM %s WHERE %s GROUP BY *`, f, from, w),
			fmt.Sprintf(`SELECT min("d") FROM (SELECT difference(%s) AS "d" FROM %s WHERE %s GROUP BY *) WHERE %s GROUP BY *`,
				f, from, w, timeRange(sel.Start, sel.Stop)))
	}
	var sb summaryBuilder
	err := d.query(ctx, stmts, func(stmt int, s *qlSeries) error {
		reg := regs[stmt/3]
		for _, row := range s.Values {
			p, ok := point(row, 1)
			if !ok {
				continue
			}
			switch stmt % 3 {
			case 0:
				sb.first(seriesOf(reg, s), p)
			case 1:
				sb.last(seriesOf(reg, s), p)
			case 2:
				sb.falls(seriesOf(reg, s), p.Value < 0)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sb.list(), nil
}

// maxStatements bounds the statements of one request.
const maxStatements = 500

// drops takes two steps: the drops with their differences (a subquery:
// InfluxQL cannot select a field next to difference() of it), then the
// reading at each drop, one small statement each.
func (d influxQLDialect) drops(ctx context.Context, sel rollup.Select) ([]rollup.Drop, error) {
	regs := registers(sel)
	var stmts []string
	for _, reg := range regs {
		stmts = append(stmts, fmt.Sprintf(`SELECT "d" FROM (SELECT difference(%s) AS "d" FROM %s WHERE %s GROUP BY *) WHERE "d" < 0 AND %s GROUP BY *`,
			qlIdent(reg.field), qlIdent(reg.meas), where(reg, sel.Gateways, sel.Start, sel.Stop), timeRange(sel.Start, sel.Stop)))
	}
	type found struct {
		reg  register
		tags map[string]string
		d    rollup.Drop
	}
	var list []found
	err := d.query(ctx, stmts, func(stmt int, s *qlSeries) error {
		for _, row := range s.Values {
			p, ok := point(row, 1)
			if !ok {
				continue
			}
			list = append(list, found{regs[stmt], s.Tags, rollup.Drop{Series: seriesOf(regs[stmt], s), At: p.At, Diff: p.Value}})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]rollup.Drop, 0, len(list))
	for start := 0; start < len(list); start += maxStatements {
		part := list[start:min(len(list), start+maxStatements)]
		stmts = stmts[:0]
		for _, x := range part {
			stmts = append(stmts, fmt.Sprintf(`SELECT %s FROM %s WHERE %s GROUP BY *`, qlIdent(x.reg.field), qlIdent(x.reg.meas),
				where(x.reg, []string{x.d.Gateway}, x.d.At, x.d.At.Add(time.Nanosecond))))
		}
		err := d.query(ctx, stmts, func(stmt int, s *qlSeries) error {
			x := &part[stmt]
			if !sameTags(s.Tags, x.tags) {
				return nil
			}
			for _, row := range s.Values {
				if p, ok := point(row, 1); ok {
					x.d.After = p.Value
					out = append(out, x.d)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sortDrops(out)
	return out, nil
}

func sameTags(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// runs reads each register of each gateway in time order, with its
// meter_id (and channel) as columns, and numbers the readings as the Flux
// query does: g counts the register's readings, c those of each meter,
// and g − c is constant over a run. InfluxQL cannot group by a running
// count, so this streams every reading: the runs question is asked only
// for gateways whose meter_id came back, and each answer (one gateway and
// register) stays within the answer limit for a month of 5-second readings.
func (d influxQLDialect) runs(ctx context.Context, sel rollup.Select) ([]rollup.Run, error) {
	var rb runBuilder
	for _, gw := range sel.Gateways {
		for _, reg := range registers(sel) {
			cols := `"meter_id"`
			if reg.meas == rollup.MeasurementMBus {
				cols += `, "channel"`
			}
			stmt := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s`, qlIdent(reg.field), cols, qlIdent(reg.meas),
				where(reg, []string{gw}, sel.Start, sel.Stop))
			type seq struct {
				g int64
				c map[string]int64
			}
			seqs := map[string]*seq{} // by channel
			err := d.query(ctx, []string{stmt}, func(_ int, s *qlSeries) error {
				meterCol, chanCol := column(s.Columns, "meter_id"), column(s.Columns, "channel")
				valCol := column(s.Columns, reg.field)
				for _, row := range s.Values {
					p, ok := point(row, valCol)
					if !ok {
						continue
					}
					series := rollup.Series{Gateway: gw, Measurement: reg.meas, Field: reg.field,
						Meter: cellString(row, meterCol), Channel: cellString(row, chanCol)}
					q := seqs[series.Channel]
					if q == nil {
						q = &seq{c: map[string]int64{}}
						seqs[series.Channel] = q
					}
					q.g++
					q.c[series.Meter]++
					x := rb.get(series, q.g-q.c[series.Meter])
					if x.First.At.IsZero() {
						x.First = p
					} else if p.Value < x.Last.Value {
						x.Drops = append(x.Drops, rollup.Drop{Series: series, At: p.At, Diff: p.Value - x.Last.Value, After: p.Value})
					}
					x.Last = p
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return rb.list(), nil
}

func column(cols []string, name string) int {
	for i, c := range cols {
		if c == name {
			return i
		}
	}
	return -1
}

func cellString(row []any, col int) string {
	if col < 0 || col >= len(row) {
		return ""
	}
	s, _ := row[col].(string)
	return s
}

func (d influxQLDialect) last(ctx context.Context, sel rollup.Select) ([]rollup.Reading, error) {
	regs := registers(sel)
	var stmts []string
	for _, reg := range regs {
		stmts = append(stmts, fmt.Sprintf(`SELECT last(%s) FROM %s WHERE %s GROUP BY *`, qlIdent(reg.field), qlIdent(reg.meas),
			where(reg, sel.Gateways, sel.Start, sel.Stop)))
	}
	var lb lastBuilder
	err := d.query(ctx, stmts, func(stmt int, s *qlSeries) error {
		for _, row := range s.Values {
			if p, ok := point(row, 1); ok {
				lb.add(seriesOf(regs[stmt], s), p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lb.list(), nil
}

// sortedKeys returns m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
