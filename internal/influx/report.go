package influx

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Energy is one p1_energy point: a gateway's rollup of one period.
type Energy struct {
	Gateway string
	At      time.Time          // the local start of the period
	Fields  map[string]float64 // taken_kwh, taken_t1_kwh, ..., gas_m3
}

// Peak is one p1_peak point: a month's capacity-tariff peak.
type Peak struct {
	Gateway string
	At      time.Time // the local start of the month
	W       float64   // peak_w
}

// Energy returns the p1_energy points of period ("day" or "month") stamped
// in [start, stop), of gateway (empty: every gateway), sorted by gateway and
// time.
func (c *Client) Energy(ctx context.Context, period string, start, stop time.Time, gateway string) ([]Energy, error) {
	d, err := c.dialect(ctx)
	if err != nil {
		return nil, err
	}
	return d.energy(ctx, EnergyQuery{Period: period, Start: start, Stop: stop, Gateway: gateway})
}

// Peaks returns the p1_peak points stamped in [start, stop) of gateway
// (empty: every gateway), sorted by gateway and time.
func (c *Client) Peaks(ctx context.Context, start, stop time.Time, gateway string) ([]Peak, error) {
	d, err := c.dialect(ctx)
	if err != nil {
		return nil, err
	}
	return d.peaks(ctx, PeakQuery{Start: start, Stop: stop, Gateway: gateway})
}

// EnergyQuery and PeakQuery are the report's questions.
type EnergyQuery struct {
	Period      string
	Start, Stop time.Time
	Gateway     string
}

type PeakQuery struct {
	Start, Stop time.Time
	Gateway     string
}

type energyBuilder struct {
	m map[string]map[int64]*Energy
}

func (b *energyBuilder) add(gw string, at time.Time, field string, v float64) {
	if b.m == nil {
		b.m = map[string]map[int64]*Energy{}
	}
	byTime := b.m[gw]
	if byTime == nil {
		byTime = map[int64]*Energy{}
		b.m[gw] = byTime
	}
	e := byTime[at.UnixNano()]
	if e == nil {
		e = &Energy{Gateway: gw, At: at, Fields: map[string]float64{}}
		byTime[at.UnixNano()] = e
	}
	e.Fields[field] = v
}

func (b *energyBuilder) list() []Energy {
	var out []Energy
	for _, gw := range sortedKeys(b.m) {
		start := len(out)
		for _, e := range b.m[gw] {
			out = append(out, *e)
		}
		part := out[start:]
		sort.Slice(part, func(i, j int) bool { return part[i].At.Before(part[j].At) })
	}
	return out
}

func sortPeaks(list []Peak) {
	sort.Slice(list, func(i, j int) bool {
		if list[i].Gateway != list[j].Gateway {
			return list[i].Gateway < list[j].Gateway
		}
		return list[i].At.Before(list[j].At)
	})
}

// The Flux side. The time filter makes 1.8's range() exclude stop as 2.x
// does: a month's point at the next month's start is not this month's.
func (d fluxDialect) energy(ctx context.Context, q EnergyQuery) ([]Energy, error) {
	var b strings.Builder
	header(&b, d.c.cfg.Bucket, q.Start, q.Stop)
	fmt.Fprintf(&b, `from(bucket: bucket)
  |> range(start: start, stop: stop)
  |> filter(fn: (r) => r._measurement == "p1_energy" and r.period == %s%s)
  |> yield(name: "energy")
`, fluxString(q.Period), fluxGateway(q.Gateway))
	rows, err := d.query(ctx, b.String())
	if err != nil {
		return nil, err
	}
	var eb energyBuilder
	for _, r := range rows {
		if r.meas == "p1_energy" && !r.at.Before(q.Start) && r.at.Before(q.Stop) {
			eb.add(r.gw, r.at, r.field, r.value)
		}
	}
	return eb.list(), nil
}

func (d fluxDialect) peaks(ctx context.Context, q PeakQuery) ([]Peak, error) {
	var b strings.Builder
	header(&b, d.c.cfg.Bucket, q.Start, q.Stop)
	fmt.Fprintf(&b, `from(bucket: bucket)
  |> range(start: start, stop: stop)
  |> filter(fn: (r) => r._measurement == "p1_peak" and r._field == "peak_w"%s)
  |> yield(name: "peaks")
`, fluxGateway(q.Gateway))
	rows, err := d.query(ctx, b.String())
	if err != nil {
		return nil, err
	}
	var out []Peak
	for _, r := range rows {
		if r.meas == "p1_peak" && !r.at.Before(q.Start) && r.at.Before(q.Stop) {
			out = append(out, Peak{Gateway: r.gw, At: r.at, W: r.value})
		}
	}
	sortPeaks(out)
	return out, nil
}

func fluxGateway(gw string) string {
	if gw == "" {
		return ""
	}
	return " and r.gateway == " + fluxString(gw)
}

// The InfluxQL side.
func (d influxQLDialect) energy(ctx context.Context, q EnergyQuery) ([]Energy, error) {
	w := `"period" = ` + qlString(q.Period) + ` AND ` + timeRange(q.Start, q.Stop) + qlGateway(q.Gateway)
	var eb energyBuilder
	err := d.query(ctx, []string{`SELECT * FROM "p1_energy" WHERE ` + w + ` GROUP BY *`}, func(_ int, s *qlSeries) error {
		for _, row := range s.Values {
			for i, col := range s.Columns {
				if i == 0 {
					continue
				}
				if p, ok := point(row, i); ok {
					eb.add(s.Tags["gateway"], p.At, col, p.Value)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return eb.list(), nil
}

func (d influxQLDialect) peaks(ctx context.Context, q PeakQuery) ([]Peak, error) {
	var out []Peak
	stmt := `SELECT "peak_w" FROM "p1_peak" WHERE ` + timeRange(q.Start, q.Stop) + qlGateway(q.Gateway) + ` GROUP BY *`
	err := d.query(ctx, []string{stmt}, func(_ int, s *qlSeries) error {
		for _, row := range s.Values {
			if p, ok := point(row, 1); ok {
				out = append(out, Peak{Gateway: s.Tags["gateway"], At: p.At, W: p.Value})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortPeaks(out)
	return out, nil
}

func qlGateway(gw string) string {
	if gw == "" {
		return ""
	}
	return ` AND "gateway" =~ ` + regexOneOf([]string{gw})
}

// qlString quotes s as an InfluxQL string literal.
func qlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
