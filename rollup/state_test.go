package rollup

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// logBuffer collects a worker's log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newStateHarness is newHarness with a state file and a log to read.
func newStateHarness(t testing.TB, loc *time.Location, start time.Time, file string, gws ...string) (*harness, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	h := &harness{t: t, rec: &recorder{}, q: &stubQuerier{}, clock: &fakeClock{t: start}, loc: loc}
	w, err := New(Config{
		Location: loc, Interval: time.Minute, Bucket: "p1/autogen", Now: h.clock.Now,
		Logger: slog.New(slog.NewTextHandler(lb, nil)), Gateways: gws, StateFile: file,
	}, h.rec, h.q)
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h, lb
}

// run plays the readings of hist in [from, to) with a rollup every step,
// as play does, and returns the readings it observed: those up to the last
// rollup before to.
func (h *harness) run(gw string, hist []reading, from, to time.Time, step time.Duration) []reading {
	h.t.Helper()
	i := 0
	for i < len(hist) && hist[i].at.Before(from) {
		i++
	}
	first := i
	for now := from; now.Before(to); now = now.Add(step) {
		for ; i < len(hist) && !hist[i].at.After(now) && hist[i].at.Before(to); i++ {
			h.w.Observe(gw, hist[i].at, hist[i].telegram())
		}
		h.tick(now)
	}
	return hist[first:i]
}

// stop makes the last rollup of a run that stops cleanly (Run's, on
// cancellation).
func (h *harness) stop(now time.Time) {
	h.clock.set(now)
	h.w.tick(context.Background(), false)
}

// begin starts the worker as Run does: the state file, then the first rollup.
func (h *harness) begin(now time.Time) {
	h.clock.set(now)
	h.w.begin(now)
	h.w.tick(context.Background(), true)
}

// swapHistory is a day and a half of 5-minute readings in Brussels around
// the 25-hour day, with a register reset and a meter swap on that day and a
// gas meter.
func swapHistory(t testing.TB, loc *time.Location) []reading {
	m := &meter{id: "E1", gasID: "G1", t1: 1_000_000, t2: 2_000_000, withGas: true}
	hist := m.readings(local(loc, 2026, 10, 24, 20, 0), local(loc, 2026, 10, 25, 8, 55), 5*time.Minute, loc)
	// 09:00: the meter is replaced; the new one starts low.
	m2 := &meter{id: "E2", gasID: "G1", t1: 10, t2: 20, gas: m.gas, withGas: true, lastCap: m.lastCap}
	hist = append(hist, m2.readings(local(loc, 2026, 10, 25, 9, 0), local(loc, 2026, 10, 26, 2, 0), 5*time.Minute, loc)...)
	return hist
}

