package main

import (
	"io"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/cyclecheck"
	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-duration", "2m", "-outage", "30s@1m", "-gateways", "3", "-cycle", "1s", "-interval", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 2*time.Minute || o.outageFor != 30*time.Second || o.outageAt != time.Minute || o.gateways != 3 || o.mode != "stop" {
		t.Errorf("options %+v", o)
	}
	for _, args := range [][]string{
		{"-outage", "3m"},
		{"-outage", "x@1m"},
		{"-duration", "1m", "-outage", "30s@45s"},
		{"-outage-mode", "unplug"},
		{"-gateways", "0"},
		{"-cycle", "1s", "-interval", "1s"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestCheckCycles: points compared in order with the telegrams sent.
func TestCheckCycles(t *testing.T) {
	m, err := sim.NewMeter(sim.MeterConfig{Name: "check"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var sent []sim.Sent
	var rows []influxtest.Row
	for i := range 6 {
		s := m.Render(t0.Add(time.Duration(i) * time.Minute))
		sent = append(sent, s)
		rows = append(rows, rowOf(&s, t0.Add(time.Duration(i)*time.Second)))
	}
	pick := func(idx ...int) []influxtest.Row {
		var out []influxtest.Row
		for _, i := range idx {
			out = append(out, rows[i])
		}
		return out
	}
	dup := rowOf(&sent[2], t0.Add(2500*time.Millisecond)) // telegram 2 again, at another time
	tests := []struct {
		name                                           string
		rows                                           []influxtest.Row
		found, missing, duplicated, unexpected, expect int
	}{
		{"all", pick(0, 1, 2, 3, 4, 5), 6, 0, 0, 0, 6},
		{"one lost", pick(0, 1, 3, 4, 5), 5, 1, 0, 0, 6},
		{"tail lost", pick(0, 1, 2, 3), 4, 2, 0, 0, 6},
		{"duplicate", append(pick(0, 1, 2), append([]influxtest.Row{dup}, pick(3, 4, 5)...)...), 6, 0, 1, 0, 6},
		{"unexpected", append(pick(0, 1, 2, 3, 4, 5), influxtest.Row{"_time": t0.Add(time.Hour), "meter_id": "x"}), 6, 0, 0, 1, 6},
	}
	// A faulty gateway may lose telegrams; a telegram sent twice (as on a
	// new connection) may be two points, but one sent once may not.
	twice := append(sent[:3:3], sent[2:]...)
	if c := checkFaulty(append(pick(0, 2), dup, rows[4]), twice); c.Found != 4 || c.Duplicated != 0 || c.Unexpected != 0 {
		t.Errorf("faulty, a telegram sent twice: %+v", c)
	}
	if c := checkFaulty(append(pick(0, 2), dup, rows[4]), sent); c.Found != 3 || c.Duplicated != 1 || c.Unexpected != 0 {
		t.Errorf("faulty, a telegram written twice: %+v", c)
	}
	for _, tc := range tests {
		c := cyclecheck.Cycles(tc.rows, sent)
		if c.Found != tc.found || c.Missing != tc.missing || c.Duplicated != tc.duplicated || c.Unexpected != tc.unexpected || c.Expected != tc.expect {
			t.Errorf("%s: %+v", tc.name, c)
		}
	}
}

// rowOf returns the p1 row p1logger writes for s at time at, as Flux reads it.
func rowOf(s *sim.Sent, at time.Time) influxtest.Row {
	r := influxtest.Row{"_time": at, "meter_id": s.MeterID}
	for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
		d, ok := s.Get(f)
		if !ok {
			continue
		}
		if f.IsInteger() {
			r[f.Name()] = d.Int
		} else {
			r[f.Name()] = d.Float64()
		}
	}
	return r
}
