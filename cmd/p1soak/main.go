// Command p1soak proves, for a bounded time, that p1logger loses no cycle
// through an InfluxDB outage. Run it from the repository by hand:
//
//	go run ./cmd/p1soak -duration 10m -outage 3m@4m
//
// It starts its own InfluxDB 1.8 (as the tests do, internal/influxtest),
// N clean simulated gateways and M faulty ones (bad CRCs, garbage, cut
// frames, disconnects), builds p1logger and runs it as a separate process
// with a durable spool, and takes InfluxDB away for the outage (-outage
// D@T: down for D from T after the start; -outage-mode stop, kill or pause).
// While it runs it scrapes p1logger's /metrics every second.
//
// At the end it silences the gateways, lets p1logger deliver what it holds,
// stops it with SIGTERM, and reads every p1 point back. A clean gateway
// sends a telegram every -interval and p1logger writes every -cycle, which
// must be shorter, so every good telegram sent must be exactly one point,
// in order: the summary gives, per gateway, the cycles expected, found,
// missing and duplicated (one telegram at two timestamps; a point written
// twice with the same timestamp is one point in InfluxDB). It also checks
// that InfluxDB holds as many p1 points as p1logger's batcher produced
// (p1logger_p1_points_total) and that every point of a faulty gateway is a
// telegram it sent intact. It reports the spool's peak size, the time the
// backlog took, and p1logger's peak memory.
//
// The exit status is 0 when nothing was lost, duplicated or corrupted, 1
// when something was, and 2 on bad flags or when the soak could not run.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p1logger/p1logger/internal/cyclecheck"
	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/sim"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	duration       time.Duration
	outageFor      time.Duration
	outageAt       time.Duration
	mode           string
	gateways       int
	faulty         int
	cycle          time.Duration
	interval       time.Duration
	p1logger       string
	spoolMax       string
	keep, verbose  bool
	deliverTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("p1soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the gateways stream")
	outage := fs.String("outage", "3m@4m", "InfluxDB down for `D@T`: D long, from T after the start (empty: no outage)")
	fs.StringVar(&o.mode, "outage-mode", "stop", "how InfluxDB goes down: stop (SIGTERM), kill (SIGKILL) or pause (SIGSTOP: hangs)")
	fs.IntVar(&o.gateways, "gateways", 6, "clean gateways, checked cycle by cycle")
	fs.IntVar(&o.faulty, "faulty", 2, "faulty gateways (bad CRC, garbage, cut frames, disconnects)")
	fs.DurationVar(&o.cycle, "cycle", 500*time.Millisecond, "P1_CYCLE of p1logger")
	fs.DurationVar(&o.interval, "interval", time.Second, "time between telegrams of a gateway; more than -cycle")
	fs.StringVar(&o.p1logger, "p1logger", "", "p1logger `binary` to run (default: go build ./cmd/p1logger)")
	fs.StringVar(&o.spoolMax, "spool-max-bytes", "", "P1_SPOOL_MAX_BYTES for p1logger (default: its own)")
	fs.DurationVar(&o.deliverTimeout, "deliver-timeout", 5*time.Minute, "how long to wait at the end for the spool to empty")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (InfluxDB data, spool, p1logger log)")
	fs.BoolVar(&o.verbose, "v", false, "copy p1logger's log to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *outage != "" {
		d, at, ok := strings.Cut(*outage, "@")
		var err1, err2 error
		o.outageFor, err1 = time.ParseDuration(d)
		o.outageAt, err2 = time.ParseDuration(at)
		if !ok || err1 != nil || err2 != nil || o.outageFor <= 0 || o.outageAt < 0 {
			return nil, fmt.Errorf("-outage %q: want D@T, e.g. 3m@4m", *outage)
		}
		if o.outageAt+o.outageFor > o.duration {
			return nil, fmt.Errorf("-outage %q ends after -duration %s", *outage, o.duration)
		}
	}
	switch o.mode {
	case "stop", "kill", "pause":
	default:
		return nil, fmt.Errorf("-outage-mode %q: want stop, kill or pause", o.mode)
	}
	if o.gateways < 1 || o.faulty < 0 {
		return nil, errors.New("-gateways must be at least 1 and -faulty not negative")
	}
	if o.cycle < 100*time.Millisecond || o.interval <= o.cycle {
		return nil, fmt.Errorf("-cycle %s, -interval %s: want a cycle of at least 100ms, shorter than the interval", o.cycle, o.interval)
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "p1soak: %v\n", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := soak(ctx, o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "p1soak: %v\n", err)
		return 2
	}
	if !ok {
		return 1
	}
	return 0
}