// TestStateCleanRestart: a worker stopped at 11:00 on the 25-hour day, after
// a meter swap, and started again: the new one issues no query and writes
// exactly what a worker that never stopped writes, for the day, the month,
// and the next day, which begins while it runs.
func TestStateCleanRestart(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	hist := swapHistory(t, loc)
	from, end := hist[0].at, local(loc, 2026, 10, 26, 2, 1)
	ref := newHarness(t, loc, from, "home")
	ref.run("home", hist, from, end, time.Minute)

	tests := []struct {
		name        string
		stop, start time.Time
	}{
		{"mid-day", local(loc, 2026, 10, 25, 11, 0), local(loc, 2026, 10, 25, 11, 3)},
		{"before the swap, back after it", local(loc, 2026, 10, 25, 8, 30), local(loc, 2026, 10, 25, 9, 30)},
		{"across midnight", local(loc, 2026, 10, 24, 23, 50), local(loc, 2026, 10, 25, 0, 20)},
		{"long stop", local(loc, 2026, 10, 24, 21, 0), local(loc, 2026, 10, 25, 21, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "rollup.state")
			a, _ := newStateHarness(t, loc, from, file, "home")
			a.begin(from)
			a.run("home", hist, from, tt.stop, 5*time.Minute)
			a.stop(tt.stop)
			// While stopped nothing is read; what the meter did meanwhile
			// shows in the next reading.
			var rest []reading
			for _, r := range hist {
				if !r.at.Before(tt.start) {
					rest = append(rest, r)
				}
			}
			b, log := newStateHarness(t, loc, tt.start, file, "home")
			b.begin(tt.start)
			// Until a new period begins (which the worker recovers as it
			// always does, the same with and without a state file), no
			// query.
			next := periodOf(day, tt.start, loc).end
			b.run("home", rest, tt.start, next, 5*time.Minute)
			if n := len(b.q.queries); n != 0 {
				t.Errorf("restart with local state sent %d queries, want none; first:\n%s", n, b.q.queries[0])
			}
			b.run("home", rest, next, end, 5*time.Minute)
			if !strings.Contains(log.String(), "local rollup state read") {
				t.Errorf("log does not say the state was read:\n%s", log)
			}
			// The reference saw the readings of the stop too: drop them.
			var seen []reading
			for _, r := range hist {
				if r.at.Before(tt.stop) || !r.at.Before(tt.start) {
					seen = append(seen, r)
				}
			}
			for _, p := range []period{periodOf(day, local(loc, 2026, 10, 25, 12, 0), loc), periodOf(month, tt.start, loc),
				periodOf(day, end, loc)} {
				b.check("home", seen, p)
			}
		})
	}
	// And the reference worker, which never stopped, agrees with the rule.
	for _, p := range []period{periodOf(day, local(loc, 2026, 10, 25, 12, 0), loc), periodOf(month, from, loc)} {
		ref.check("home", hist, p)
	}
}

