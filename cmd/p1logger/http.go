package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/p1logger/p1logger/ingest"
	"github.com/p1logger/p1logger/internal/history"
)

// status serves the HTTP endpoints of DESIGN.md from the pipeline's state.
type status struct {
	gateways []*ingest.Gateway
	writer   *ingest.Writer
	batcher  *ingest.Batcher
	sink     interface{ Ping(context.Context) error }
	started  time.Time
	energy   energySource   // today's and this month's energy for the page (status.go)
	history  *history.Store // the page's charts (status.go); nil serves none
	loc      *time.Location // P1_TIMEZONE, for the page's clock times
	country  string         // P1_COUNTRY; "" = each gateway's from its telegrams
	// spoolErr says why P1_SPOOL_DIR is not used (locked by another
	// process, unwritable); empty when it is, or when none is set.
	spoolErr string
	cycle    time.Duration // P1_CYCLE: delivery within two of them is not behind
}

func (s *status) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", s.web()) // the page, /status.txt and /api/v1/status (status.go)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /api/v1/gateways", s.apiGateways)
	return mux
}

// serveHTTP serves h on ln until ctx is cancelled, then shuts down within
// a few seconds. It returns nil after a shutdown and the error of a server
// that failed. Requests and connections are bounded (httpguard.go): the
// port may be reachable by anyone.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	limit := newConnLimiter(maxHTTPConns)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ConnState:         limit.track,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(limit.listen(ln)) }()
	select {
	case err := <-done:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// readyz answers 200 when InfluxDB answers its ping, it did not reject the
// token on the last write, and at least one gateway
// is connected, 503 with the reasons otherwise.
func (s *status) readyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.sink.Ping(ctx); err != nil {
		problems = append(problems, "influxdb unreachable: "+err.Error())
	}
	if ws := s.writer.Stats(); ws.TokenRejected {
		problems = append(problems, "influxdb token rejected (points are kept and retried): "+ws.LastError)
	}
	if s.spoolErr != "" {
		problems = append(problems, "P1_SPOOL_DIR unusable, points wait in memory only: "+s.spoolErr)
	}
	var warning string
	if left, ok := s.writer.Stats().Buffer.TimeLeft(); ok && left < time.Hour {
		warning = fmt.Sprintf("; warning: the write buffer holds only %s more of outage at the current rate", fmtLeft(left))
	}
	connected := 0
	for _, g := range s.gateways {
		if g.Stats().Connected {
			connected++
		}
	}
	if connected == 0 {
		problems = append(problems, fmt.Sprintf("no gateway connected (of %d)", len(s.gateways)))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, strings.Join(problems, "\n")+"\n")
		return
	}
	fmt.Fprintf(w, "ready: influxdb reachable, %d of %d gateways connected%s\n", connected, len(s.gateways), warning)
}

// bufferLine says in words where the write buffer is, how much longer an
// outage it can absorb and how far behind delivery is.
func bufferLine(b ingest.BufferStats, now time.Time, cycle time.Duration) string {
	where := "in memory (lost on restart)"
	if b.Durable {
		where = "on disk"
	}
	line := fmt.Sprintf("%s, %d points waiting in %d of %d bytes", where, b.Points, b.StoredBytes, b.Capacity)
	if left, ok := b.TimeLeft(); ok {
		line += ", holds " + fmtLeft(left) + " more of outage at the current rate"
	}
	if lag := deliveryLag(b.Oldest, now, cycle); lag > 0 {
		line += ", delivery " + fmtLeft(time.Duration(lag*float64(time.Second))) + " behind"
	}
	return line
}

