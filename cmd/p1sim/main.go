// Command p1sim is a P1 gateway simulator for demos and load tests: it
// listens on a TCP address and streams realistic telegrams (growing
// registers, valid CRCs) to every client every interval, and injects faults
// on request. With -mode it is a HomeWizard P1 meter, an MQTT dongle or a
// WebSocket dongle instead (see net.go and the README).
//
// Usage:
//
//	p1sim [flags]
//
// By default it serves one Belgian three-phase meter on 127.0.0.1:8088 (only
// this machine can connect; use -listen :8088 to serve the network) and
// broadcasts the same telegram to every client, as a real gateway does.
// -per-conn gives every connection a meter of its own, for load tests.
//
// Faults from the start: -fault-badcrc-every 10 (every 10th telegram on a
// connection has a bad CRC), -fault-garbage-every, -fault-cut-every,
// -fault-drip-every (byte by byte over -drip), -fault-disconnect-after N
// (close each connection after N telegrams), -fault-silence 30s@2m (silent
// 30 s out of every 2 minutes), -fault-refuse 10s@5m (listener closed 10 s
// out of every 5 minutes).
//
// Faults on request, with -control 127.0.0.1:9189:
//
//	curl -X POST '127.0.0.1:9189/fault?kind=badcrc&count=3'
//	curl -X POST '127.0.0.1:9189/fault?kind=silence&duration=30s'
//	curl 127.0.0.1:9189/status
//
// Kinds: badcrc, garbage, cut, drip, disconnect (count = telegrams before
// closing, 0 = now), silence, refuse (duration).
//
// Encrypted output, as a Luxembourg Smarty or an Austrian meter sends it:
// -key HEX (32 hex digits; -auth-key HEX, -system-title HEX and -security 30
// or 20 as needed) wraps every telegram in a DLMS general-glo-ciphering
// frame with a frame counter that grows from 1.
//
// A bad flag exits with status 2 and a one-line message naming it;
// SIGINT or SIGTERM stop the simulator with status 0.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // meters keep local time even in a scratch image

	"github.com/p1logger/p1logger/ingest/dlms"
	"github.com/p1logger/p1logger/sim"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// run stops on SIGINT or SIGTERM and returns the exit status.
func run(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, stderr)
}

// options are the parsed flags.
type options struct {
	sim       sim.Config
	control   string
	tz        string
	speed     float64
	start     string
	logLevel  slog.Level
	logFormat string
	net       netOptions // -mode and the flags of the modes other than tcp (net.go)
	key       string     // -key, hex; empty: plain telegrams
	authKey   string
	title     string
	security  string
}

