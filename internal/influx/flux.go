package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/p1logger/p1logger/rollup"
)

// fluxDialect asks in Flux, through /api/v2/query. Every query runs on
// InfluxDB 1.8 (Flux 0.65) and 2.x: no array, no findRecord, filters
// written with == and =~ so that the storage layer applies them.
type fluxDialect struct{ c *Client }

// query runs q and returns its rows (see fluxCSV).
func (d fluxDialect) query(ctx context.Context, q string) ([]fluxRow, error) {
	body, err := json.Marshal(map[string]any{
		"query": q,
		"type":  "flux",
		"dialect": map[string]any{
			"annotations": []string{"datatype", "group", "default"},
			"header":      true,
			"delimiter":   ",",
		},
	})
	if err != nil {
		return nil, err
	}
	resp, err := d.c.do(ctx, http.MethodPost, "/api/v2/query?"+url.Values{"org": {d.c.cfg.Org}}.Encode(),
		strings.NewReader(string(body)), "application/json")
	if err != nil {
		return nil, fmt.Errorf("flux query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("flux query: %w", statusError(resp))
	}
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("flux query: read answer: %w", err)
	}
	var fc fluxCSV
	return fc.rows(string(text))
}

// series is the rollup.Series of r.
func (r *fluxRow) series() rollup.Series {
	return rollup.Series{Gateway: r.gw, Measurement: r.meas, Field: r.field, Channel: r.channel, Meter: r.meter}
}

// summary is, per series, the first and last reading in the period and the
// smallest difference between consecutive readings (negative where the
// register went down somewhere). Aggregates only: a month of 5-second
// readings takes seconds, where listing the drops with difference() |>
// filter() takes several times as long.
func (d fluxDialect) summary(ctx context.Context, sel rollup.Select) ([]rollup.SeriesSummary, error) {
	var b strings.Builder
	header(&b, d.c.cfg.Bucket, sel.Start, sel.Stop)
	fmt.Fprintf(&b, "data = %s\n", selectExpr(sel))
	b.WriteString(`data |> first() |> yield(name: "first")
data |> last() |> yield(name: "last")
data |> difference() |> min() |> yield(name: "mindiff")
`)
	rows, err := d.query(ctx, b.String())
	if err != nil {
		return nil, err
	}
	var sb summaryBuilder
	for i := range rows {
		r := &rows[i]
		p := rollup.Point{At: r.at, Value: r.value}
		switch r.result {
		case "first":
			sb.first(r.series(), p)
		case "last":
			sb.last(r.series(), p)
		case "mindiff":
			sb.falls(r.series(), r.value < 0)
		}
	}
	return sb.list(), nil
}

// drops lists, per series, the readings where the register went down, with
// the difference and (v) the reading itself.
func (d fluxDialect) drops(ctx context.Context, sel rollup.Select) ([]rollup.Drop, error) {
	var b strings.Builder
	header(&b, d.c.cfg.Bucket, sel.Start, sel.Stop)
	fmt.Fprintf(&b, `%s
  |> duplicate(column: "_value", as: "v")
  |> difference()
  |> filter(fn: (r) => r._value < 0.0)
  |> yield(name: "drops")
`, selectExpr(sel))
	rows, err := d.query(ctx, b.String())
	if err != nil {
		return nil, err
	}
	out := make([]rollup.Drop, 0, len(rows))
	for i := range rows {
		if r := &rows[i]; r.result == "drops" {
			out = append(out, rollup.Drop{Series: r.series(), At: r.at, Diff: r.value, After: r.v})
		}
	}
	sortDrops(out)
	return out, nil
}

// runs numbers each register's readings in time order (g) and within each
// meter (c); g − c is constant exactly over a run of consecutive readings of
// one meter, so grouping by it gives the runs.
func (d fluxDialect) runs(ctx context.Context, sel rollup.Select) ([]rollup.Run, error) {
	by := `"gateway", "_field"`
	if sel.Gas {
		by += `, "channel"`
	}
	var b strings.Builder
	header(&b, d.c.cfg.Bucket, sel.Start, sel.Stop)
	fmt.Fprintf(&b, `runs = %s
  |> group(columns: [%s])
  |> sort(columns: ["_time"])
  |> map(fn: (r) => ({r with g: 1}))
  |> cumulativeSum(columns: ["g"])
  |> group(columns: [%s, "meter_id"])
  |> sort(columns: ["_time"])
  |> map(fn: (r) => ({r with c: 1}))
  |> cumulativeSum(columns: ["c"])
  |> map(fn: (r) => ({r with run: r.g - r.c}))
  |> group(columns: [%s, "meter_id", "run"])
runs |> first() |> yield(name: "first")
runs |> last() |> yield(name: "last")
runs
  |> duplicate(column: "_value", as: "v")
  |> difference()
  |> filter(fn: (r) => r._value < 0.0)
  |> yield(name: "drops")
`, selectExpr(sel), by, by, by)
	rows, err := d.query(ctx, b.String())
	if err != nil {
		return nil, err
	}
	var rb runBuilder
	for i := range rows {
		r := &rows[i]
		p := rollup.Point{At: r.at, Value: r.value}
		switch r.result {
		case "first":
			rb.get(r.series(), r.run).First = p
		case "last":
			rb.get(r.series(), r.run).Last = p
		case "drops":
			x := rb.get(r.series(), r.run)
			x.Drops = append(x.Drops, rollup.Drop{Series: r.series(), At: r.at, Diff: r.value, After: r.v})
		}
	}
	return rb.list(), nil
}

