package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/spool"
	"github.com/p1logger/p1logger/internal/cyclecheck"
	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/sim"
)

// The fault tests run sim gateways that send a telegram every simInterval
// to a p1logger with a cycle of outageCycle: every telegram falls in a cycle
// of its own, so every good telegram sent must become exactly one p1 point.
const (
	simInterval = 600 * time.Millisecond
	outageCycle = "200ms"
)

// logBuffer keeps a daemon's log for assertions and shows it in the test's
// output.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemonLogged is startDaemon with the log kept for assertions.
func startDaemonLogged(t *testing.T, env []string) (string, *logBuffer, func() error) {
	t.Helper()
	logs := &logBuffer{t: t}
	addr, stop := startDaemonTo(t, env, logs)
	return "http://" + addr, logs, stop
}

// startSims starts n clean sim gateways named gw0, gw1, … and returns them
// and the P1_GATEWAYS value for them.
func startSims(t *testing.T, n int) ([]*simGateway, string) {
	var gws []*simGateway
	var list []string
	for i := range n {
		name := fmt.Sprintf("gw%d", i)
		g := startSim(t, name, simInterval, sim.Faults{})
		gws = append(gws, g)
		list = append(list, name+"="+g.addr())
	}
	return gws, "P1_GATEWAYS=" + strings.Join(list, ",")
}

