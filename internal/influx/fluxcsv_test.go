package influx

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/influxdata/influxdb-client-go/v2/api"

	"github.com/p1logger/p1logger/rollup"
)

// clientRows reads a query's annotated CSV with the official client's
// decoder (FluxRecord), the way the rollup read it before fluxCSV: the
// reference fluxCSV is held to.
func clientRows(text string) ([]fluxRow, error) {
	res := api.NewQueryTableResult(io.NopCloser(strings.NewReader(text)))
	defer res.Close()
	var rows []fluxRow
	for res.Next() {
		rec := res.Record()
		r := fluxRow{result: rec.Result(), at: rec.Time(), meas: rec.Measurement(), field: rec.Field()}
		r.gw, _ = rec.ValueByKey("gateway").(string)
		r.meter, _ = rec.ValueByKey("meter_id").(string)
		r.channel, _ = rec.ValueByKey("channel").(string)
		var ok bool
		if r.value, ok = clientNumber(rec.Value()); !ok {
			continue
		}
		if r.result == "drops" {
			if r.v, ok = clientNumber(rec.ValueByKey("v")); !ok {
				continue
			}
		}
		if n, ok := rec.ValueByKey("run").(int64); ok {
			r.run = n
		}
		rows = append(rows, r)
	}
	return rows, res.Err()
}

func clientNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

