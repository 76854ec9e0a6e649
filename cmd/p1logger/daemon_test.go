package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

func TestMain(m *testing.M) { os.Exit(influxtest.Main(m)) }

// simGateway is a simulated gateway on loopback that remembers what it sent.
type simGateway struct {
	srv  *sim.Server
	mu   sync.Mutex
	sent []sim.Sent
}

func startSim(t *testing.T, name string, interval time.Duration, faults sim.Faults) *simGateway {
	t.Helper()
	g := &simGateway{}
	srv, err := sim.NewServer(sim.Config{
		Interval: interval,
		Meter:    sim.MeterConfig{Name: name, Water: true, SolarKWp: 4},
		Faults:   faults,
		LogSize:  -1,
		OnSend: func(s sim.Sent) {
			g.mu.Lock()
			g.sent = append(g.sent, s)
			g.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	g.srv = srv
	runSim(t, srv)
	return g
}

// runSim runs srv until the test ends, or until the returned stop is
// called, which waits up to 10 s for it to stop.
func runSim(t *testing.T, srv *sim.Server) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("sim server did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (g *simGateway) addr() string { return g.srv.Addr().String() }

// good returns the telegrams sent whole and with a correct CRC.
func (g *simGateway) good() []sim.Sent {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []sim.Sent
	for _, s := range g.sent {
		if !s.BadCRC && !s.Cut && s.Written == len(s.Frame) {
			out = append(out, s)
		}
	}
	return out
}

// matchRow returns the index of the last sent telegram whose every p1 field
// equals the row's (and which carries no field the row lacks), or -1.
func matchRow(row influxtest.Row, sent []sim.Sent) int {
next:
	for i := len(sent) - 1; i >= 0; i-- {
		s := &sent[i]
		if row["meter_id"] != s.MeterID {
			continue
		}
		for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
			d, ok := s.Get(f)
			got := row[f.Name()]
			if !ok {
				if got != nil {
					continue next
				}
				continue
			}
			var want any = d.Float64()
			if f.IsInteger() {
				want = d.Int
			}
			if got != want {
				continue next
			}
		}
		return i
	}
	return -1
}

func fluxRows(t *testing.T, srv *influxtest.Server, bucket, measurement string) []influxtest.Row {
	t.Helper()
	q := fmt.Sprintf(`from(bucket: %q) |> range(start: 2000-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %q)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`, bucket, measurement)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := srv.Flux(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func byGateway(rows []influxtest.Row) map[string][]influxtest.Row {
	m := map[string][]influxtest.Row{}
	for _, r := range rows {
		gw, _ := r["gateway"].(string)
		m[gw] = append(m[gw], r)
	}
	return m
}

// startDaemon runs daemon with the configuration env and returns its HTTP
// address and a function that stops it (as SIGTERM does) and returns its error.
func startDaemon(t *testing.T, env []string) (string, func() error) {
	t.Helper()
	return startDaemonTo(t, env, testWriter{t})
}

// startDaemonTo is startDaemon with the daemon's log written to logw.
func startDaemonTo(t *testing.T, env []string, logw io.Writer) (string, func() error) {
	t.Helper()
	cfg, err := loadConfig(append([]string{"P1_HTTP_ADDR=127.0.0.1:0", "P1_TIMEZONE=Europe/Brussels"}, env...))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- daemon(ctx, cfg, log, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("daemon stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not listen")
	}
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("daemon did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample name{labels} in Prometheus text.
func metric(t *testing.T, text, sample string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no sample %s in metrics:\n%s", sample, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemon runs the daemon against two simulated gateways — one clean,
// one with bad CRCs, garbage, cut frames and disconnects — and a real
// InfluxDB 1.8, checks the HTTP endpoints while it runs, stops it as SIGTERM
// would, and reads every point back with Flux.
func TestDaemon(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	clean := startSim(t, "clean", 100*time.Millisecond, sim.Faults{})
	faulty := startSim(t, "faulty", 100*time.Millisecond, sim.Faults{
		BadCRCEvery: 3, GarbageEvery: 2, CutEvery: 5, DisconnectAfter: 11,
	})
	addr, stop := startDaemon(t, []string{
		"P1_GATEWAYS=clean=" + clean.addr() + ",faulty=" + faulty.addr(),
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=300ms",
		"P1_ROLLUP_INTERVAL=1s",
		"P1_IDLE_TIMEOUT=2s",
	})
	base := "http://" + addr
	waitFor(t, 10*time.Second, "readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	time.Sleep(3 * time.Second)
	// The faulty gateway closes after its 11th telegram, often in the same
	// segment as the telegram's last bytes; the reader finds such a close up
	// to probeAfter (2 s) after those bytes, then reconnects. Wait for that,
	// then one more health interval so that a p1_gateway point shows it.
	waitFor(t, 10*time.Second, "faulty gateway reconnect", func() bool {
		_, m := get(t, base+"/metrics")
		return metric(t, m, `p1logger_gateway_reconnects_total{gateway="faulty"}`) > 0
	})
	time.Sleep(1500 * time.Millisecond)

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	_, m := get(t, base+"/metrics")
	if v := metric(t, m, `p1logger_gateway_crc_errors_total{gateway="faulty"}`); v == 0 {
		t.Error("faulty gateway: no CRC errors in /metrics")
	}
	if v := metric(t, m, `p1logger_gateway_reconnects_total{gateway="faulty"}`); v == 0 {
		t.Error("faulty gateway: no reconnects in /metrics")
	}
	if v := metric(t, m, `p1logger_gateway_crc_errors_total{gateway="clean"}`); v != 0 {
		t.Errorf("clean gateway: %v CRC errors", v)
	}
	if v := metric(t, m, `p1logger_gateway_telegrams_total{gateway="clean"}`); v < 20 {
		t.Errorf("clean gateway: %v telegrams in 3 s at 100 ms", v)
	}
	if v := metric(t, m, `p1logger_gateway_last_telegram_age_seconds{gateway="clean"}`); v > 1 {
		t.Errorf("clean gateway: last telegram %vs ago", v)
	}
	if v := metric(t, m, `p1logger_points_written_total`); v == 0 {
		t.Error("no points written")
	}
	if !strings.Contains(m, `p1logger_write_duration_seconds_bucket{le="+Inf"}`) {
		t.Error("no write latency histogram")
	}
	code, js := get(t, base+"/api/v1/gateways")
	var api struct {
		Gateways []struct {
			Name      string         `json:"name"`
			Source    string         `json:"source"`
			Address   string         `json:"address"`
			Connected bool           `json:"connected"`
			Telegrams int64          `json:"telegrams"`
			Latest    map[string]any `json:"latest"`
		} `json:"gateways"`
	}
	if err := json.Unmarshal([]byte(js), &api); code != 200 || err != nil || len(api.Gateways) != 2 {
		t.Fatalf("/api/v1/gateways: %d %v\n%s", code, err, js)
	}
	if g := api.Gateways[0]; g.Name != "clean" || g.Source != "tcp" || g.Address != clean.addr() || !g.Connected || g.Telegrams == 0 ||
		g.Latest["crc"] != "ok" || g.Latest["taken_kwh"] == nil || g.Latest["meter_id"] == nil {
		t.Errorf("/api/v1/gateways clean entry: %+v", g)
	}
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "faulty") {
		t.Errorf("status page: %d\n%s", code, body)
	}

	_, m = get(t, base+"/metrics")
	cyclesBefore := metric(t, m, "p1logger_cycles_total")
	if err := stop(); err != nil {
		t.Fatalf("daemon: %v", err)
	}

	rows := byGateway(fluxRows(t, srv, bucket, "p1"))
	cleanSent, faultySent := clean.good(), faulty.good()
	t.Logf("cycles ≥ %v; clean: %d sent, %d points; faulty: %d good sent, %d points",
		cyclesBefore, len(cleanSent), len(rows["clean"]), len(faultySent), len(rows["faulty"]))
	// One point per cycle for the clean gateway (plus the final flush).
	if n := float64(len(rows["clean"])); n < cyclesBefore-1 || n > cyclesBefore+2 {
		t.Errorf("clean: %v points for %v cycles", n, cyclesBefore)
	}
	for _, gw := range []string{"clean", "faulty"} {
		sent := cleanSent
		if gw == "faulty" {
			sent = faultySent
		}
		if len(rows[gw]) == 0 {
			t.Errorf("%s: no p1 point", gw)
		}
		for _, r := range rows[gw] {
			if matchRow(r, sent) < 0 {
				t.Errorf("%s: point %v equals no telegram sent whole with a good CRC", gw, r)
			}
		}
	}
	// The faulty gateway's health points show its errors.
	health := byGateway(fluxRows(t, srv, bucket, "p1_gateway"))
	if h := health["faulty"]; len(h) == 0 || h[len(h)-1]["crc_errors"].(int64) == 0 || h[len(h)-1]["reconnects"].(int64) == 0 {
		t.Errorf("faulty p1_gateway points: %v", h)
	}
	// Gas captures, peaks and the rollup's day and month points arrived.
	for _, m := range []string{"p1_mbus", "p1_peak", "p1_energy"} {
		if got := byGateway(fluxRows(t, srv, bucket, m)); len(got["clean"]) == 0 {
			t.Errorf("no %s point for the clean gateway", m)
		}
	}
}

// TestDaemonInfluxDownAtStart: InfluxDB is down when p1logger starts; it
// keeps reading, reports not ready, and delivers every cycle once InfluxDB
// is back.
func TestDaemonInfluxDownAtStart(t *testing.T) {
	srv := influxtest.New(t)
	bucket := srv.NewBucket(t)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	clean := startSim(t, "outage", 100*time.Millisecond, sim.Faults{})
	addr, stop := startDaemon(t, []string{
		"P1_GATEWAYS=home=" + clean.addr(),
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=250ms",
	})
	base := "http://" + addr
	time.Sleep(2 * time.Second)
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "influxdb unreachable") {
		t.Errorf("/readyz with InfluxDB down: %d %q", code, body)
	}
	_, m := get(t, base+"/metrics")
	if metric(t, m, "p1logger_write_failing") != 1 || metric(t, m, "p1logger_write_buffer_bytes") == 0 {
		t.Errorf("metrics during the outage do not show it:\n%s", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "buffer drained", func() bool {
		_, m := get(t, base+"/metrics")
		return metric(t, m, "p1logger_write_buffer_bytes") == 0 && metric(t, m, "p1logger_write_failing") == 0
	})
	_, m = get(t, base+"/metrics")
	cycles := metric(t, m, "p1logger_cycles_total")
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after recovery: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rows := fluxRows(t, srv, bucket, "p1")
	sent := clean.good()
	if n := float64(len(rows)); n < cycles-1 {
		t.Errorf("%v points for %v cycles: cycles of the outage lost", n, cycles)
	}
	for _, r := range rows {
		if matchRow(r, sent) < 0 {
			t.Errorf("point %v equals no telegram sent", r)
		}
	}
}

// TestBinarySIGTERM builds p1logger, runs it with a cycle of an hour, and
// sends SIGTERM: it must exit 0 after writing the cycle it was in.
func TestBinarySIGTERM(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	gw := startSim(t, "sigterm", 100*time.Millisecond, sim.Faults{})
	bin := filepath.Join(t.TempDir(), "p1logger")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"P1_GATEWAYS=home=" + gw.addr(),
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=1h",
		"P1_HTTP_ADDR=",
		"P1_LOG_FORMAT=json",
		"P1_TIMEZONE=Europe/Brussels",
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "telegrams to flow", func() bool { return len(gw.good()) >= 10 })
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no exit within 20s of SIGTERM\n%s", logs.String())
	}
	rows := fluxRows(t, srv, bucket, "p1")
	if len(rows) != 1 {
		t.Fatalf("%d p1 points after SIGTERM, want the one of the final flush\n%s", len(rows), logs.String())
	}
	sent := gw.good()
	i := matchRow(rows[0], sent)
	if i < 0 {
		t.Fatalf("final point %v equals no telegram sent", rows[0])
	}
	// It is the newest telegram received: at most the few sent after SIGTERM
	// came later.
	if later := len(sent) - 1 - i; later > 3 {
		t.Errorf("final point is %d telegrams older than the last sent", later)
	}
	if !strings.Contains(logs.String(), `"msg":"p1logger stopped"`) {
		t.Errorf("no stop log line:\n%s", logs.String())
	}
}
