// Command p1load is the load benchmark of p1logger: it runs p1sim (a meter per
// connection, one telegram per second each, spread over 50 slots of the
// second), the p1logger binary configured with one gateway per meter through
// P1_GATEWAYS_FILE, and a sink (a real InfluxDB 1.8, or a discarding HTTP
// endpoint in this process), each in its own process, for a bounded time, and
// prints what p1logger cost:
//
//	go run ./cmd/p1load -gateways 10000 -duration 5m -cycle 5s -sink influx
//	go run ./cmd/p1load -gateways 10000 -duration 2m -sink discard
//
// Figures: gateways connected and the time until all were; telegrams/s
// parsed and points/s written (p1logger's /metrics); p1logger's CPU
// (utime+stime from /proc) per 1,000 telegrams and as a share of one core;
// its RSS per gateway above a baseline (the same binary with one gateway,
// run first); end-to-end lag from the telegram's arrival (its point's time)
// to the point being queryable (influx: a sample of gateways polled every
// 250 ms; discard: every p1 point, when the sink receives it); and lost
// cycles, the gateway×cycle slots of the measuring window without a p1
// point (influx: gaps in each gateway's series, queried after the run;
// discard: gaps seen by the sink).
//
// The measuring window (-duration) starts once every gateway is connected
// and -warmup has passed; the CPU of start-up (dialling, the rollup worker's
// recovery queries) is reported apart. p1logger runs with GOMAXPROCS=1 by
// default (-gomaxprocs), so its CPU share reads as a share of one core.
//
// Everything listens on 127.0.0.1; p1sim needs a file descriptor per
// gateway, and so does p1logger, each in its own process (the soft limit
// is raised to the hard one by Go). Exit status: 0 when the run completed
// (targets missed or not), 1 when it could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

type options struct {
	gateways   int
	duration   time.Duration
	warmup     time.Duration
	cycle      time.Duration
	sink       string
	gomaxprocs int
	lagSample  int
	baseline   bool
	binDir     string
	influxd    string
	keep       bool
	logLevel   string
}

func run() int {
	var o options
	fs := flag.NewFlagSet("p1load", flag.ContinueOnError)
	fs.IntVar(&o.gateways, "gateways", 1000, "number of simulated gateways (meters), one connection each")
	fs.DurationVar(&o.duration, "duration", time.Minute, "length of the measuring window, after all gateways connected")
	fs.DurationVar(&o.warmup, "warmup", 10*time.Second, "time between all gateways connected and the start of the window")
	fs.DurationVar(&o.cycle, "cycle", 5*time.Second, "P1_CYCLE of p1logger")
	fs.StringVar(&o.sink, "sink", "influx", "influx (a real InfluxDB 1.8 started for the run) or discard (an in-process endpoint that accepts and drops writes)")
	fs.IntVar(&o.gomaxprocs, "gomaxprocs", 1, "GOMAXPROCS of p1logger; 0 leaves it to the runtime")
	fs.IntVar(&o.lagSample, "lag-sample", 50, "influx sink: gateways whose points are polled for the lag")
	fs.BoolVar(&o.baseline, "baseline", true, "first measure p1logger's RSS with a single gateway, the baseline for RSS per gateway")
	fs.StringVar(&o.binDir, "bin", "", "directory with p1sim and p1logger binaries (default: build them into a temporary directory)")
	fs.StringVar(&o.influxd, "influxd", "", "influxd 1.8 binary (default: as internal/influxtest finds it)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs of p1logger, p1sim and influxd)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "P1_LOG_LEVEL of p1logger (its log goes to a file in the temporary directory)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "p1load:", err)
		return 2
	}
	switch {
	case o.gateways < 1 || o.gateways > 50000:
		fmt.Fprintln(os.Stderr, "p1load: -gateways: want 1 to 50000")
		return 2
	case o.duration < o.cycle || o.duration > 2*time.Hour:
		fmt.Fprintln(os.Stderr, "p1load: -duration: want at least one cycle and at most 2h")
		return 2
	case o.warmup < 0 || o.warmup > time.Hour:
		fmt.Fprintln(os.Stderr, "p1load: -warmup: want 0 to 1h")
		return 2
	case o.cycle < time.Second || o.cycle > time.Minute:
		fmt.Fprintln(os.Stderr, "p1load: -cycle: want 1s to 1m")
		return 2
	case o.sink != "influx" && o.sink != "discard":
		fmt.Fprintln(os.Stderr, "p1load: -sink: want influx or discard")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := load(ctx, &o, log)
	if res != nil {
		res.print(os.Stdout, &o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "p1load:", err)
		return 1
	}
	return 0
}

// loadavg returns the load averages as /proc/loadavg has them.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil || len(b) < 14 {
		return "?"
	}
	f := string(b)
	n := 0
	for i := range f {
		if f[i] == ' ' {
			n++
			if n == 3 {
				return f[:i]
			}
		}
	}
	return f
}

func printf(w io.Writer, format string, args ...any) { fmt.Fprintf(w, format, args...) }