// assertEveryCycle checks, per gateway, that every good telegram sent up to
// before is exactly one p1 point in bucket. Telegrams sent at or after
// before (during shutdown) may be missing. exclude, if not nil, leaves out
// telegrams nobody could have received.
func assertEveryCycle(t *testing.T, srv *influxtest.Server, bucket string, gws []*simGateway, before time.Time, exclude func(int, sim.Sent) bool) {
	t.Helper()
	rows := byGateway(fluxRows(t, srv, bucket, "p1"))
	for i, g := range gws {
		name := fmt.Sprintf("gw%d", i)
		var sent []sim.Sent
		for _, s := range g.good() {
			if exclude == nil || !exclude(i, s) {
				sent = append(sent, s)
			}
		}
		c := cyclecheck.Cycles(rows[name], sent)
		var lost []time.Time
		for _, at := range c.MissingAt {
			if at.Before(before) {
				lost = append(lost, at)
			}
		}
		t.Logf("%s: %d telegrams sent, %d points found, %d missing (%d before the end), %d duplicated, %d unexpected",
			name, c.Expected, c.Found, c.Missing, len(lost), c.Duplicated, c.Unexpected)
		if len(lost) > 0 || c.Duplicated > 0 || c.Unexpected > 0 || c.Found < 10 {
			t.Errorf("%s: cycles lost at %v; %d duplicated, %d unexpected, %d found", name, lost, c.Duplicated, c.Unexpected, c.Found)
		}
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	_, m := get(t, base+"/metrics")
	return m
}

func restartInflux(t *testing.T, srv *influxtest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOutage: InfluxDB goes away while several gateways stream at a short
// cycle; p1logger keeps reading, reports the outage, and once InfluxDB is
// back delivers every cycle exactly once, with the durable spool (InfluxDB
// killed, as in a crash) and with the memory buffer (InfluxDB stopped).
func TestOutage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spool bool
	}{{"spool", true}, {"memory", false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := influxtest.New(t)
			bucket := srv.NewBucket(t)
			gws, gwEnv := startSims(t, 3)
			env := []string{gwEnv, "P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket,
				"P1_CYCLE=" + outageCycle, "P1_ROLLUP_INTERVAL=2s"}
			if tc.spool {
				env = append(env, "P1_SPOOL_DIR="+t.TempDir())
			}
			base, logs, stop := startDaemonLogged(t, env)
			waitFor(t, 15*time.Second, "points written", func() bool {
				return metric(t, scrape(t, base), "p1logger_points_written_total") > 10
			})
			telegrams := `p1logger_gateway_telegrams_total{gateway="gw0"}`
			before := metric(t, scrape(t, base), telegrams)
			if tc.spool {
				srv.Kill()
			} else if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(8 * time.Second)

			m := scrape(t, base)
			// The spool keeps a record per append, the memory buffer
			// merges them into chunks.
			minBatches := 1.0
			if tc.spool {
				minBatches = 20
			}
			if metric(t, m, "p1logger_write_failing") != 1 || metric(t, m, "p1logger_spool_batches") < minBatches ||
				metric(t, m, "p1logger_spool_oldest_age_seconds") < 5 || metric(t, m, "p1logger_spool_points") < 20 {
				t.Errorf("metrics during the outage do not show it:\n%s", grepMetrics(m, "p1logger_spool_", "p1logger_write_"))
			}
			if got := metric(t, m, "p1logger_spool_bytes"); tc.spool != (got > 0) {
				t.Errorf("p1logger_spool_bytes %v with spool %v", got, tc.spool)
			}
			if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "influxdb unreachable") {
				t.Errorf("/readyz during the outage: %d %q", code, body)
			}
			// The status says how far behind delivery is (8 s of outage)
			// and how much more the buffer holds, in the API and in words.
			var live liveStatus
			if code, body := get(t, base+"/api/v1/status"); code != 200 || json.Unmarshal([]byte(body), &live) != nil {
				t.Errorf("/api/v1/status during the outage: %d %q", code, body)
			}
			if in := live.Influx; in.DeliveryLagS < 5 || in.DeliveryLagS > 30 || in.WaitingPoints < 20 || in.BufferDurable != tc.spool ||
				in.BufferTimeLeftS == nil || *in.BufferTimeLeftS < 3600 {
				t.Errorf("/api/v1/status during the outage: %+v (time left %v)", in, in.BufferTimeLeftS)
			}
			if _, body := get(t, base+"/status.txt"); !strings.Contains(body, " behind") || !strings.Contains(body, "more of outage at the current rate") {
				t.Errorf("/status.txt during the outage does not say how far behind delivery is and what the buffer holds:\n%s", body)
			}
			if v := metric(t, m, telegrams) - before; v < 11 {
				t.Errorf("readers slowed down during the outage: %v telegrams in 8 s at %s", v, simInterval)
			}

			restartInflux(t, srv)
			waitFor(t, 60*time.Second, "backlog delivered", func() bool {
				m := scrape(t, base)
				return metric(t, m, "p1logger_spool_batches") <= 1 && metric(t, m, "p1logger_write_failing") == 0
			})
			m = scrape(t, base)
			if metric(t, m, "p1logger_spool_replayed_points_total") < 20 || metric(t, m, "p1logger_points_dropped_total") != 0 {
				t.Errorf("after recovery:\n%s", grepMetrics(m, "p1logger_spool_", "p1logger_points_"))
			}
			if !strings.Contains(logs.String(), "backlog delivered") {
				t.Error("no log line for the delivered backlog")
			}
			time.Sleep(time.Second)
			end := time.Now().Add(-simInterval)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			assertEveryCycle(t, srv, bucket, gws, end, nil)
		})
	}
}