// parseFlags parses args. Errors name the flag and fit on one line.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{sim: sim.Config{Meter: sim.MeterConfig{Profile: sim.ProfileBE3}}}
	fs := flag.NewFlagSet("p1sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &o.sim
	fs.StringVar(&c.Addr, "listen", "127.0.0.1:8088", "TCP `address` to serve telegrams on (:8088 for every interface)")
	fs.DurationVar(&c.Interval, "interval", time.Second, "time between telegrams")
	fs.Func("profile", "meter `type`: be3 (Belgian 3-phase), be1 (Belgian 1-phase), nl5 (Dutch DSMR 5), nl22 (Dutch DSMR 2.2) (default be3)", func(s string) error {
		p, err := sim.ParseProfile(s)
		c.Meter.Profile = p
		return err
	})
	fs.StringVar(&o.tz, "tz", "Europe/Brussels", "IANA time `zone` of the meter clock and tariffs")
	fs.BoolVar(&c.PerConn, "per-conn", false, "give every connection a meter of its own (load tests); default: one meter broadcast to all")
	fs.Uint64Var(&c.Meter.Seed, "seed", 1, "random seed: the same seed gives the same meters")
	fs.StringVar(&c.Meter.Name, "name", "p1sim", "meter name, from which the equipment ids are derived")
	fs.BoolVar(&c.Meter.Water, "water", false, "Belgian profiles: add a water meter on M-Bus channel 2")
	fs.StringVar(&c.Meter.StateFile, "state", "", "`file` that keeps the registers across restarts (read at start, written after every telegram); default none")
	fs.Float64Var(&c.Meter.SolarKWp, "solar-kwp", 0, "solar panel peak power in kW; 0 lets the seed decide, negative for none")
	fs.Float64Var(&o.speed, "speed", 1, "how many times faster than real time the meter clock runs")
	fs.StringVar(&o.start, "start", "", "meter clock start `time`, as 2006-01-02T15:04:05 in -tz (default now)")
	fs.IntVar(&c.Faults.BadCRCEvery, "fault-badcrc-every", 0, "corrupt a digit (bad CRC) in every `N`th telegram of a connection")
	fs.IntVar(&c.Faults.GarbageEvery, "fault-garbage-every", 0, "write random noise before every `N`th telegram")
	fs.IntVar(&c.Faults.CutEvery, "fault-cut-every", 0, "cut every `N`th telegram off before its end")
	fs.IntVar(&c.Faults.DripEvery, "fault-drip-every", 0, "write every `N`th telegram byte by byte over -drip")
	fs.IntVar(&c.Faults.DisconnectAfter, "fault-disconnect-after", 0, "close each connection after `N` telegrams")
	fs.Func("fault-silence", "send nothing for `D@P`: D out of every P, e.g. 30s@2m", func(s string) error {
		var err error
		c.Faults.SilenceFor, c.Faults.SilenceEvery, err = parsePeriodic(s)
		return err
	})
	fs.Func("fault-refuse", "close the listener for `D@P`: D out of every P, e.g. 10s@5m", func(s string) error {
		var err error
		c.Faults.RefuseFor, c.Faults.RefuseEvery, err = parsePeriodic(s)
		return err
	})
	fs.DurationVar(&c.DripFor, "drip", time.Second, "how long a dripped telegram takes")
	fs.StringVar(&o.control, "control", "", "HTTP `address` for POST /fault and GET /status, e.g. 127.0.0.1:9189 (default off)")
	fs.Func("log-level", "`level`: debug, info, warn or error (default info)", func(s string) error {
		return o.logLevel.UnmarshalText([]byte(s))
	})
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	addNetFlags(fs, &o.net)
	fs.StringVar(&o.key, "key", "", "encrypt every telegram as a Luxembourg Smarty does (DLMS general-glo-ciphering, AES-128-GCM) with this `key` of 32 hex digits; frame counter from 1")
	fs.StringVar(&o.authKey, "auth-key", "", "authentication `key` of 32 hex digits for -key (default: the Smarty specification's 00112233445566778899AABBCCDDEEFF)")
	fs.StringVar(&o.title, "system-title", "5341473500000001", "system title for -key: 16 hex digits (manufacturer and serial number; default SAG5 00000001)")
	fs.StringVar(&o.security, "security", "30", "security byte for -key: 30 (encrypted and authenticated, GCM tag) or 20 (encrypted only, as some Austrian meters)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: p1sim [flags]")
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (p1sim takes flags only)", fs.Arg(0))
	}
	if err := checkNetFlags(fs, &o.net); err != nil {
		return nil, err
	}
	if c.Interval < time.Millisecond {
		return nil, fmt.Errorf("-interval: want at least 1ms, got %v", c.Interval)
	}
	if c.DripFor <= 0 {
		return nil, fmt.Errorf("-drip: want a positive duration, got %v", c.DripFor)
	}
	for name, v := range map[string]int{"-fault-badcrc-every": c.Faults.BadCRCEvery, "-fault-garbage-every": c.Faults.GarbageEvery,
		"-fault-cut-every": c.Faults.CutEvery, "-fault-drip-every": c.Faults.DripEvery, "-fault-disconnect-after": c.Faults.DisconnectAfter} {
		if v < 0 {
			return nil, fmt.Errorf("%s: want 0 (off) or a positive count, got %d", name, v)
		}
	}
	if !(o.speed > 0) {
		return nil, fmt.Errorf("-speed: want a positive factor, got %v", o.speed)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("-log-format: want text or json, got %q", o.logFormat)
	}
	loc, err := time.LoadLocation(o.tz)
	if err != nil {
		return nil, fmt.Errorf("-tz: unknown time zone %q", o.tz)
	}
	c.Meter.Loc = loc
	start := time.Now()
	if o.start != "" {
		if start, err = time.ParseInLocation("2006-01-02T15:04:05", o.start, loc); err != nil {
			return nil, fmt.Errorf("-start: want 2006-01-02T15:04:05, got %q", o.start)
		}
	}
	if o.speed != 1 || o.start != "" {
		c.Now = sim.ScaledClock(start, o.speed)
	}
	if c.Wire, err = o.encryption(); err != nil {
		return nil, err
	}
	return o, nil
}

