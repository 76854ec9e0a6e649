package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
)

const (
	db             = "p1"
	connectTimeout = 2 * time.Minute
	stopTimeout    = 30 * time.Second
)

// result is what a run measured.
type result struct {
	loadBefore, loadAfter string
	connected             int
	connectTime           time.Duration // p1logger start to all connected; 0 if not all did
	window                time.Duration
	telegrams             float64 // accepted in the window
	parseErrors           float64
	p1Points              float64 // p1 points encoded in the window
	pointsWritten         float64 // every point the sink accepted in the window
	writeErrors           float64
	dropped               float64
	reconnects            float64
	cycles                float64
	lastCycle             float64 // seconds, gauge at window end
	cpu, cpuSys           time.Duration
	startCPU              time.Duration // p1logger's CPU from its start to the window
	simCPU                time.Duration
	rssEnd, rssMax        int64
	rssBase               int64 // -1 when not measured
	lagP50, lagP99, lagMx time.Duration
	lagN                  int
	lagGateways           int
	lost                  int
	lostPoints            int // p1 points the lost-cycle check saw
	lostErr               error
	exitErr               error
	pollErrs              int
	sent, simSkipped      float64 // p1sim: telegrams written, intervals skipped (a client not reading)
	connectedEnd          int     // p1sim's clients at the window's end
	gaps                  []string
	scrapeSpan            time.Duration // between the midpoints of the two /metrics scrapes
}