func grepMetrics(m string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(m, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// buildP1logger builds the p1logger binary into a temporary directory.
func buildP1logger(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "p1logger")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a p1logger process.
type proc struct {
	cmd  *exec.Cmd
	logs *logBuffer
	done chan error
}

func startProc(t *testing.T, bin string, env []string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin), logs: &logBuffer{t: t}, done: make(chan error, 1)}
	p.cmd.Env = append([]string{"P1_LOG_FORMAT=json", "P1_TIMEZONE=Europe/Brussels", "PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// logAttr returns the attribute key of the first JSON log line with msg.
func (p *proc) logAttr(msg, key string) (any, bool) {
	for _, l := range strings.Split(p.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == msg {
			v, ok := rec[key]
			return v, ok
		}
	}
	return nil, false
}

// TestKill9DuringOutage kills the p1logger binary with SIGKILL while
// InfluxDB is down, starts it again on the same spool, and brings InfluxDB
// back: every cycle is delivered exactly once, and the restarted process
// delivers only what the killed one had not (no acknowledged point again).
func TestKill9DuringOutage(t *testing.T) {
	srv := influxtest.New(t)
	bucket := srv.NewBucket(t)
	gws, gwEnv := startSims(t, 3)
	bin := buildP1logger(t)
	addr := freeAddr(t)
	base := "http://" + addr
	env := []string{gwEnv, "P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=" + outageCycle, "P1_ROLLUP_INTERVAL=1h", "P1_HTTP_ADDR=" + addr,
		"P1_SPOOL_DIR=" + t.TempDir()}

	p1 := startProc(t, bin, env)
	waitFor(t, 20*time.Second, "points written", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return metric(t, string(b), "p1logger_points_written_total") > 20
	})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	// Silence the gateways so that nothing is in flight between a gateway
	// and the spool when the kill comes: everything sent was spooled.
	for _, g := range gws {
		g.srv.Inject(sim.Fault{Kind: sim.FaultSilence, For: 4 * time.Second})
	}
	time.Sleep(1500 * time.Millisecond)
	m := scrape(t, base)
	spooled := metric(t, m, "p1logger_spool_points")
	written := metric(t, m, "p1logger_points_written_total")
	if spooled < 15 {
		t.Fatalf("only %v points spooled after 4 s of outage", spooled)
	}
	killed := time.Now()
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-p1.done; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("p1logger exit after SIGKILL: %v", err)
	}
	p1.done <- nil // for the cleanup

	p2 := startProc(t, bin, env)
	waitFor(t, 10*time.Second, "the second process to recover the spool", func() bool {
		_, ok := p2.logAttr("spool: undelivered points from a previous run; delivering them first, oldest first", "points")
		return ok
	})
	recovered, _ := p2.logAttr("spool: undelivered points from a previous run; delivering them first, oldest first", "points")
	t.Logf("killed with %v points delivered and %v spooled; the restart recovered %v", written, spooled, recovered)
	if r, _ := recovered.(float64); r != spooled {
		t.Errorf("restart recovered %v points, want the %v spooled (none of the %v delivered)", recovered, spooled, written)
	}
	time.Sleep(4 * time.Second) // new telegrams are spooled behind the old
	restartInflux(t, srv)
	waitFor(t, 60*time.Second, "backlog delivered", func() bool {
		m := scrape(t, base)
		return metric(t, m, "p1logger_spool_batches") <= 1 && metric(t, m, "p1logger_write_failing") == 0
	})
	if r := metric(t, scrape(t, base), "p1logger_spool_replayed_points_total"); r < spooled {
		t.Errorf("replayed %v points, want at least the %v recovered", r, spooled)
	}
	time.Sleep(time.Second)
	end := time.Now().Add(-simInterval)
	p2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p2.done:
		p2.done <- nil
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	// A telegram the gateway wrote to the killed process's socket after
	// the kill reached nobody.
	lastConn := make([]uint64, len(gws))
	for i, g := range gws {
		for _, s := range g.good() {
			if s.At.Before(killed) {
				lastConn[i] = s.Conn
			}
		}
	}
	assertEveryCycle(t, srv, bucket, gws, end, func(i int, s sim.Sent) bool {
		return s.At.After(killed) && s.Conn == lastConn[i]
	})
}

// TestSpoolDiskFull puts P1_SPOOL_DIR on a 16 KiB tmpfs and stops InfluxDB:
// the spool fills the disk, says so once, counts it, and holds new points in
// memory; the readers keep going; once InfluxDB is back every cycle is
// delivered, from disk and from memory, exactly once.
func TestSpoolDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): needs root; the ingest package's TestSpoolDiskFull covers the logic with a failing file", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	srv := influxtest.New(t)
	bucket := srv.NewBucket(t)
	gws, gwEnv := startSims(t, 3)
	base, logs, stop := startDaemonLogged(t, []string{gwEnv, "P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=" + outageCycle, "P1_ROLLUP_INTERVAL=2s", "P1_SPOOL_DIR=" + dir})
	waitFor(t, 15*time.Second, "points written", func() bool {
		return metric(t, scrape(t, base), "p1logger_points_written_total") > 10
	})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the spool to fill the disk", func() bool {
		return metric(t, scrape(t, base), "p1logger_spool_memory_fallback") == 1
	})
	before := metric(t, scrape(t, base), `p1logger_gateway_telegrams_total{gateway="gw0"}`)
	time.Sleep(12 * time.Second) // past a retry of the disk
	m := scrape(t, base)
	if n := strings.Count(logs.String(), "cannot write to the spool directory"); n != 1 {
		t.Errorf("disk full logged %d times, want once", n)
	}
	if !strings.Contains(logs.String(), "no space left on device") {
		t.Error("the log does not say the disk is full")
	}
	if metric(t, m, "p1logger_spool_disk_errors_total") < 2 || metric(t, m, "p1logger_spool_memory_fallback") != 1 {
		t.Errorf("metrics:\n%s", grepMetrics(m, "p1logger_spool_"))
	}
	if after := metric(t, m, `p1logger_gateway_telegrams_total{gateway="gw0"}`); after-before < 15 {
		t.Errorf("readers slowed down on a full disk: %v telegrams in 12 s", after-before)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}

	restartInflux(t, srv)
	waitFor(t, 60*time.Second, "backlog delivered", func() bool {
		m := scrape(t, base)
		return metric(t, m, "p1logger_spool_batches") <= 1 && metric(t, m, "p1logger_write_failing") == 0
	})
	time.Sleep(time.Second)
	end := time.Now().Add(-simInterval)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertEveryCycle(t, srv, bucket, gws, end, nil)
}