// TestFluxCSV reads annotated CSV shaped like InfluxDB's answers: blocks
// with their own annotations, the yield's name only in #default, quoted
// names, integer and float values, and records the rollup does not use.
func TestFluxCSV(t *testing.T) {
	text := strings.Join([]string{
		"#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string",
		"#group,false,false,true,true,false,false,true,true,true,true",
		"#default,first,,,,,,,,,",
		",result,table,_start,_stop,_time,_value,_field,_measurement,gateway,meter_id",
		`,,0,2026-11-01T00:00:00Z,2026-11-24T00:00:00Z,2026-11-01T00:00:05Z,1234.5,taken_kwh,p1,"roof, ""east""",M1`,
		",,1,2026-11-01T00:00:00Z,2026-11-24T00:00:00Z,2026-11-01T00:00:05.123456789Z,7,injected_kwh,p1,b,",
		",,2,2026-11-01T00:00:00Z,2026-11-24T00:00:00Z,2026-11-01T00:00:05Z,3,power_w,p1,b,M2",
		",,3,2026-11-01T00:00:00Z,2026-11-24T00:00:00Z,2026-11-01T00:00:05Z,4,taken_kwh,p1_other,b,M2",
		"",
		"#datatype,string,long,dateTime:RFC3339,double,string,string,string,string,string,double",
		"#group,false,false,false,false,true,true,true,true,true,false",
		"#default,drops,,,,,,,,,",
		",result,table,_time,_value,_field,_measurement,gateway,meter_id,channel,v",
		",,0,2026-11-02T10:00:00Z,-12.5,value,p1_mbus,\"line\nbreak\",G1,1,0.25",
		",,0,2026-11-02T11:00:00Z,-1,value,p1_mbus,\"line\nbreak\",G1,1,",
		"",
		"#datatype,string,long,dateTime:RFC3339,long,string,string,string,long",
		"#group,false,false,false,false,true,true,true,false",
		"#default,runs,,,,,,,",
		",result,table,_time,_value,_field,_measurement,gateway,run",
		",,0,2026-11-03T00:00:00Z,42,taken_t1_kwh,p1,c,3",
		"",
	}, "\r\n")
	var fc fluxCSV
	rows, err := fc.rows(text)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		x, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	want := []fluxRow{
		{result: "first", meas: "p1", field: "taken_kwh", gw: `roof, "east"`, meter: "M1", value: 1234.5, at: at("2026-11-01T00:00:05Z")},
		{result: "first", meas: "p1", field: "injected_kwh", gw: "b", value: 7, at: at("2026-11-01T00:00:05.123456789Z")},
		{result: "first", meas: "p1", field: "power_w", gw: "b", meter: "M2", value: 3, at: at("2026-11-01T00:00:05Z")},
		{result: "first", meas: "p1_other", field: "taken_kwh", gw: "b", meter: "M2", value: 4, at: at("2026-11-01T00:00:05Z")},
		{result: "drops", meas: "p1_mbus", field: "value", gw: "line\nbreak", meter: "G1", channel: "1", value: -12.5, v: 0.25, at: at("2026-11-02T10:00:00Z")},
		{result: "runs", meas: "p1", field: "taken_t1_kwh", gw: "c", value: 42, run: 3, at: at("2026-11-03T00:00:00Z")},
	}
	if d := rowDiffs(rows, want); d != "" {
		t.Fatal(d)
	}
	// The client's own decoder reads the same rows.
	ref, err := clientRows(text)
	if err != nil {
		t.Fatalf("client decoder: %v", err)
	}
	if d := rowDiffs(rows, ref); d != "" {
		t.Fatalf("fluxCSV against the client's decoder:\n%s", d)
	}
	// A name read again is the same string, not a copy per record.
	if r2, _ := fc.rows(text); unsafe.StringData(r2[4].gw) != unsafe.StringData(rows[4].gw) {
		t.Error("a gateway name read twice is two strings")
	}

	for _, c := range []struct{ name, text, want string }{
		{"error block", "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,\"panic: out of memory\",897\n", "flux query: panic: out of memory"},
		{"error after rows", "#datatype,string,long,dateTime:RFC3339,double,string,string,string\n#group,false,false,false,false,true,true,true\n#default,last,,,,,,\n,result,table,_time,_value,_field,_measurement,gateway\n,,0,2026-11-01T00:00:00Z,1,taken_kwh,p1,a\n\n#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,timeout,\n", "flux query: timeout"},
		{"bad quote", "#default,first,,\n,result,table,gateway\n,,0,\"a\"b\n", "flux csv"},
		{"bad time", "#default,first,,,,,\n,result,table,_time,_value,_field,_measurement\n,,0,yesterday,1,taken_kwh,p1\n", `_time "yesterday"`},
	} {
		_, err := fc.rows(c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if rows, err := fc.rows(""); err != nil || len(rows) != 0 {
		t.Errorf("empty answer: %v rows, %v", rows, err)
	}
}

// rowDiffs says how got differs from want, row by row; "" when alike.
func rowDiffs(got, want []fluxRow) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d rows, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	var b strings.Builder
	for i := range want {
		g, w := got[i], want[i]
		sameAt := g.at.Equal(w.at)
		g.at, w.at = time.Time{}, time.Time{}
		if !sameAt || g != w {
			fmt.Fprintf(&b, "row %d:\n got %+v at %v\nwant %+v at %v\n", i, g, got[i].at, w, want[i].at)
		}
	}
	return b.String()
}

// recoveryAnswer is a series query's answer for n gateways: first, last
// and mindiff of six p1 registers and gas each.
func recoveryAnswer(n int) string {
	var b strings.Builder
	for _, yield := range []string{"first", "last", "mindiff"} {
		b.WriteString("#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string,string\n")
		b.WriteString("#group,false,false,true,true,false,false,true,true,true,true,true\n")
		b.WriteString("#default," + yield + ",,,,,,,,,,\n")
		b.WriteString(",result,table,_start,_stop,_time,_value,_field,_measurement,gateway,meter_id,channel\n")
		table := 0
		for g := range n {
			for f, name := range append(rollup.P1Fields(), "value") {
				meas, ch := "p1", ""
				if name == "value" {
					meas, name, ch = "p1_mbus", "value", "1"
				}
				fmt.Fprintf(&b, ",,%d,2026-11-01T00:00:00Z,2026-11-24T12:00:00Z,2026-11-%02dT10:00:05.123Z,%d.%03d,%s,%s,gw%05d,1SAG%010d,%s\n",
					table, 1+g%23, 1000+g, f, name, meas, g, g, ch)
				table++
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// BenchmarkFluxCSV reads a thousand gateways' series answer with fluxCSV
// and, for comparison, with the client's decoder.
func BenchmarkFluxCSV(b *testing.B) {
	text := recoveryAnswer(1000)
	b.Run("fluxCSV", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			var fc fluxCSV
			if rows, err := fc.rows(text); err != nil || len(rows) != 21000 {
				b.Fatal(len(rows), err)
			}
		}
	})
	b.Run("client", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			if rows, err := clientRows(text); err != nil || len(rows) != 21000 {
				b.Fatal(len(rows), err)
			}
		}
	})
}
