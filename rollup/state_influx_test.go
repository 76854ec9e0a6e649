package rollup

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
)

// stateWorker is e.worker with a state file; its log goes to the test and
// to lb.
func (e *influxEnv) stateWorker(now time.Time, file string, lb *logBuffer, gws ...string) *Worker {
	e.t.Helper()
	e.clock.set(now)
	h := slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo})
	w, err := New(Config{Location: e.loc, Interval: time.Minute, Bucket: e.bucket, Now: e.clock.Now,
		Logger: slog.New(h), Gateways: gws, StateFile: file},
		influxWriter{e.srv, e.bucket}, e.q)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// drive plays the readings of hist in [from, to) as the daemon does: each
// is written to InfluxDB (p1, p1_mbus) and observed, and the worker rolls
// up every step. With tick false the readings are written and observed but
// no rollup follows them (the process is about to crash).
func (e *influxEnv) drive(w *Worker, hist []reading, from, to time.Time, step time.Duration, tick bool) {
	e.t.Helper()
	for now := from; now.Before(to); now = now.Add(step) {
		next := now.Add(step)
		if next.After(to) {
			next = to
		}
		var batch []reading
		for _, r := range hist {
			if !r.at.Before(now) && r.at.Before(next) {
				batch = append(batch, r)
			}
		}
		if len(batch) > 0 {
			e.seed("home", batch)
			for _, r := range batch {
				w.Observe("home", r.at, r.telegram())
			}
		}
		if tick {
			e.clock.set(next)
			w.tick(context.Background(), true)
		}
	}
}

