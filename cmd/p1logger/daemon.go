package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/p1logger/p1logger/ingest"
	"github.com/p1logger/p1logger/ingest/spool"
	"github.com/p1logger/p1logger/internal/answerlimit"
	"github.com/p1logger/p1logger/internal/history"
	"github.com/p1logger/p1logger/rollup"
)

const (
	// drainTimeout bounds the final flush to InfluxDB at shutdown, well
	// inside the 30 s a container runtime waits after SIGTERM.
	drainTimeout = 10 * time.Second
	// dialConcurrency bounds simultaneous dials, so that thousands of
	// gateways starting at once do not overflow accept queues.
	dialConcurrency = 256
)

// maxAnswer bounds every answer read from InfluxDB, decompressed (README:
// "Bounded answers").
const maxAnswer = answerlimit.DefaultMax

// daemon runs p1logger until ctx is cancelled, then shuts down in order:
// readers and HTTP stop first; the batcher writes its last cycle and the
// rollup worker its last rollup; then the writer drains to InfluxDB for at
// most drainTimeout. It returns nil after a clean stop. onListen, if not nil,
// is called with the HTTP server's address once it listens.
func daemon(ctx context.Context, cfg *config, log *slog.Logger, onListen func(addr string)) error {
	sink, err := ingest.NewHTTPSink(ingest.InfluxConfig{
		URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg, Bucket: cfg.InfluxBucket,
	})
	if err != nil {
		return err
	}
	buf, spoolErr, closeBuf := openBuffer(cfg, log)
	defer closeBuf() // runs at return, after the writer has stopped
	writer := ingest.NewWriter(ingest.WriterConfig{
		DrainTimeout: drainTimeout,
		Logger:       log.With("component", "writer"),
	}, buf, sink)

	client, err := newQueryClient(cfg, 120*time.Second)
	if err != nil {
		return err
	}

	gateways := make([]*ingest.Gateway, len(cfg.Gateways))
	names := make([]string, len(cfg.Gateways))
	for i, g := range cfg.Gateways {
		src := g.Source
		if k, ok := cfg.Keys[g.Name]; ok {
			src = decrypting(src, k, &gateways[i], log)
		}
		gateways[i] = ingest.NewGateway(g.Name, src)
		names[i] = g.Name
	}
	worker, err := rollup.New(rollup.Config{
		Location:  cfg.Location,
		Interval:  cfg.RollupInterval,
		Bucket:    cfg.InfluxBucket,
		Logger:    log, // the worker adds its own component attribute
		Gateways:  names,
		StateFile: stateFile(cfg, spoolErr),
	}, writer, client)
	if err != nil {
		return fmt.Errorf("rollup: %w", err)
	}
	hist := history.New(cfg.Location, names)
	batcher := ingest.NewBatcher(ingest.BatcherConfig{
		Cycle:          cfg.Cycle,
		HealthInterval: cfg.RollupInterval,
		Location:       cfg.Location,
		Logger:         log.With("component", "batcher"),
	}, gateways, writer, observers{worker, hist})

	var ln net.Listener
	if cfg.HTTPAddr != "" {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("P1_HTTP_ADDR: %w", err)
		}
		log.Info("http listening", "addr", ln.Addr().String(), "token_required", cfg.HTTPToken != "")
		if cfg.HTTPToken == "" && allInterfaces(cfg.HTTPAddr) {
			log.Warn("the status page listens on all interfaces without P1_HTTP_TOKEN: anyone who reaches the port sees meter ids, live power per phase and gateway addresses; set P1_HTTP_TOKEN, or P1_HTTP_ADDR=127.0.0.1:9188 behind a reverse proxy",
				"addr", cfg.HTTPAddr)
		}
		if onListen != nil {
			onListen(ln.Addr().String())
		}
	}
	log.Info("p1logger started", "gateways", len(gateways), "cycle", cfg.Cycle,
		"influx_url", redactURL(cfg.InfluxURL), "bucket", cfg.InfluxBucket, "timezone", cfg.Location.String())

	// A failing component stops everything through cause.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(errStopped)
	fail := func(err error) error {
		if err != nil {
			cancel(err)
		}
		return err
	}

	// Stage 1: readers (and the parsers they feed) and HTTP, stopped by
	// ctx. Readers.Run returns once every telegram received is parsed into
	// its gateway's slot.
	var inputs errgroup.Group
	readers := ingest.NewReaders(gateways, ingest.ReaderConfig{
		IdleTimeout: cfg.IdleTimeout,
		Location:    cfg.Location,
		Logger:      log,
		DialLimit:   make(chan struct{}, dialConcurrency),
	})
	inputs.Go(func() error { return fail(readers.Run(ctx)) })
	if ln != nil {
		st := &status{gateways: gateways, writer: writer, batcher: batcher, sink: sink, started: time.Now(), energy: worker, spoolErr: spoolErr,
			cycle: cfg.Cycle, history: hist, loc: cfg.Location, country: cfg.Country}
		inputs.Go(func() error { return fail(serveHTTP(ctx, ln, requireToken(cfg.HTTPToken, st.handler()), log)) })
	}

	// Stage 2: batcher, then rollup, stopped once the readers are, so that
	// the last cycle holds the last telegrams, and the rollup's last state
	// file (a clean stop: the next start trusts it without asking InfluxDB)
	// holds every reading the batcher wrote.
	procCtx, stopProc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProc()
	rollCtx, stopRoll := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRoll()
	var procs, rolls errgroup.Group
	procs.Go(func() error { return fail(batcher.Run(procCtx)) })
	rolls.Go(func() error { return fail(worker.Run(rollCtx)) })

	// Stage 3: the writer, stopped last; it drains for drainTimeout.
	writeCtx, stopWrite := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWrite()
	var out errgroup.Group
	out.Go(func() error { return fail(writer.Run(writeCtx)) })

	<-ctx.Done()
	log.Info("shutting down: stopping readers")
	inputs.Wait()
	stopProc()
	procs.Wait()
	stopRoll()
	rolls.Wait()
	log.Info("shutting down: flushing to influxdb", "buffered_bytes", buf.Bytes(), "timeout", drainTimeout)
	stopWrite()
	out.Wait()
	ws := writer.Stats()
	log.Info("p1logger stopped", "points_written", ws.Points, "bytes_left", ws.BufferedBytes)

	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, errStopped) {
		return cause
	}
	return nil
}