// last returns per series the last reading.
func (d fluxDialect) last(ctx context.Context, sel rollup.Select) ([]rollup.Reading, error) {
	var b strings.Builder
	header(&b, d.c.cfg.Bucket, sel.Start, sel.Stop)
	fmt.Fprintf(&b, "%s\n  |> last()\n  |> yield(name: \"base\")\n", selectExpr(sel))
	rows, err := d.query(ctx, b.String())
	if err != nil {
		return nil, err
	}
	var lb lastBuilder
	for i := range rows {
		if r := &rows[i]; r.result == "base" {
			lb.add(r.series(), rollup.Point{At: r.at, Value: r.value})
		}
	}
	return lb.list(), nil
}

// header declares the query's parameters: the bucket and the time range
// [start, stop). InfluxDB 1.8's storage includes points at exactly stop in
// range(), where 2.x excludes them; a reading at midnight must count for the
// day it starts, not for the one it ends. So stop is written one nanosecond
// early: exact on 1.8, and on 2.x it only leaves out a point stamped one
// nanosecond before the boundary (which then counts for neither side's
// closing value but, as every reading does, for the energy that follows).
// A filter on _time would be exact on both but costs a second per month of
// 5-second readings.
func header(b *strings.Builder, bucket string, start, stop time.Time) {
	fmt.Fprintf(b, "bucket = %s\nstart = %s\nstop = %s\n", fluxString(bucket), fluxTime(start),
		fluxTime(stop.Add(-time.Nanosecond)))
}

// selectExpr reads the registers of sel in [start, stop].
func selectExpr(sel rollup.Select) string {
	return fmt.Sprintf(`from(bucket: bucket)
  |> range(start: start, stop: stop)
  |> filter(fn: (r) => %s)`, filterExpr(sel))
}

// filterExpr selects the registers of sel. The gateways are one anchored
// regular expression: InfluxDB 1.8 pushes it down to storage, as it does ==
// (contains() it does not), and its cost grows with the number of names
// where a chain of == joined by "or" grows with its square (a thousand
// gateways: 0.1 s against 6 s on 1.8, data or not).
func filterExpr(sel rollup.Select) string {
	var b strings.Builder
	b.WriteString("(")
	var p1 []string
	for _, f := range sel.Fields {
		p1 = append(p1, "r._field == "+fluxString(f))
	}
	var alts []string
	if len(p1) > 0 {
		alts = append(alts, `(r._measurement == "p1" and (`+strings.Join(p1, " or ")+"))")
	}
	if sel.Gas {
		alts = append(alts, `(r._measurement == "p1_mbus" and r.kind == "gas" and r._field == "value")`)
	}
	b.WriteString(strings.Join(alts, " or "))
	b.WriteString(") and r.gateway =~ ")
	b.WriteString(regexOneOf(sel.Gateways))
	return b.String()
}

// regexOneOf returns a regular expression literal, for Flux and InfluxQL
// alike, that matches exactly the strings of list: /^(a|b)$/, each string
// quoted so that it means itself (regexp.QuoteMeta, a "/" escaped for the
// literal, and control characters as \x{…}).
func regexOneOf(list []string) string {
	var b strings.Builder
	b.WriteString("/^(")
	for i, s := range list {
		if i > 0 {
			b.WriteByte('|')
		}
		for _, c := range regexp.QuoteMeta(s) {
			switch {
			case c == '/':
				b.WriteString(`\/`)
			case c < 0x20 || c == 0x7f:
				fmt.Fprintf(&b, `\x{%x}`, c)
			default:
				b.WriteRune(c)
			}
		}
	}
	b.WriteString(")$/")
	return b.String()
}

func fluxTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// fluxString quotes s as a Flux string literal. "${" would start an
// interpolation, so "$" is escaped as well.
func fluxString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