// TestTokenRejected puts a proxy in front of the real InfluxDB that answers
// writes with 401, as InfluxDB does for an expired token, until the token is
// "fixed": points are spooled, "token rejected" is reported in the log,
// /readyz and /metrics, and everything is delivered after the fix.
func TestTokenRejected(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	target, _ := url.Parse(srv.URL())
	var reject atomic.Bool
	var rejected atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reject.Load() && r.URL.Path == "/api/v2/write" {
			rejected.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"code":"unauthorized","message":"unauthorized access"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	gws, gwEnv := startSims(t, 2)
	base, logs, stop := startDaemonLogged(t, []string{gwEnv, "P1_INFLUX_URL=" + front.URL, "P1_INFLUX_BUCKET=" + bucket,
		"P1_INFLUX_TOKEN=expired", "P1_CYCLE=" + outageCycle, "P1_ROLLUP_INTERVAL=2s", "P1_SPOOL_DIR=" + t.TempDir()})
	waitFor(t, 15*time.Second, "points written", func() bool {
		return metric(t, scrape(t, base), "p1logger_points_written_total") > 5
	})
	reject.Store(true) // the token expires
	waitFor(t, 10*time.Second, "a rejected write", func() bool { return rejected.Load() > 0 })
	time.Sleep(5 * time.Second)
	m := scrape(t, base)
	if metric(t, m, "p1logger_influx_token_rejected") != 1 || metric(t, m, "p1logger_spool_points") < 10 {
		t.Errorf("metrics with the token rejected:\n%s", grepMetrics(m, "p1logger_spool_", "p1logger_influx_", "p1logger_write_"))
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "token rejected") {
		t.Errorf("/readyz with the token rejected: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), "influxdb token rejected") {
		t.Error("the log does not say the token was rejected")
	}

	reject.Store(false) // the token is fixed
	waitFor(t, 30*time.Second, "backlog delivered", func() bool {
		m := scrape(t, base)
		return metric(t, m, "p1logger_spool_batches") <= 1 && metric(t, m, "p1logger_influx_token_rejected") == 0
	})
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after the fix: %d %q", code, body)
	}
	time.Sleep(time.Second)
	end := time.Now().Add(-simInterval)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertEveryCycle(t, srv, bucket, gws, end, nil)
}

// TestSpoolDirUnusable: a spool directory that cannot be used (here: locked
// by another process's spool) is an error in the log, not a stop: the
// daemon reads and writes with the memory buffer.
func TestSpoolDirUnusable(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	other, err := spool.Open(spool.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, gwEnv := startSims(t, 1)
	base, logs, stop := startDaemonLogged(t, []string{gwEnv, "P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=" + outageCycle, "P1_SPOOL_DIR=" + dir})
	waitFor(t, 15*time.Second, "points written", func() bool {
		return metric(t, scrape(t, base), "p1logger_points_written_total") > 3
	})
	if !strings.Contains(logs.String(), "P1_SPOOL_DIR cannot be used") || !strings.Contains(logs.String(), "in use by another process") {
		t.Error("the unusable spool directory is not logged with its reason")
	}
	if v := metric(t, scrape(t, base), "p1logger_spool_max_bytes"); v != 0 {
		t.Errorf("p1logger_spool_max_bytes %v with the memory buffer", v)
	}
	if v := metric(t, scrape(t, base), "p1logger_spool_unusable"); v != 1 {
		t.Errorf("p1logger_spool_unusable %v with the spool directory locked, want 1", v)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "P1_SPOOL_DIR unusable") || !strings.Contains(body, "in use by another process") {
		t.Errorf("/readyz with the spool directory locked: %d %q", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolDamagedAtStart: a spool left by a previous run with one record
// damaged in the middle delivers every intact record after it to a real
// InfluxDB, and /metrics counts exactly the record and points lost.
func TestSpoolDamagedAtStart(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	sp, err := spool.Open(spool.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	base0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	const records, perRecord = 9, 3
	for r := range records {
		var b strings.Builder
		for i := range perRecord {
			fmt.Fprintf(&b, "spooltest,gateway=old v=%di %d\n", r*perRecord+i, base0.Add(time.Duration(r*perRecord+i)*time.Second).UnixNano())
		}
		sp.Append([]byte(b.String()))
	}
	sp.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) != 1 {
		t.Fatalf("segments %v", files)
	}
	data, _ := os.ReadFile(files[0])
	// Damage a byte in the middle of the file: records are compressed, so
	// which one it hits is found from what arrives.
	data[len(data)/2] ^= 0x20
	os.WriteFile(files[0], data, 0o640)

	_, gwEnv := startSims(t, 1)
	base, logs, stop := startDaemonLogged(t, []string{gwEnv, "P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=" + outageCycle, "P1_SPOOL_DIR=" + dir})
	waitFor(t, 20*time.Second, "spooled points delivered", func() bool {
		return len(fluxRows(t, srv, bucket, "spooltest")) >= (records-1)*perRecord
	})
	m := scrape(t, base)
	if metric(t, m, "p1logger_spool_corrupt_records_total") != 1 || metric(t, m, "p1logger_spool_corrupt_points_total") != perRecord ||
		metric(t, m, "p1logger_spool_dropped_points_total") != perRecord || metric(t, m, "p1logger_points_dropped_total") != perRecord {
		t.Errorf("damage not counted:\n%s", grepMetrics(m, "p1logger_spool_", "p1logger_points_"))
	}
	if !strings.Contains(logs.String(), "intact records around them are kept") {
		t.Error("no log line for the damaged record")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, row := range fluxRows(t, srv, bucket, "spooltest") {
		got[row["v"].(int64)] = true
	}
	// Exactly one record's points are missing, and all of them.
	lost := map[int64]int{}
	for v := range int64(records * perRecord) {
		if !got[v] {
			lost[v/perRecord]++
		}
	}
	if len(lost) != 1 {
		t.Errorf("points missing from records %v, want all of one record", lost)
	}
	for r, n := range lost {
		if n != perRecord || r == 0 || r == records-1 {
			t.Errorf("record %d lost %d points, want a middle record's %d", r, n, perRecord)
		}
	}
}