// parsePeriodic parses "30s@2m" into 30 s out of every 2 minutes.
func parsePeriodic(s string) (d, every time.Duration, err error) {
	ds, ps, ok := strings.Cut(s, "@")
	if ok {
		d, err = time.ParseDuration(ds)
		if err == nil {
			every, err = time.ParseDuration(ps)
		}
	}
	if !ok || err != nil || d <= 0 || every <= d {
		return 0, 0, fmt.Errorf("want DURATION@PERIOD with 0 < DURATION < PERIOD, e.g. 30s@2m")
	}
	return d, every, nil
}

// serve runs the simulator until ctx is done and returns the exit status.
func serve(ctx context.Context, args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "p1sim: %v\n", err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: o.logLevel}
	var logger *slog.Logger
	if o.logFormat == "json" {
		logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	} else {
		logger = slog.New(slog.NewTextHandler(stderr, hopts))
	}
	o.sim.Logger = logger
	if o.net.mode != "tcp" {
		return serveNet(ctx, o, logger)
	}
	srv, err := sim.NewServer(o.sim)
	if err != nil {
		fmt.Fprintf(stderr, "p1sim: %v\n", err)
		return 1
	}
	var ctl net.Listener
	if o.control != "" {
		if ctl, err = net.Listen("tcp", o.control); err != nil {
			srv.Close()
			fmt.Fprintf(stderr, "p1sim: -control: %v\n", err)
			return 1
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() {
		runErr = srv.Run(ctx)
		cancel()
	})
	if ctl != nil {
		hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
		logger.Info("control listening", "addr", ctl.Addr().String())
		wg.Go(func() {
			if err := hs.Serve(ctl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("control endpoint failed", "err", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			hs.Shutdown(sctx)
		})
	}
	wg.Wait()
	if runErr != nil {
		logger.Error("gateway stopped", "err", runErr)
		return 1
	}
	st := srv.Stats()
	logger.Info("stopped", "telegrams", st.Telegrams, "connections", st.Accepted)
	return 0
}

// encryption returns the Wire function of -key, -auth-key, -system-title
// and -security, nil without -key. Errors never quote a key.
func (o *options) encryption() (func([]byte) []byte, error) {
	if o.key == "" {
		if o.authKey != "" {
			return nil, errors.New("-auth-key: set without -key")
		}
		return nil, nil
	}
	k, err := dlms.ParseKey(o.key, o.authKey)
	if err != nil {
		flagName := "-key"
		if strings.Contains(err.Error(), "authentication key") {
			flagName = "-auth-key"
		}
		return nil, fmt.Errorf("%s: %v", flagName, err)
	}
	var st [8]byte
	if b, err := hex.DecodeString(o.title); err != nil || len(b) != len(st) {
		return nil, fmt.Errorf("-system-title: want 16 hex digits, got %q", o.title)
	} else {
		copy(st[:], b)
	}
	var sec byte
	switch o.security {
	case "30", "0x30":
		sec = 0x30
	case "20", "0x20":
		sec = 0x20
	default:
		return nil, fmt.Errorf("-security: want 30 or 20, got %q", o.security)
	}
	var counter atomic.Uint32
	return func(frame []byte) []byte {
		out, err := dlms.Seal(nil, k, st, counter.Add(1), sec, frame)
		if err != nil { // a telegram over 64 KiB: p1sim renders none
			return frame
		}
		return out
	}, nil
}