// TestStateRoundTrip: what is written reads back as the same periods and
// accumulators, and a rewrite gives the same bytes.
func TestStateRoundTrip(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	hist := swapHistory(t, loc)
	h := newHarness(t, loc, hist[0].at, "home", "idle")
	h.run("home", hist, hist[0].at, local(loc, 2026, 10, 25, 12, 0), 7*time.Minute)
	now := local(loc, 2026, 10, 25, 12, 0)
	b, err := h.w.encodeState(now, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeState(b, loc, "p1/autogen")
	if err != nil {
		t.Fatal(err)
	}
	if !st.clean || !st.saved.Equal(now) {
		t.Errorf("clean %v saved %s, want true %s", st.clean, st.saved, now)
	}
	if len(st.periods) != len(h.w.tracked) {
		t.Fatalf("%d periods, want %d", len(st.periods), len(h.w.tracked))
	}
	for i, tp := range h.w.tracked {
		sp := st.periods[i]
		if sp.period != tp.period {
			t.Errorf("period %d: %v, want %v", i, sp.period, tp.period)
		}
		g := sp.gws["home"]
		if g == nil {
			t.Fatalf("%s: no home", tp.period)
		}
		if g.acc != tp.gws["home"].acc {
			t.Errorf("%s: accumulators\n got %+v\nwant %+v", tp.period, g.acc, tp.gws["home"].acc)
		}
		if sp.gws["idle"] == nil {
			t.Errorf("%s: the gateway without readings is not kept (a start would recover it)", tp.period)
		}
	}
	if st.verified["home"] == nil {
		t.Error("home not verified")
	}
	h2 := newHarness(t, loc, now, "home", "idle")
	h2.w.cfg.StateFile = filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(h2.w.cfg.StateFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	h2.w.begin(now)
	b2, err := h2.w.encodeState(now, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("state read and written again differs: %d bytes, was %d", len(b2), len(b))
	}
	if len(b) > 2000 {
		t.Errorf("state of one gateway is %d bytes", len(b))
	}
}

// TestStateDamaged: every kind of damage is refused with a reason naming
// it, and the worker then recovers from InfluxDB as without a file.
func TestStateDamaged(t *testing.T) {
	loc := mustLoad(t, "Europe/Brussels")
	hist := swapHistory(t, loc)
	now := local(loc, 2026, 10, 25, 12, 0)
	h := newHarness(t, loc, hist[0].at, "home")
	h.run("home", hist, hist[0].at, now, 30*time.Minute)
	good, err := h.w.encodeState(now, true)
	if err != nil {
		t.Fatal(err)
	}
	reseal := func(b []byte) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[12:], uint32(len(b)-stateHeader-4))
		binary.LittleEndian.PutUint32(b[len(b)-4:], crcOf(b[:len(b)-4]))
		return b
	}
	other := newHarness(t, mustLoad(t, "Europe/Amsterdam"), hist[0].at, "home")
	other.run("home", hist, hist[0].at, now, 30*time.Minute)
	otherZone, _ := other.w.encodeState(now, true)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a p1logger rollup state"},
		{"another file", []byte("P1SPOOL\x02 and then some bytes"), "not a p1logger rollup state"},
		{"version", func() []byte { b := bytes.Clone(good); b[8] = 9; return b }(), "version 9"},
		{"cut short", good[:len(good)-10], "payload length"},
		{"appended to", append(bytes.Clone(good), 0), "payload length"},
		{"bit flip", func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 0x10; return b }(), "checksum mismatch"},
		{"zone", otherZone, "Europe/Amsterdam"},
		{"resealed garbage", reseal(append(good[:stateHeader+12:stateHeader+12], bytes.Repeat([]byte{0xff}, 40)...)), "state file unusable"},
		{"trailing bytes", reseal(append(bytes.Clone(good[:len(good)-4]), 1, 2, 3, 0, 0, 0, 0, 0)), "bytes after the last period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "rollup.state")
			if err := os.WriteFile(file, tt.b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := decodeState(tt.b, loc, "p1/autogen"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decode: %v, want an error with %q", err, tt.want)
			}
			b, log := newStateHarness(t, loc, now, file, "home")
			b.begin(now)
			if !strings.Contains(log.String(), "local rollup state not used") || !strings.Contains(log.String(), tt.want) {
				t.Errorf("log does not name the damage %q:\n%s", tt.want, log)
			}
			if len(b.q.queries) == 0 {
				t.Error("no recovery from influxdb after a damaged state")
			}
			// The damaged file was replaced by a good one.
			if _, err := readState(file, loc, "p1/autogen"); err != nil {
				t.Errorf("state file after the start: %v", err)
			}
		})
	}
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestStateRandomRestarts plays random histories (resets, meter swaps,
// silences) through workers that stop and start at random times, cleanly,
// on one state file, and compares every day and month written with the rule
// over the readings they saw. Only the first start queries.
func TestStateRandomRestarts(t *testing.T) {
	zones := []string{"Europe/Brussels", "America/Santiago", "Asia/Kathmandu", "UTC"}
	for seed := range uint64(16) {
		rng := rand.New(rand.NewPCG(seed, 7))
		loc := mustLoad(t, zones[seed%uint64(len(zones))])
		start := local(loc, 2026, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), 0)
		var hist []reading
		v, meterN := int64(1_000_000), 0
		for at := start; at.Before(start.Add(6 * 24 * time.Hour)); at = at.Add(time.Duration(1+rng.IntN(180)) * time.Minute) {
			switch rng.IntN(40) {
			case 0:
				v = int64(rng.IntN(1000)) // reset
			case 1:
				meterN++
				v = int64(rng.IntN(100_000))
			}
			v += int64(rng.IntN(500))
			hist = append(hist, reading{at: at, meter: string(rune('A' + meterN)), vals: map[field]parser.Decimal{fTaken: {Int: v, Scale: 3}}})
		}
		file := filepath.Join(t.TempDir(), "rollup.state")
		end := hist[len(hist)-1].at.Add(time.Minute)
		rec := &recorder{}
		var seen []reading
		var h *harness
		starts := 0
		for now := start; now.Before(end) && starts < 100; starts++ {
			up := now.Add(time.Duration(1+rng.IntN(36*60)) * time.Minute)
			var lg *logBuffer
			h, lg = newStateHarness(t, loc, now, file, "home")
			h.rec = rec
			h.w.w = rec
			h.begin(now)
			if n := len(h.q.queries); starts > 0 && n > 0 {
				t.Errorf("seed %d: start %d at %s queried %d times\n%s", seed, starts, now, n, lg)
			}
			seen = append(seen, h.run("home", hist, now, up, time.Duration(5+rng.IntN(40))*time.Minute)...)
			h.stop(up)
			now = up.Add(time.Duration(rng.IntN(24*60)) * time.Minute)
		}
		for at := start; at.Before(end); at = calendarNextDay(at, loc) {
			h.check("home", seen, periodOf(day, at, loc))
			h.check("home", seen, periodOf(month, at, loc))
		}
	}
}