// gateway is one simulated gateway and what it sent.
type gateway struct {
	name   string
	faulty bool
	srv    *sim.Server
	mu     sync.Mutex
	sent   []sim.Sent
}

func (g *gateway) good() []sim.Sent {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []sim.Sent
	for _, s := range g.sent {
		if !s.Corrupt() && s.Err == nil {
			out = append(out, s)
		}
	}
	return out
}

// watch is what the metrics loop saw.
type watch struct {
	peakSpoolBytes  float64 // segment files on disk
	peakSpoolPoints float64
	peakBacklog     float64   // bytes of line protocol waiting
	restartedAt     time.Time // InfluxDB back
	drainedAt       time.Time // spool empty after that
	lastMetrics     string

	// The spool's stored bytes and waiting points at its peak, for the
	// stored bytes per point.
	peakStored, peakStoredPoints, peakStoredRaw float64
	// Replay: from the first scrape after the restart that saw points
	// written, to the drain.
	replayFrom        time.Time
	replayFromWritten float64
	replayedWritten   float64 // points written by the drain
}

func soak(ctx context.Context, o *options, stdout, stderr io.Writer) (bool, error) {
	work, err := os.MkdirTemp("", "p1soak-")
	if err != nil {
		return false, err
	}
	if o.keep {
		fmt.Fprintf(stdout, "working directory %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	say := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	bin := o.p1logger
	if bin == "" {
		bin = filepath.Join(work, "p1logger")
		say("building p1logger")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/p1logger").CombinedOutput(); err != nil {
			return false, fmt.Errorf("go build ./cmd/p1logger (run p1soak from the repository, or give -p1logger): %v\n%s", err, out)
		}
	}

	say("starting InfluxDB 1.8")
	influxDir := filepath.Join(work, "influxdb")
	if err := os.Mkdir(influxDir, 0o750); err != nil {
		return false, err
	}
	srv, err := influxtest.Start(influxtest.Options{Dir: influxDir})
	if err != nil {
		return false, err
	}
	defer srv.Close()
	if err := srv.CreateDatabase(ctx, "soak"); err != nil {
		return false, err
	}
	const bucket = "soak/autogen"

	simCtx, stopSims := context.WithCancel(context.Background())
	var simWG sync.WaitGroup
	defer func() { stopSims(); simWG.Wait() }()
	var gws []*gateway
	var list []string
	for i := range o.gateways + o.faulty {
		g := &gateway{name: fmt.Sprintf("clean%d", i)}
		cfg := sim.Config{
			Interval: o.interval,
			Meter:    sim.MeterConfig{Name: g.name, Seed: uint64(i + 1), Water: i%2 == 0},
			LogSize:  -1,
			OnSend: func(s sim.Sent) {
				g.mu.Lock()
				g.sent = append(g.sent, s)
				g.mu.Unlock()
			},
		}
		if i >= o.gateways {
			g.name, g.faulty = fmt.Sprintf("faulty%d", i-o.gateways), true
			cfg.Meter.Name = g.name
			cfg.Faults = sim.Faults{BadCRCEvery: 7, GarbageEvery: 5, CutEvery: 11, DisconnectAfter: 97}
		}
		if g.srv, err = sim.NewServer(cfg); err != nil {
			return false, err
		}
		simWG.Add(1)
		go func() { defer simWG.Done(); g.srv.Run(simCtx) }()
		gws = append(gws, g)
		list = append(list, g.name+"="+g.srv.Addr().String())
	}

	httpAddr, err := freeAddr()
	if err != nil {
		return false, err
	}
	base := "http://" + httpAddr
	logPath := filepath.Join(work, "p1logger.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return false, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"P1_GATEWAYS=" + strings.Join(list, ","),
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=" + o.cycle.String(),
		"P1_SPOOL_DIR=" + filepath.Join(work, "spool"),
		"P1_HTTP_ADDR=" + httpAddr,
		"P1_TIMEZONE=Europe/Brussels",
		"P1_LOG_FORMAT=json",
	}
	if o.spoolMax != "" {
		cmd.Env = append(cmd.Env, "P1_SPOOL_MAX_BYTES="+o.spoolMax)
	}
	cmd.Stderr = logFile
	if o.verbose {
		cmd.Stderr = io.MultiWriter(logFile, stderr)
	}
	if err := cmd.Start(); err != nil {
		return false, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()
	say("p1logger pid %d, %d clean and %d faulty gateways every %s, cycle %s, log %s",
		cmd.Process.Pid, o.gateways, o.faulty, o.interval, o.cycle, logPath)

	start := time.Now()
	var w watch
	outageStart, outageEnd := start.Add(o.outageAt), start.Add(o.outageAt+o.outageFor)
	down, wasDown := false, false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastReport := time.Time{}
	for time.Since(start) < o.duration {
		select {
		case <-ctx.Done():
			return false, errors.New("interrupted")
		case err := <-exited:
			return false, fmt.Errorf("p1logger exited during the soak (%v); see %s", err, logPath)
		case <-tick.C:
		}
		now := time.Now()
		if o.outageFor > 0 && !down && !wasDown && !now.Before(outageStart) {
			say("outage: InfluxDB %s for %s", map[string]string{"stop": "stopped", "kill": "killed", "pause": "paused"}[o.mode], o.outageFor)
			if err := influxDown(srv, o.mode); err != nil {
				return false, err
			}
			down, wasDown = true, true
		}
		if down && !now.Before(outageEnd) {
			if err := influxUp(ctx, srv, o.mode); err != nil {
				return false, err
			}
			down = false
			w.restartedAt = time.Now()
			say("InfluxDB back after %s", time.Since(outageStart).Round(time.Second))
		}
		m, err := scrape(base)
		if err != nil {
			continue
		}
		w.lastMetrics = m
		sb, sp := metric(m, "p1logger_spool_bytes"), metric(m, "p1logger_spool_points")
		w.peakSpoolBytes, w.peakSpoolPoints = max(w.peakSpoolBytes, sb), max(w.peakSpoolPoints, sp)
		w.peakBacklog = max(w.peakBacklog, metric(m, "p1logger_write_buffer_bytes"))
		if st := metric(m, "p1logger_spool_stored_bytes"); st > w.peakStored {
			w.peakStored, w.peakStoredPoints, w.peakStoredRaw = st, sp, metric(m, "p1logger_write_buffer_bytes")
		}
		written := metric(m, "p1logger_points_written_total")
		if !w.restartedAt.IsZero() && w.replayFrom.IsZero() {
			if w.replayFromWritten == 0 {
				w.replayFromWritten = written
			} else if written > w.replayFromWritten {
				w.replayFrom, w.replayFromWritten = now, written
			}
		}
		if !w.restartedAt.IsZero() && w.drainedAt.IsZero() && metric(m, "p1logger_spool_batches") <= 1 && metric(m, "p1logger_write_failing") == 0 {
			w.drainedAt = time.Now()
			w.replayedWritten = written
			say("backlog delivered %s after InfluxDB came back (%v points replayed)",
				w.drainedAt.Sub(w.restartedAt).Round(100*time.Millisecond), metric(m, "p1logger_spool_replayed_points_total"))
		}
		if now.Sub(lastReport) >= 30*time.Second {
			lastReport = now
			say("%4.0fs  written %.0f points, spool %.0f points / %.0f bytes, failing %v, telegrams %.0f",
				now.Sub(start).Seconds(), metric(m, "p1logger_points_written_total"), sp, sb,
				metric(m, "p1logger_write_failing") == 1, sumMetric(m, "p1logger_gateway_telegrams_total{"))
		}
	}
	if down {
		if err := influxUp(ctx, srv, o.mode); err != nil {
			return false, err
		}
	}

	// The end: silence the gateways so that what p1logger produced can be
	// counted, let it deliver, then stop it as a container runtime would.
	say("end: silencing the gateways, waiting for the spool to empty")
	for _, g := range gws {
		g.srv.Inject(sim.Fault{Kind: sim.FaultSilence, For: o.deliverTimeout + time.Minute})
	}
	time.Sleep(o.interval + 3*o.cycle + time.Second)
	deadline := time.Now().Add(o.deliverTimeout)
	var m string
	for {
		m, err = scrape(base)
		if err == nil && metric(m, "p1logger_spool_batches") == 0 && metric(m, "p1logger_write_failing") == 0 {
			break
		}
		if time.Now().After(deadline) {
			say("the spool did not empty within %s", o.deliverTimeout)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	produced := metric(m, "p1logger_p1_points_total")
	if w.restartedAt.IsZero() {
		w.restartedAt = time.Now()
	}
	if w.drainedAt.IsZero() && metric(m, "p1logger_spool_batches") == 0 {
		w.drainedAt = time.Now()
		w.replayedWritten = metric(m, "p1logger_points_written_total")
	}
	peakRSS := readVmHWM(cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			return false, fmt.Errorf("p1logger exit after SIGTERM: %v; see %s", err, logPath)
		}
	case <-time.After(30 * time.Second):
		return false, fmt.Errorf("p1logger did not exit within 30s of SIGTERM; see %s", logPath)
	}

	ceiling := 0.0
	if o.outageFor > 0 {
		say("measuring InfluxDB's own write ceiling for 15 s")
		if ceiling, err = writeCeiling(ctx, srv, len(gws), 15*time.Second); err != nil {
			say("write ceiling not measured: %v", err)
		}
	}
	return report(ctx, o, srv, bucket, gws, &w, produced, peakRSS, ceiling, m, logPath, stdout)
}

// writeCeiling measures how many points per second InfluxDB takes from one
// writer posting 1 MiB batches one after the other, as p1logger's writer
// does, for d: p1 lines shaped like p1logger's (the same measurement, tags
// and 25 fields), for gateways meters, into a database of their own.
func writeCeiling(ctx context.Context, srv *influxtest.Server, gateways int, d time.Duration) (float64, error) {
	if err := srv.CreateDatabase(ctx, "ceiling"); err != nil {
		return 0, err
	}
	const line = "p1,gateway=ceil%d,meter_id=1SAG30170%05d taken_t1_kwh=%d.%03d,taken_t2_kwh=13795.790,taken_kwh=28516.228," +
		"injected_t1_kwh=0.000,injected_t2_kwh=0.000,injected_kwh=0.000,power_taken_w=%d,power_injected_w=0,power_net_w=220," +
		"power_taken_l1_w=93,power_taken_l2_w=64,power_taken_l3_w=63,power_injected_l1_w=0,power_injected_l2_w=0,power_injected_l3_w=0," +
		"voltage_l1_v=229.5,voltage_l2_v=230.1,voltage_l3_v=230.0,current_l1_a=0.42,current_l2_a=0.29,current_l3_a=0.28,tariff=2i," +
		"demand_avg_w=223,demand_max_month_w=3733 %d\n"
	start := time.Now()
	ts := start.Add(-24 * time.Hour).UnixNano()
	points, i := 0, 0
	var b []byte
	for time.Since(start) < d {
		b = b[:0]
		n := 0
		for len(b) < 1<<20-1024 {
			g := i % max(gateways, 1)
			b = fmt.Appendf(b, line, g, g, 14720+i/max(gateways, 1), i%1000, 100+i%3000, ts+int64(i/max(gateways, 1))*int64(time.Second))
			i++
			n++
		}
		if err := srv.WriteLines(ctx, "ceiling/autogen", b); err != nil {
			return 0, err
		}
		points += n
	}
	return float64(points) / time.Since(start).Seconds(), nil
}

func influxDown(srv *influxtest.Server, mode string) error {
	switch mode {
	case "kill":
		return srv.Kill()
	case "pause":
		return srv.Pause()
	}
	return srv.Stop()
}

func influxUp(ctx context.Context, srv *influxtest.Server, mode string) error {
	if mode == "pause" {
		return srv.Resume()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return srv.Restart(ctx)
}

// report reads the points back, compares and prints the summary.
func report(ctx context.Context, o *options, srv *influxtest.Server, bucket string, gws []*gateway, w *watch,
	produced, peakRSS, ceiling float64, m, logPath string, out io.Writer) (bool, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rows, err := srv.Flux(qctx, fmt.Sprintf(`from(bucket: %q) |> range(start: 2000-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "p1")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`, bucket))
	if err != nil {
		return false, fmt.Errorf("read back: %w", err)
	}
	byGW := map[string][]influxtest.Row{}
	for _, r := range rows {
		gw, _ := r["gateway"].(string)
		byGW[gw] = append(byGW[gw], r)
	}

	ok := true
	fmt.Fprintf(out, "\n%-10s %9s %9s %8s %11s %11s\n", "gateway", "expected", "found", "missing", "duplicated", "unexpected")
	var tot check
	for _, g := range gws {
		sent := g.good()
		var c check
		if g.faulty {
			c = checkFaulty(byGW[g.name], sent)
		} else {
			c = cyclecheck.Cycles(byGW[g.name], sent)
			tot.Expected += c.Expected
			tot.Found += c.Found
			tot.Missing += c.Missing
			tot.Duplicated += c.Duplicated
			tot.Unexpected += c.Unexpected
		}
		exp := strconv.Itoa(c.Expected)
		if g.faulty {
			exp = "-"
		}
		fmt.Fprintf(out, "%-10s %9s %9d %8s %11d %11d\n", g.name, exp, c.Found, dash(g.faulty, c.Missing), c.Duplicated, c.Unexpected)
		if c.Missing > 0 && !g.faulty {
			ok = false
			fmt.Fprintf(out, "           missing telegrams sent at: %s\n", times(c.MissingAt))
		}
		if c.Duplicated > 0 || c.Unexpected > 0 {
			ok = false
		}
	}
	fmt.Fprintf(out, "%-10s %9d %9d %8d %11d %11d\n", "clean", tot.Expected, tot.Found, tot.Missing, tot.Duplicated, tot.Unexpected)

	fmt.Fprintf(out, "\np1 points in InfluxDB:           %d (p1logger's batcher produced %.0f)\n", len(rows), produced)
	if float64(len(rows)) != produced {
		ok = false
	}
	fmt.Fprintf(out, "outage:                          %s from %s (%s)\n", o.outageFor, o.outageAt, o.mode)
	fmt.Fprintf(out, "spool peak:                      %.0f bytes on disk, %.0f points (%.0f bytes of line protocol) waiting\n",
		w.peakSpoolBytes, w.peakSpoolPoints, w.peakBacklog)
	if o.outageFor > 0 && !w.drainedAt.IsZero() {
		fmt.Fprintf(out, "backlog delivered:               %s after InfluxDB came back\n", w.drainedAt.Sub(w.restartedAt).Round(100*time.Millisecond))
	}
	if w.peakStoredPoints > 0 {
		fmt.Fprintf(out, "spool stored per waiting point:  %.1f bytes (%.1f bytes of line protocol; at the peak, %.0f points in %.0f bytes)\n",
			w.peakStored/w.peakStoredPoints, w.peakStoredRaw/w.peakStoredPoints, w.peakStoredPoints, w.peakStored)
	}
	if !w.replayFrom.IsZero() && w.drainedAt.After(w.replayFrom) {
		rate := (w.replayedWritten - w.replayFromWritten) / w.drainedAt.Sub(w.replayFrom).Seconds()
		fmt.Fprintf(out, "replay rate:                     %.0f points/s written while the backlog drained\n", rate)
		if ceiling > 0 {
			fmt.Fprintf(out, "InfluxDB write ceiling:          %.0f points/s (1 MiB batches of the same line protocol, one writer, after p1logger stopped): replay at %.0f%%\n",
				ceiling, 100*rate/ceiling)
		}
	}
	fmt.Fprintf(out, "replayed points:                 %.0f\n", metric(m, "p1logger_spool_replayed_points_total"))
	fmt.Fprintf(out, "dropped points:                  %.0f\n", metric(m, "p1logger_points_dropped_total"))
	fmt.Fprintf(out, "write errors (attempts):         %.0f\n", metric(m, "p1logger_write_errors_total"))
	fmt.Fprintf(out, "telegrams read:                  %.0f (crc errors %.0f, parse errors %.0f, reconnects %.0f)\n",
		sumMetric(m, "p1logger_gateway_telegrams_total{"), sumMetric(m, "p1logger_gateway_crc_errors_total{"),
		sumMetric(m, "p1logger_gateway_parse_errors_total{"), sumMetric(m, "p1logger_gateway_reconnects_total{"))
	if peakRSS > 0 {
		fmt.Fprintf(out, "p1logger peak memory (VmHWM):    %.1f MiB\n", peakRSS/(1<<20))
	}
	if metric(m, "p1logger_points_dropped_total") > 0 {
		ok = false
	}
	if ok {
		fmt.Fprintln(out, "\nPASS: every cycle of every clean gateway is in InfluxDB exactly once")
	} else {
		fmt.Fprintf(out, "\nFAIL: cycles lost, duplicated or corrupted; p1logger's log: %s (run with -keep to keep it)\n", logPath)
	}
	return ok, nil
}

func dash(faulty bool, n int) string {
	if faulty {
		return "-"
	}
	return strconv.Itoa(n)
}

func times(ts []time.Time) string {
	var s []string
	for i, t := range ts {
		if i == 10 {
			s = append(s, fmt.Sprintf("… (%d in all)", len(ts)))
			break
		}
		s = append(s, t.Format("15:04:05.000"))
	}
	return strings.Join(s, ", ")
}

// check is the comparison of a gateway's points with its telegrams.
type check = cyclecheck.Result

// checkFaulty checks that every point of a faulty gateway is a telegram it
// sent intact, in order, each at most once. Telegrams may be missing by
// design (cut off, or superseded within a cycle). Two telegrams with the
// same values (a quiet meter, or one telegram sent again on a new
// connection) are two telegrams.
func checkFaulty(rows []influxtest.Row, sent []sim.Sent) check {
	cyclecheck.SortRows(rows)
	c := check{}
	next := 0 // the first telegram no point has used yet
	for _, r := range rows {
		k := -1
		for j := next; j < len(sent); j++ {
			if cyclecheck.RowMatches(r, &sent[j]) {
				k = j
				break
			}
		}
		switch {
		case k >= 0:
			c.Found++
			next = k + 1
		case next > 0 && matchesBefore(r, sent[:next]):
			c.Duplicated++
		default:
			c.Unexpected++
		}
	}
	return c
}

func matchesBefore(r influxtest.Row, sent []sim.Sent) bool {
	for j := range sent {
		if cyclecheck.RowMatches(r, &sent[j]) {
			return true
		}
	}
	return false
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func scrape(base string) (string, error) {
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metric returns the value of the sample name in Prometheus text, or 0.
func metric(text, name string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// sumMetric sums the samples whose line starts with prefix.
func sumMetric(text, prefix string) float64 {
	sum := 0.0
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			if i := strings.LastIndexByte(l, ' '); i > 0 {
				v, _ := strconv.ParseFloat(l[i+1:], 64)
				sum += v
			}
		}
	}
	return sum
}

// readVmHWM returns the peak resident memory of a process in bytes (Linux),
// or 0.
func readVmHWM(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}