// fmtLeft writes an outage capacity as people read it: "12 h 40 min".
func fmtLeft(d time.Duration) string {
	m := int64(d / time.Minute)
	if m == 0 {
		return fmt.Sprintf("%d s", int64(d/time.Second))
	}
	if m < 60 {
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d h %d min", m/60, m%60)
}

// metrics writes the Prometheus text exposition format.
func (s *status) metrics(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	now := time.Now()
	stats := make([]ingest.GatewayStats, len(s.gateways))
	for i, g := range s.gateways {
		stats[i] = g.Stats()
	}
	type gauge struct {
		name, help, typ string
		val             func(*ingest.GatewayStats) (float64, bool)
	}
	per := []gauge{
		{"p1logger_gateway_connected", "1 when the gateway's TCP connection is up.", "gauge",
			func(s *ingest.GatewayStats) (float64, bool) { return b2f(s.Connected), true }},
		{"p1logger_gateway_telegrams_total", "Telegrams accepted.", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.Telegrams), true }},
		{"p1logger_gateway_crc_errors_total", "Telegrams whose CRC did not match.", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.CRCErrors), true }},
		{"p1logger_gateway_parse_errors_total", "Cut frames and undecodable lines.", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.ParseErrors), true }},
		{"p1logger_gateway_dropped_telegrams_total", "Telegrams rejected (CRC, frame, or syntax error without CRC).", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.Dropped), true }},
		{"p1logger_gateway_reconnects_total", "Dials after the first, successful or not.", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.Reconnects), true }},
		{"p1logger_gateway_skipped_bytes_total", "Bytes received outside any telegram.", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.SkippedBytes), true }},
		{"p1logger_gateway_skipped_telegrams_total", "Telegrams framed but not parsed: the gateway sent more than 10 a second on average (the newest is kept).", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.SkippedTelegrams), true }},
		{"p1logger_gateway_internal_errors_total", "Telegrams dropped because decoding or encoding them failed on a bug in p1logger (logged with the telegram).", "counter",
			func(s *ingest.GatewayStats) (float64, bool) { return float64(s.InternalErrors), true }},
		{"p1logger_gateway_last_telegram_age_seconds", "Seconds since the newest accepted telegram (absent before the first).", "gauge",
			func(s *ingest.GatewayStats) (float64, bool) {
				if s.LastTelegram.IsZero() {
					return 0, false
				}
				return now.Sub(s.LastTelegram).Seconds(), true
			}},
	}
	for _, m := range per {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for i := range stats {
			if v, ok := m.val(&stats[i]); ok {
				fmt.Fprintf(&b, "%s{gateway=\"%s\"} %s\n", m.name, labelEscape(stats[i].Name), fmtFloat(v))
			}
		}
	}
	ws := s.writer.Stats()
	bs := s.batcher.Stats()
	single := func(name, typ, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, fmtFloat(v))
	}
	single("p1logger_points_written_total", "counter", "Points InfluxDB accepted.", float64(ws.Points))
	single("p1logger_write_batches_total", "counter", "Write requests InfluxDB accepted.", float64(ws.Batches))
	single("p1logger_write_errors_total", "counter", "Failed write attempts (each retry counts).", float64(ws.WriteErrors))
	bst := ws.Buffer
	single("p1logger_points_dropped_total", "counter", "Points InfluxDB refused for good or that did not fit the buffer.", float64(ws.DroppedPoints+bst.DroppedPoints+bst.CorruptPoints))
	single("p1logger_write_failing", "gauge", "1 while the last write attempt failed and is being retried.", b2f(ws.Failing))
	single("p1logger_write_buffer_bytes", "gauge", "Bytes of line protocol waiting for InfluxDB.", float64(ws.BufferedBytes))
	single("p1logger_influx_token_rejected", "gauge", "1 while InfluxDB rejects the token (401/403); points are kept and retried.", b2f(ws.TokenRejected))
	oldest := 0.0
	if !bst.Oldest.IsZero() {
		oldest = max(now.Sub(bst.Oldest).Seconds(), 0)
	}
	single("p1logger_spool_bytes", "gauge", "Bytes of the spool's segment files in P1_SPOOL_DIR (0 without it).", float64(bst.DiskBytes))
	single("p1logger_spool_max_bytes", "gauge", "Bound of the spool files, P1_SPOOL_MAX_BYTES (0 without P1_SPOOL_DIR).", float64(bst.MaxBytes))
	single("p1logger_spool_batches", "gauge", "Batches waiting for InfluxDB, in the spool or the memory buffer.", float64(bst.Batches))
	single("p1logger_spool_points", "gauge", "Points waiting for InfluxDB.", float64(bst.Points))
	single("p1logger_spool_oldest_age_seconds", "gauge", "Age of the oldest batch waiting for InfluxDB; 0 when none waits.", oldest)
	single("p1logger_spool_replayed_points_total", "counter", "Points delivered after waiting through a failed write, or left by a previous run.", float64(ws.ReplayedPoints))
	single("p1logger_spool_dropped_points_total", "counter", "Points dropped because the spool or the memory buffer was full, or lost in damaged records.", float64(bst.DroppedPoints+bst.CorruptPoints))
	single("p1logger_spool_disk_errors_total", "counter", "Failed writes, fsyncs and removals in P1_SPOOL_DIR.", float64(bst.DiskErrors))
	single("p1logger_spool_corrupt_records_total", "counter", "Spool records found damaged and skipped (the intact ones around them are kept).", float64(bst.CorruptRecords))
	single("p1logger_spool_corrupt_points_total", "counter", "Points in damaged spool records.", float64(bst.CorruptPoints))
	single("p1logger_spool_unusable", "gauge", "1 when P1_SPOOL_DIR is set but cannot be used (locked by another process, unwritable): points wait in memory only.", b2f(s.spoolErr != ""))
	single("p1logger_spool_stored_bytes", "gauge", "Bytes the waiting points take in the spool or memory buffer (compressed).", float64(bst.StoredBytes))
	single("p1logger_spool_capacity_bytes", "gauge", "Bound on the stored bytes of the spool or memory buffer.", float64(bst.Capacity))
	left := -1.0
	if d, ok := bst.TimeLeft(); ok {
		left = d.Seconds()
	}
	single("p1logger_spool_capacity_seconds", "gauge", "How long an outage the buffer can still absorb at the current rate before it drops points; -1 until the rate is known.", left)
	single("p1logger_spool_memory_fallback", "gauge", "1 while P1_SPOOL_DIR cannot be written and new points are held in memory.", b2f(bst.MemoryFallback))
	single("p1logger_cycles_total", "counter", "Write cycles run.", float64(bs.Cycles))
	single("p1logger_p1_points_total", "counter", "p1 points encoded.", float64(bs.P1Points))
	single("p1logger_mbus_points_total", "counter", "p1_mbus points encoded.", float64(bs.MBusPoints))
	single("p1logger_peak_points_total", "counter", "p1_peak points encoded.", float64(bs.PeakPoints))
	single("p1logger_cycle_duration_seconds", "gauge", "Time the last cycle took to encode and queue its points.", bs.LastCycle.Seconds())
	single("p1logger_uptime_seconds", "gauge", "Seconds since start.", now.Sub(s.started).Seconds())

	const h = "p1logger_write_duration_seconds"
	fmt.Fprintf(&b, "# HELP %s Duration of write requests to InfluxDB.\n# TYPE %s histogram\n", h, h)
	for i, le := range ingest.LatencyBuckets {
		fmt.Fprintf(&b, "%s_bucket{le=\"%s\"} %d\n", h, fmtFloat(le), ws.Latency.Buckets[i])
	}
	fmt.Fprintf(&b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", h, ws.Latency.Count, h, fmtFloat(ws.Latency.Sum), h, ws.Latency.Count)

	// go_*, process_* and p1logger_build_info (metrics_runtime.go). A
	// collector that fails (no /proc) leaves its families out; the rest of
	// the page is still worth scraping.
	if err := writeRuntimeMetrics(&b, runtimeMetrics()); err != nil {
		fmt.Fprintf(&b, "# %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	}

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// labelEscaper escapes a Prometheus label value. Built once: /metrics
// escapes several labels per gateway, tens of thousands at 10k gateways.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func labelEscape(s string) string { return labelEscaper.Replace(s) }

// gatewayJSON is one entry of /api/v1/gateways.
type gatewayJSON struct {
	Name             string          `json:"name"`
	Address          string          `json:"address"`
	Source           string          `json:"source"`
	Connected        bool            `json:"connected"`
	Since            *time.Time      `json:"since,omitempty"`
	LastError        string          `json:"last_error,omitempty"`
	LastTelegram     *time.Time      `json:"last_telegram,omitempty"`
	LastTelegramAgeS *float64        `json:"last_telegram_age_s,omitempty"`
	Telegrams        int64           `json:"telegrams"`
	CRCErrors        int64           `json:"crc_errors"`
	ParseErrors      int64           `json:"parse_errors"`
	DroppedTelegrams int64           `json:"dropped_telegrams"`
	Reconnects       int64           `json:"reconnects"`
	SkippedBytes     int64           `json:"skipped_bytes"`
	Latest           json.RawMessage `json:"latest,omitempty"`
}

// apiGateways answers {"gateways": [...]}: per gateway its state, counters
// and its newest telegram decoded as "p1logger decode" prints it.
func (s *status) apiGateways(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	out := struct {
		Gateways []gatewayJSON `json:"gateways"`
	}{Gateways: make([]gatewayJSON, 0, len(s.gateways))}
	for _, g := range s.gateways {
		j, _ := newGatewayJSON(g, now)
		out.Gateways = append(out.Gateways, j)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// index is a short human-readable status page.
func (s *status) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	now := time.Now()
	ws := s.writer.Stats()
	fmt.Fprintf(w, "p1logger — up %s\n\n", now.Sub(s.started).Round(time.Second))
	fmt.Fprintf(w, "InfluxDB: %d points written, %d write errors, %d bytes buffered", ws.Points, ws.WriteErrors, ws.BufferedBytes)
	if ws.Failing {
		fmt.Fprintf(w, ", FAILING: %s", ws.LastError)
	}
	io.WriteString(w, "\nWrite buffer: "+bufferLine(ws.Buffer, now, s.cycle))
	fmt.Fprintf(w, "\n\n%-20s %-24s %-10s %10s %6s %6s %6s %s\n", "gateway", "address", "state", "telegrams", "crc", "parse", "redial", "last telegram")
	for _, g := range s.gateways {
		st := g.Stats()
		state := "down"
		if st.Connected {
			state = "connected"
		}
		last := "never"
		if !st.LastTelegram.IsZero() {
			last = now.Sub(st.LastTelegram).Round(100*time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(w, "%-20s %-24s %-10s %10d %6d %6d %6d %s\n", st.Name, st.Addr, state, st.Telegrams, st.CRCErrors, st.ParseErrors, st.Reconnects, last)
		if !st.Connected && st.LastError != "" {
			fmt.Fprintf(w, "%20s last error: %s\n", "", st.LastError)
		}
	}
	io.WriteString(w, "\nEndpoints: /healthz /readyz /metrics /api/v1/gateways\n")
}