func load(ctx context.Context, o *options, log *slog.Logger) (*result, error) {
	res := &result{loadBefore: loadavg(), rssBase: -1}
	dir, err := os.MkdirTemp("", "p1load-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		log.Info("keeping logs", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.binDir
	if bin == "" {
		log.Info("building p1sim and p1logger")
		if err := build(ctx, dir); err != nil {
			return nil, err
		}
		bin = dir
	}

	// The sink.
	var (
		influx  *influxtest.Server
		discard *discardSink
		sinkURL string
	)
	if o.sink == "influx" {
		log.Info("starting influxdb 1.8")
		influx, err = influxtest.Start(influxtest.Options{Binary: o.influxd, Logger: log})
		if err != nil {
			return nil, err
		}
		defer influx.Close()
		if err := influx.CreateDatabase(ctx, db); err != nil {
			return nil, err
		}
		sinkURL = influx.URL()
	} else {
		if discard, err = startDiscard(); err != nil {
			return nil, err
		}
		defer discard.srv.Close()
		sinkURL = discard.url()
	}

	// p1sim: a meter per connection, one telegram a second.
	simAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ctlAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	sim, err := start("p1sim", filepath.Join(bin, "p1sim"),
		[]string{"-listen", simAddr, "-control", ctlAddr, "-per-conn", "-interval", "1s", "-log-level", "warn"}, nil,
		filepath.Join(dir, "p1sim.log"))
	if err != nil {
		return nil, err
	}
	defer sim.stop(stopTimeout)
	if err := waitDial(ctx, simAddr, 30*time.Second, sim); err != nil {
		return nil, err
	}

	logger := func(name string, lines []string) (*proc, string, error) {
		gwFile := filepath.Join(dir, name+".gateways")
		if err := os.WriteFile(gwFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return nil, "", err
		}
		httpAddr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		env := []string{
			"P1_GATEWAYS=", "P1_GATEWAYS_FILE=" + gwFile,
			"P1_CYCLE=" + o.cycle.String(),
			"P1_INFLUX_URL=" + sinkURL, "P1_INFLUX_BUCKET=" + db + "/autogen",
			"P1_INFLUX_TOKEN=", "P1_INFLUX_ORG=", "P1_SPOOL_DIR=",
			"P1_TIMEZONE=Europe/Brussels", "P1_HTTP_ADDR=" + httpAddr,
			"P1_LOG_LEVEL=" + o.logLevel,
		}
		if o.gomaxprocs > 0 {
			env = append(env, "GOMAXPROCS="+strconv.Itoa(o.gomaxprocs))
		}
		p, err := start(name, filepath.Join(bin, "p1logger"), nil, env, filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, "", err
		}
		if err := waitDial(ctx, httpAddr, 30*time.Second, p); err != nil {
			p.stop(stopTimeout)
			return nil, "", err
		}
		return p, httpAddr, nil
	}

	// Baseline: the same binary and sink with a single gateway, long
	// enough for a few cycles and a rollup.
	if o.baseline {
		log.Info("baseline: p1logger with one gateway")
		p, addr, err := logger("p1logger-baseline", []string{"baseline=" + simAddr})
		if err != nil {
			return nil, err
		}
		wait := max(3*o.cycle, 15*time.Second)
		if !sleep(ctx, wait) {
			p.stop(stopTimeout)
			return nil, ctx.Err()
		}
		m, err := scrape(ctx, addr)
		if err == nil && m["p1logger_gateway_telegrams_total"] == 0 {
			err = errors.New("baseline p1logger received no telegram")
		}
		if err == nil {
			res.rssBase, err = rss(p.pid())
		}
		if serr := p.stop(stopTimeout); err == nil && serr != nil {
			err = fmt.Errorf("baseline p1logger: %w", serr)
		}
		if err != nil {
			return nil, err
		}
	}

	// The run.
	names := make([]string, o.gateways)
	lines := make([]string, o.gateways)
	for i := range names {
		names[i] = fmt.Sprintf("gw%05d", i)
		lines[i] = names[i] + "=" + simAddr
	}
	log.Info("starting p1logger", "gateways", o.gateways)
	t0 := time.Now()
	p, httpAddr, err := logger("p1logger", lines)
	if err != nil {
		return nil, err
	}
	defer p.stop(stopTimeout)
	// Connections are counted by p1sim: p1logger's /metrics is large at
	// thousands of gateways, and scraping it every second would add to
	// what is being measured.
	for {
		st, err := simStatus(ctx, ctlAddr)
		if err != nil {
			return res, err
		}
		res.connected = st.Clients
		if res.connected >= o.gateways {
			res.connectTime = time.Since(t0)
			break
		}
		if time.Since(t0) > connectTimeout {
			log.Warn("not all gateways connected; measuring anyway", "connected", res.connected, "after", connectTimeout)
			break
		}
		if p.exited() {
			return res, fmt.Errorf("p1logger exited: %v", p.err)
		}
		if !sleep(ctx, time.Second) {
			return res, ctx.Err()
		}
	}
	log.Info("connected", "gateways", res.connected, "after", res.connectTime.Round(time.Millisecond))

	// Start the lag poller a cycle before the window, so that it knows
	// the points written before the window began.
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	var win window
	winCh := make(chan window, 1)
	getWin := func() window {
		select {
		case w := <-winCh:
			win = w
		default:
		}
		return win
	}
	var poller *lagPoller
	pollDone := make(chan struct{})
	if influx != nil {
		step := max(1, o.gateways/max(o.lagSample, 1))
		var sample []string
		for i := 0; i < o.gateways && len(sample) < o.lagSample; i += step {
			sample = append(sample, names[i])
		}
		res.lagGateways = len(sample)
		poller = newLagPoller(influx, db, sample, getWin)
		go func() { defer close(pollDone); poller.run(pctx) }()
	} else {
		close(pollDone)
	}
	if !sleep(ctx, o.warmup) {
		return res, ctx.Err()
	}

	// The window.
	s0 := time.Now()
	m0, err := scrape(ctx, httpAddr)
	if err != nil {
		return res, err
	}
	ws := time.Now()
	mid0 := s0.Add(ws.Sub(s0) / 2)
	cpuU0, cpuS0, err := cpuTimes(p.pid())
	if err != nil {
		return res, err
	}
	res.startCPU = cpuU0 + cpuS0
	simCPU0, _ := cpuTime(sim.pid())
	st0, err := simStatus(ctx, ctlAddr)
	if err != nil {
		return res, err
	}
	w := window{start: ws, end: ws.Add(o.duration), cycle: o.cycle}
	winCh <- w
	if discard != nil {
		discard.setWindow(w)
	}
	log.Info("measuring", "window", o.duration)
	for time.Now().Before(w.end) {
		if !sleep(ctx, min(5*time.Second, time.Until(w.end))) {
			return res, ctx.Err()
		}
		if r, err := rss(p.pid()); err == nil {
			res.rssMax = max(res.rssMax, r)
		}
		if p.exited() {
			return res, fmt.Errorf("p1logger exited: %v", p.err)
		}
	}
	cpuU1, cpuS1, err := cpuTimes(p.pid())
	if err != nil {
		return res, err
	}
	simCPU1, _ := cpuTime(sim.pid())
	st1, err := simStatus(ctx, ctlAddr)
	if err != nil {
		return res, err
	}
	res.sent, res.simSkipped, res.connectedEnd = float64(st1.Telegrams-st0.Telegrams), float64(st1.Skipped-st0.Skipped), st1.Clients
	res.window = time.Since(ws)
	res.rssEnd, _ = rss(p.pid())
	res.rssMax = max(res.rssMax, res.rssEnd)
	s1 := time.Now()
	m1, err := scrape(ctx, httpAddr)
	if err != nil {
		return res, err
	}
	res.scrapeSpan = time.Since(s1)/2 + s1.Sub(mid0)
	res.loadAfter = loadavg()
	res.cpu, res.cpuSys, res.simCPU = cpuU1+cpuS1-cpuU0-cpuS0, cpuS1-cpuS0, simCPU1-simCPU0
	d := func(k string) float64 { return m1[k] - m0[k] }
	res.telegrams = d("p1logger_gateway_telegrams_total")
	res.parseErrors = d("p1logger_gateway_parse_errors_total") + d("p1logger_gateway_crc_errors_total")
	res.p1Points = d("p1logger_p1_points_total")
	res.pointsWritten = d("p1logger_points_written_total")
	res.writeErrors = d("p1logger_write_errors_total")
	res.dropped = d("p1logger_points_dropped_total")
	res.reconnects = d("p1logger_gateway_reconnects_total")
	res.cycles = d("p1logger_cycles_total")
	res.lastCycle = m1["p1logger_cycle_duration_seconds"]

	// Points of the window's last cycle reach the sink a cycle later.
	log.Info("window over; waiting for its last points")
	sleep(ctx, 2*o.cycle+3*time.Second)
	stopPoll()
	<-pollDone
	if discard != nil {
		res.lost, res.lostPoints = discard.lostCycles(names, &res.gaps)
		res.lagP50, res.lagP99, res.lagMx, res.lagN = discard.lag.quantiles()
	} else {
		res.lagP50, res.lagP99, res.lagMx, res.lagN = poller.lag.quantiles()
		res.pollErrs = poller.errs
		if poller.last != nil {
			log.Warn("lag poll failed", "count", poller.errs, "last", poller.last)
		}
		var prefixes []string
		for i := 0; i*1000 < o.gateways; i++ {
			prefixes = append(prefixes, fmt.Sprintf("gw%02d", i))
		}
		res.lost, res.lostPoints, res.lostErr = influxLost(ctx, influx, db, w, names, prefixes, &res.gaps)
	}
	log.Info("stopping p1logger")
	res.exitErr = p.stop(stopTimeout)
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *result) print(w io.Writer, o *options) {
	secs := r.window.Seconds()
	// Counters come from two /metrics scrapes, which take a while at
	// thousands of gateways: rates use the time between their midpoints,
	// CPU per telegram the telegrams at that rate over the CPU window.
	rsecs := r.scrapeSpan.Seconds()
	if rsecs == 0 {
		rsecs = secs
	}
	telInWindow := r.telegrams / rsecs * secs
	printf(w, "p1load: %d gateways, cycle %v, sink %s, window %v, p1logger GOMAXPROCS=%s, %d CPUs, %s\n",
		o.gateways, o.cycle, o.sink, r.window.Round(time.Millisecond), gmp(o.gomaxprocs), runtime.NumCPU(), runtime.Version())
	printf(w, "  load average           before %s, after window %s\n", r.loadBefore, r.loadAfter)
	if r.connectTime > 0 {
		printf(w, "  gateways connected     %d/%d, all within %.1f s of p1logger's start\n", r.connected, o.gateways, r.connectTime.Seconds())
	} else {
		printf(w, "  gateways connected     %d/%d (NOT all within %v)\n", r.connected, o.gateways, connectTimeout)
	}
	if secs == 0 {
		return
	}
	printf(w, "  counters               from two /metrics scrapes %.1f s apart (midpoints)\n", rsecs)
	printf(w, "  telegrams/s parsed     %.0f (%.0f between the scrapes; p1sim sent %.0f and skipped %.0f for a slow reader; %.0f crc/parse errors, %.0f reconnects; %d connected at the end)\n",
		r.telegrams/rsecs, r.telegrams, r.sent, r.simSkipped, r.parseErrors, r.reconnects, r.connectedEnd)
	printf(w, "  points/s written       %.0f (p1 points/s %.0f; %.0f cycles; last cycle encoded in %.1f ms)\n",
		r.pointsWritten/rsecs, r.p1Points/rsecs, r.cycles, r.lastCycle*1000)
	printf(w, "  write errors, dropped  %.0f, %.0f\n", r.writeErrors, r.dropped)
	if r.telegrams > 0 {
		printf(w, "  p1logger CPU           %.2f s in %.0f s = %.1f%% of one core (%.0f%% of it in the kernel); %.3f s per 1,000 telegrams (%.1f µs per telegram)\n",
			r.cpu.Seconds(), secs, 100*r.cpu.Seconds()/secs, 100*r.cpuSys.Seconds()/max(r.cpu.Seconds(), 1e-9),
			r.cpu.Seconds()/telInWindow*1000, r.cpu.Seconds()/telInWindow*1e6)
		printf(w, "  p1logger start-up CPU  %.2f s from its start to the window (dialling, rollup recovery, warm-up %v)\n",
			r.startCPU.Seconds(), o.warmup)
	}
	printf(w, "  p1sim CPU              %.1f%% of one core\n", 100*r.simCPU.Seconds()/secs)
	if r.rssBase >= 0 {
		printf(w, "  p1logger RSS           %.1f MiB at window end (max %.1f MiB); baseline with 1 gateway %.1f MiB; %.1f KiB per gateway above baseline (max %.1f)\n",
			mib(r.rssEnd), mib(r.rssMax), mib(r.rssBase),
			float64(r.rssEnd-r.rssBase)/1024/float64(max(o.gateways-1, 1)), float64(r.rssMax-r.rssBase)/1024/float64(max(o.gateways-1, 1)))
	} else {
		printf(w, "  p1logger RSS           %.1f MiB at window end (max %.1f MiB); no baseline (-baseline=false)\n", mib(r.rssEnd), mib(r.rssMax))
	}
	how := "every p1 point, on arrival at the sink"
	if o.sink == "influx" {
		how = fmt.Sprintf("%d gateways' p1 points, first seen by a 250 ms InfluxQL poll; %d poll errors", r.lagGateways, r.pollErrs)
	}
	printf(w, "  end-to-end lag         p50 %.2f s, p99 %.2f s, max %.2f s (%d points: %s)\n",
		r.lagP50.Seconds(), r.lagP99.Seconds(), r.lagMx.Seconds(), r.lagN, how)
	if r.lostErr != nil {
		printf(w, "  lost cycles            unknown: %v\n", r.lostErr)
	} else {
		printf(w, "  lost cycles            %d (gateway×cycle slots of the window without a p1 point; %d points checked, about %d expected)\n",
			r.lost, r.lostPoints, o.gateways*int(r.window/o.cycle))
	}
	for _, g := range r.gaps {
		printf(w, "    %s\n", g)
	}
	exit := "0"
	if r.exitErr != nil {
		exit = r.exitErr.Error()
	}
	printf(w, "  p1logger exit          %s\n", exit)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func gmp(n int) string {
	if n <= 0 {
		return "default"
	}
	return strconv.Itoa(n)
}