// TestStateRestartInflux stops a worker on Brussels' 25-hour day, after (or,
// crashing, just around) a meter swap, and starts another one: with the
// state file, without it, with it damaged, with InfluxDB stopped. Every
// time the p1_energy points in InfluxDB end up equal, to the Wh, to those of
// a worker that never stopped, and a start after a clean stop sends no
// query at all.
func TestStateRestartInflux(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	hist := swapHistory(t, loc)
	from, end := hist[0].at, local(loc, 2026, 10, 25, 14, 0)
	at := func(h, m int) time.Time { return local(loc, 2026, 10, 25, h, m) }
	tests := []struct {
		name        string
		stop, start time.Time
		crash       time.Time // zero: a clean stop at stop; else the last rollup is at stop and the crash here
		state       string    // "file", "none" (no P1_SPOOL_DIR), "damaged"
		influxDown  bool      // InfluxDB is stopped when the worker starts
		queries     bool      // whether the start may query
	}{
		{name: "clean stop, state file", stop: at(11, 0), start: at(11, 3), state: "file"},
		{name: "clean stop, no state file", stop: at(11, 0), start: at(11, 3), state: "none", queries: true},
		{name: "clean stop, damaged state file", stop: at(11, 0), start: at(11, 3), state: "damaged", queries: true},
		{name: "clean stop, influxdb down", stop: at(11, 0), start: at(11, 3), state: "file", influxDown: true},
		{name: "crash after a swap the state misses", stop: at(8, 50), crash: at(9, 12), start: at(9, 15), state: "file", queries: true},
		{name: "crash, influxdb down at the start", stop: at(8, 50), crash: at(9, 12), start: at(9, 15), state: "file", influxDown: true, queries: true},
		{name: "clean stop across midnight", stop: local(loc, 2026, 10, 24, 23, 50), start: at(0, 20), state: "file"},
		{name: "crash across midnight", stop: local(loc, 2026, 10, 24, 23, 40), crash: at(0, 7), start: at(0, 20), state: "file", queries: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *influxEnv
			if tt.influxDown {
				srv := influxtest.New(t)
				bucket := srv.NewBucket(t)
				flux, ql := testQueriers(t, srv, bucket)
				e = &influxEnv{t: t, srv: srv, bucket: bucket, q: &countingQuerier{flux: flux, ql: ql, t: t},
					clock: &fakeClock{}, loc: loc}
			} else {
				e = newInfluxEnv(t, loc)
			}
			// What the logger sees: nothing between the stop (or crash) and
			// the start. The reference run, which never stops, sees the same.
			down := tt.stop
			if !tt.crash.IsZero() {
				down = tt.crash
			}
			var logged []reading
			for _, r := range hist {
				if r.at.Before(end) && (r.at.Before(down) || !r.at.Before(tt.start)) {
					logged = append(logged, r)
				}
			}
			ref := newInfluxEnv(t, loc)
			rw := ref.worker(from, "home")
			ref.drive(rw, logged, from, end, 30*time.Minute, true)

			file := filepath.Join(t.TempDir(), "rollup.state")
			a := e.stateWorker(from, file, &logBuffer{}, "home")
			a.begin(from)
			e.drive(a, logged, from, tt.stop, 30*time.Minute, true)
			if tt.crash.IsZero() {
				e.clock.set(tt.stop)
				a.tick(context.Background(), false)
			} else {
				e.drive(a, logged, tt.stop, tt.crash, time.Minute, false)
			}
			switch tt.state {
			case "none":
				file = ""
			case "damaged":
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/3] ^= 0x40
				if err := os.WriteFile(file, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.influxDown {
				if err := e.srv.Stop(); err != nil {
					t.Fatal(err)
				}
			}
			lb := &logBuffer{}
			n0 := len(e.q.queries)
			b := e.stateWorker(tt.start, file, lb, "home")
			b.begin(tt.start)
			// The totals are there before anything was asked of InfluxDB.
			if tt.state == "file" {
				cur := b.Current()
				// The month; the day too if it has readings, and, after a
				// crash, if it began before the last state was written
				// (else it is recovered from InfluxDB first).
				want := 1
				today := periodOf(day, tt.start, loc).start
				for _, r := range logged {
					if !r.at.Before(today) && r.at.Before(tt.start) && (tt.crash.IsZero() || today.Before(tt.stop)) {
						want = 2
						break
					}
				}
				if len(cur) != want {
					t.Errorf("Current right after the start: %d entries, want %d: %v", len(cur), want, cur)
				}
			}
			b.tick(context.Background(), true)
			if n := len(e.q.queries) - n0; n != 0 && !tt.queries {
				t.Errorf("start sent %d queries, want none; first:\n%s", n, e.q.queries[n0])
			}
			switch tt.state {
			case "none":
				if !strings.Contains(lb.String(), "every start recovers the day and month from influxdb") {
					t.Errorf("no log line saying restarts query influxdb:\n%s", lb)
				}
			case "damaged":
				if !strings.Contains(lb.String(), "local rollup state not used") || !strings.Contains(lb.String(), "checksum mismatch") {
					t.Errorf("damage not logged with its reason:\n%s", lb)
				}
			}
			if tt.influxDown {
				// Readings go on while InfluxDB is down; the writes fail.
				for _, r := range logged {
					if !r.at.Before(tt.start) {
						b.Observe("home", r.at, r.telegram())
						break
					}
				}
				e.clock.set(tt.start.Add(time.Minute))
				b.tick(context.Background(), true)
				cur := map[string]map[string]float64{}
				for _, c := range b.Current() {
					cur[c.Period] = c.Values
				}
				if cur["day"]["taken_kwh"] == 0 || cur["month"]["taken_kwh"] == 0 {
					t.Errorf("Current while InfluxDB is down: %v", cur)
				}
				if err := e.srv.Restart(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			e.drive(b, logged, tt.start, end, 30*time.Minute, true)

			got, want := e.energy(), ref.energy()
			for _, p := range []period{periodOf(day, at(12, 0), loc), periodOf(month, at(12, 0), loc), periodOf(day, from, loc)} {
				k := pointKey{"home", p.kind.String(), p.start.UnixNano()}
				if !equalFields(got[k], want[k]) {
					t.Errorf("%s:\n got %v\nwant %v (never stopped)", p, got[k], want[k])
				}
				e.checkEnergy(got, "home", logged, p)
			}
		})
	}
}

// BenchmarkRestart1000 measures a restart of 1,000 gateways with a month of
// history in InfluxDB 1.8 (a reading every two hours, so that seeding
// stays short; the queries' cost grows with the readings, the state's
// does not): "influxdb" starts without a state file and recovers every
// period, "state" starts from the file the last run left. It reports the
// queries per start. One op is a start, its first rollup and a stop. With
// -short: 50 gateways.
func BenchmarkRestart1000(b *testing.B) {
	loc := mustLoad(b, "Europe/Brussels")
	srv := influxtest.Shared(b)
	n := 1000
	if testing.Short() {
		n = 50
	}
	bucket := srv.NewBucket(b)
	e := &influxEnv{srv: srv, bucket: bucket, loc: loc, clock: &fakeClock{}}
	now := local(loc, 2026, 3, 18, 12, 0)
	gws := gatewayNames(n)
	t0 := time.Now()
	for i, gw := range gws {
		m := &meter{id: "E" + gw, gasID: "G" + gw, t1: int64(1_000_000 + i), t2: 2_000_000, withGas: true}
		e.seedTB(b, gw, m.readings(local(loc, 2026, 2, 27, 0, 0), now, 2*time.Hour, loc))
	}
	b.Logf("seeded %d gateways in %v", n, time.Since(t0).Round(time.Millisecond))
	file := filepath.Join(b.TempDir(), "rollup.state")
	start := func(state string) (*Worker, *countingQuerier) {
		q := &countingQuerier{flux: TestQuerier(b, srv.URL(), bucket, "flux"), t: b} // Flux only: the cost of one language
		e.clock.set(now)
		w, err := New(Config{Location: loc, Bucket: bucket, Now: e.clock.Now, Gateways: gws, StateFile: state},
			influxWriter{srv, bucket}, q)
		if err != nil {
			b.Fatal(err)
		}
		w.begin(now)
		w.tick(context.Background(), true)
		return w, q
	}
	// The run that leaves the state file.
	w, _ := start(file)
	w.tick(context.Background(), false)
	fi, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("state file of %d gateways: %d bytes", n, fi.Size())
	for _, tc := range []struct{ name, file string }{{"influxdb", ""}, {"state", file}} {
		b.Run(tc.name, func(b *testing.B) {
			queries := 0
			for b.Loop() {
				w, q := start(tc.file)
				w.tick(context.Background(), false) // the stop; leaves the file clean for the next start
				queries = len(q.queries)
				if got := len(w.Current()); got != 2*n {
					b.Fatalf("%d energy entries after the start, want %d", got, 2*n)
				}
			}
			b.ReportMetric(float64(queries), "queries/start")
		})
	}
}