func calendarNextDay(t time.Time, loc *time.Location) time.Time { return periodOf(day, t, loc).end }

// TestStateWriteFailure: a state file that cannot be written is removed,
// so that an old one is never trusted; one that cannot even be removed is
// not written again, and the failure is logged.
func TestStateWriteFailure(t *testing.T) {
	loc := mustLoad(t, "UTC")
	now := utc("2026-07-01T12:00:00Z")
	dir := t.TempDir()
	// A directory in the file's place: the rename fails, and so does the
	// removal (it is not empty).
	file := filepath.Join(dir, "rollup.state")
	if err := os.MkdirAll(filepath.Join(file, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	h, log := newStateHarness(t, loc, now, file, "home")
	h.begin(now)
	h.tick(now.Add(time.Minute))
	if got := strings.Count(log.String(), "neither be written nor removed"); got != 1 {
		t.Errorf("logged %d times, want once:\n%s", got, log)
	}
	if !h.w.stateBroken {
		t.Error("the worker goes on writing a state it cannot replace")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "rollup.state.tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// A file that cannot be replaced (its directory is gone) is
	// logged, and the next start recovers from InfluxDB.
	gone := filepath.Join(t.TempDir(), "sub", "rollup.state")
	h2, log2 := newStateHarness(t, loc, now, gone, "home")
	h2.begin(now)
	if !strings.Contains(log2.String(), "writing the local rollup state failed") || h2.w.stateBroken {
		t.Errorf("log:\n%s", log2)
	}
}

// TestStateDropsRemovedGateways: a gateway in the state file that is no
// longer configured (nor reported) is neither written nor kept.
func TestStateDropsRemovedGateways(t *testing.T) {
	loc := mustLoad(t, "UTC")
	now := utc("2026-07-01T12:00:00Z")
	file := filepath.Join(t.TempDir(), "rollup.state")
	a, _ := newStateHarness(t, loc, now, file, "home", "old")
	a.begin(now)
	for _, gw := range []string{"home", "old"} {
		tg := &parser.Telegram{}
		tg.Set(parser.Taken, dec(t, "5"))
		a.w.Observe(gw, now.Add(-time.Hour), tg)
		tg.Set(parser.Taken, dec(t, "6"))
		a.w.Observe(gw, now, tg)
	}
	a.stop(now.Add(time.Minute))
	b, _ := newStateHarness(t, loc, now.Add(2*time.Minute), file, "home")
	b.begin(now.Add(2 * time.Minute))
	b.expect("home", day, utc("2026-07-01T00:00:00Z"), map[string]string{"taken_kwh": "1"})
	if _, ok := b.point("old", day, utc("2026-07-01T00:00:00Z")); ok {
		t.Error("point written for a gateway no longer configured")
	}
	b.stop(now.Add(3 * time.Minute))
	st, err := readState(file, loc, "p1/autogen")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.gateways(); len(got) != 1 || got[0] != "home" {
		t.Errorf("state keeps %v, want [home]", got)
	}
}