// openBuffer returns the write buffer: the durable spool in P1_SPOOL_DIR, or
// a memory buffer that loses its contents on restart, why P1_SPOOL_DIR is
// not used when it is set but unusable (for /readyz and /metrics), and a
// function that closes it. A spool directory that cannot be used (read-only, no
// permission, locked by another process) is logged as an error and the
// memory buffer used instead: exiting would stop the readers too, and a
// restart loop would lose every reading until someone fixes the directory.
// The reason is returned too, so that /readyz and /metrics show it (a
// second instance on the same directory is the common case).
func openBuffer(cfg *config, log *slog.Logger) (ingest.Buffer, string, func()) {
	blog := log.With("component", "buffer")
	room := int64(0)
	if cfg.SpoolDir != "" {
		room = diskRoom(cfg.SpoolDir)
	}
	plan := planBuffer(len(cfg.Gateways), cfg.Cycle, cfg.SpoolMaxAge, cfg.SpoolMaxBytes, room, memoryLimit())
	memory := func(why string) (ingest.Buffer, string, func()) {
		logCapacity(log, "memory", plan, plan.Mem, plan.MemAge, len(cfg.Gateways), cfg.Cycle,
			"set P1_SPOOL_DIR for a buffer on disk that holds more and survives restarts")
		mb := spool.NewMemBuffer(int(plan.Mem), 1<<20, blog)
		mb.ExpectRate(plan.Rate)
		return mb, why, func() {}
	}
	if cfg.SpoolDir == "" {
		if cfg.SpoolMaxBytes != 0 {
			log.Warn("P1_SPOOL_MAX_BYTES has no effect without P1_SPOOL_DIR")
		}
		log.Info("write buffer in memory only: points waiting for influxdb are lost on restart, and every start recovers the day and month from influxdb (set P1_SPOOL_DIR to keep both)")
		return memory("")
	}
	sp, err := spool.Open(spool.Config{
		Dir:          cfg.SpoolDir,
		MaxBytes:     plan.Disk,
		MemoryBytes:  plan.Mem,
		ExpectedRate: plan.Rate,
		Logger:       blog,
	})
	if err != nil {
		log.Error("P1_SPOOL_DIR cannot be used; points waiting for influxdb are held in memory only and lost on restart",
			"dir", cfg.SpoolDir, "reason", err)
		return memory(err.Error())
	}
	hint := "free disk space or lower P1_SPOOL_MAX_AGE"
	if plan.Explicit {
		hint = "raise P1_SPOOL_MAX_BYTES or unset it to size the spool from P1_SPOOL_MAX_AGE"
	}
	log.Info("write buffer on disk", "dir", cfg.SpoolDir)
	logCapacity(log, "disk", plan, sp.Stats().MaxBytes, plan.DiskAge, len(cfg.Gateways), cfg.Cycle, hint)
	return sp, "", func() {
		if err := sp.Close(); err != nil {
			log.Error("spool: close", "reason", err)
		}
	}
}

// logCapacity logs at start how long an outage the write buffer holds, by
// the estimate: as information when it holds P1_SPOOL_MAX_AGE, as a
// warning with what to do when its bound is smaller.
func logCapacity(log *slog.Logger, where string, plan bufferPlan, bytes int64, holds time.Duration, gateways int, cycle time.Duration, hint string) {
	args := []any{"buffer", where, "max_bytes", bytes, "holds", fmtLeft(holds), "gateways", gateways, "cycle", cycle,
		"needs_bytes", plan.Want}
	if where == "disk" && plan.DiskCap > 0 {
		args = append(args, "disk_ceiling_bytes", plan.DiskCap)
	}
	if holds >= plan.Age {
		log.Info("write buffer holds an outage of P1_SPOOL_MAX_AGE", append(args, "P1_SPOOL_MAX_AGE", plan.Age.String())...)
		return
	}
	log.Warn("write buffer holds a shorter outage than P1_SPOOL_MAX_AGE; "+hint,
		append(args, "P1_SPOOL_MAX_AGE", plan.Age.String())...)
}

// stateName is the rollup's state file in P1_SPOOL_DIR.
const stateName = "rollup.state"

// stateFile returns where the rollup keeps its state: in P1_SPOOL_DIR,
// beside the spool, whose lock also keeps a second p1logger from sharing
// it. When the spool directory cannot be used (spoolErr), nor can the
// state: another process may be writing it.
func stateFile(cfg *config, spoolErr string) string {
	if cfg.SpoolDir == "" || spoolErr != "" {
		return ""
	}
	return filepath.Join(cfg.SpoolDir, stateName)
}

// allInterfaces reports whether the listen address addr (host:port) takes
// connections on every interface: no host, or an unspecified address.
func allInterfaces(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}
