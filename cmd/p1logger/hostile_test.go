package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

// hostileLines are CRC-valid register lines that once panicked the
// batcher's encoder (Decimal.AppendText indexing 10^21) or stored wrapped
// numbers, mixed with valid registers that must still arrive. The meter id
// is hex for `KAM\`: its trailing backslash once escaped the space after
// the tag set, InfluxDB refused every batch, and the clean gateway's
// points were lost with it.
var hostileLines = []string{
	"0-0:96.1.1(4B414D5C)",
	"1-0:1.8.1(0.000000000000000001*Wh)",
	"1-0:1.8.2(000123.456*kWh)",
	"1-0:2.8.1(000001.000*kWh)",
	"1-0:1.7.0(999999999999999999*kW)",
	"1-0:2.7.0(00.100*kW)",
	"1-0:31.7.0(0.000000000000000001*mA)",
	"1-0:32.7.0(230.1*V)",
}

// hostileTelegram returns a DSMR 5 telegram stamped at (Brussels wall
// clock) with the hostile lines and a correct CRC.
func hostileTelegram(at time.Time) []byte {
	var b strings.Builder
	b.WriteString("/TST5\\2HOSTILE\r\n\r\n1-3:0.2.8(50)\r\n")
	fmt.Fprintf(&b, "0-0:1.0.0(%sW)\r\n", at.Format("060102150405"))
	for _, l := range hostileLines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("!")
	fmt.Fprintf(&b, "%04X\r\n", parser.CRC16([]byte(b.String())))
	return []byte(b.String())
}

// serveHostile listens on loopback and sends every connection a hostile
// telegram each interval, until the test ends.
func serveHostile(t *testing.T, loc *time.Location, interval time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tick := time.NewTicker(interval)
				defer tick.Stop()
				// At most a minute of telegrams per connection.
				for range int(time.Minute / interval) {
					c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write(hostileTelegram(time.Now().In(loc))); err != nil {
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestDaemonHostileValues: a gateway whose CRC-valid telegrams carry values
// that once crashed the daemon (and kept crashing it after each restart) or
// wrote wrapped numbers. The daemon keeps running, writes the clean
// gateway's points, and from the hostile telegram exactly its valid
// registers: nothing derived from a bad line, no wrapped value.
func TestDaemonHostileValues(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	loc := mustLoadLoc(t, "Europe/Brussels")
	clean := startSim(t, "clean", 100*time.Millisecond, sim.Faults{})
	hostile := serveHostile(t, loc, 100*time.Millisecond)
	addr, stop := startDaemon(t, []string{
		"P1_GATEWAYS=clean=" + clean.addr() + ",hostile=" + hostile,
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=300ms",
		"P1_ROLLUP_INTERVAL=1s",
	})
	base := "http://" + addr
	waitFor(t, 10*time.Second, "readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	waitFor(t, 10*time.Second, "points from both gateways", func() bool {
		_, m := get(t, base+"/metrics")
		return metric(t, m, `p1logger_gateway_telegrams_total{gateway="hostile"}`) >= 5 &&
			metric(t, m, `p1logger_gateway_telegrams_total{gateway="clean"}`) >= 5 &&
			metric(t, m, "p1logger_cycles_total") >= 3
	})
	_, m := get(t, base+"/metrics")
	if v := metric(t, m, `p1logger_gateway_parse_errors_total{gateway="hostile"}`); v == 0 {
		t.Error("hostile gateway: no parse errors counted")
	}
	if err := stop(); err != nil {
		t.Fatalf("daemon: %v", err)
	}

	rows := byGateway(fluxRows(t, srv, bucket, "p1"))
	if len(rows["clean"]) == 0 {
		t.Error("clean gateway: no p1 point")
	}
	for _, r := range rows["clean"] {
		if matchRow(r, clean.good()) < 0 {
			t.Errorf("clean: point %v equals no telegram sent", r)
		}
	}
	if len(rows["hostile"]) == 0 {
		t.Fatal("hostile gateway: no p1 point; its valid registers were lost")
	}
	want := map[string]any{
		"meter_id": "KAM\uFFFD", "taken_t2_kwh": 123.456, "injected_t1_kwh": 1.0, "injected_kwh": 1.0,
		"power_injected_w": 100.0, "voltage_l1_v": 230.1,
	}
	absent := []string{"taken_t1_kwh", "taken_kwh", "power_taken_w", "power_net_w", "current_l1_a"}
	for _, r := range rows["hostile"] {
		for k, v := range want {
			if got := r[k]; got != v {
				t.Errorf("hostile point: %s = %v, want %v", k, got, v)
			}
		}
		for _, k := range absent {
			if got, ok := r[k]; ok && got != nil {
				t.Errorf("hostile point: %s = %v, want no field", k, got)
			}
		}
	}
}

func mustLoadLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestDecodeHostileValues: "p1logger decode" panicked on these telegrams;
// it now reports each bad line with its number and what was expected.
func TestDecodeHostileValues(t *testing.T) {
	at := time.Date(2026, 3, 14, 18, 45, 12, 0, time.UTC)
	tests := []struct {
		name string
		line string
		msg  string
	}{
		{"18 decimals in Wh", "1-0:1.8.1(0.000000000000000001*Wh)",
			`line 5 "1-0:1.8.1(0.000000000000000001*Wh)" at byte 69: want a non-negative energy below 100000000 kWh with at most 9 digits after the point, got "0.000000000000000001*Wh"`},
		{"18 decimals in mA", "1-0:31.7.0(0.000000000000000001*mA)",
			`line 5 "1-0:31.7.0(0.000000000000000001*mA)" at byte 70: want a current below 100000 A with at most 9 digits after the point`},
		{"18 digits in kW", "1-0:1.7.0(999999999999999999*kW)", `want a power below 10000000 W`},
		{"negative energy", "1-0:2.8.2(-000001.000*kWh)", `want a non-negative energy`},
		{"40 digits", "1-0:1.8.2(" + strings.Repeat("1", 40) + "*kWh)", `want a number`},
		{"month 13", "0-1:24.2.1(261325023000W)(00001.000*m3)", `the month is not 01-12`},
	}
	for _, tc := range tests {
		var b strings.Builder
		b.WriteString("/TST5\\2HOSTILE\r\n\r\n1-3:0.2.8(50)\r\n")
		fmt.Fprintf(&b, "0-0:1.0.0(%sW)\r\n%s\r\n1-0:32.7.0(230.1*V)\r\n!", at.Format("060102150405"), tc.line)
		fmt.Fprintf(&b, "%04X\r\n", parser.CRC16([]byte(b.String())))
		out, errOut, code := decodeRun(t, []byte(b.String()), "-tz", "Europe/Brussels")
		if code != 1 || !strings.Contains(errOut, "stdin: telegram 1 at byte 0: ") || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%s: exit %d, stderr %q, want exit 1 and %q", tc.name, code, errOut, tc.msg)
		}
		_ = out
	}
}
