package rollup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// dec parses a decimal literal such as "123.456".
func dec(t testing.TB, s string) parser.Decimal {
	t.Helper()
	var d parser.Decimal
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(ip+fp, 10, 64)
	if err != nil {
		t.Fatalf("dec %q: %v", s, err)
	}
	d.Int, d.Scale = n, uint8(len(fp))
	if neg {
		d.Int = -d.Int
	}
	return d
}

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// reading is a test meter reading: the registers by p1_energy field name
// (gas_m3 for the gas device), the meter id and, for gas, its capture time.
type reading struct {
	at       time.Time
	meter    string
	vals     map[field]parser.Decimal
	gasAt    time.Time
	gasMeter string
}

// telegram builds the telegram a gateway would have sent for r.
func (r reading) telegram() *parser.Telegram {
	t := &parser.Telegram{MeterID: []byte(r.meter)}
	for f := range field(numP1Fields) {
		if v, ok := r.vals[f]; ok {
			t.Set(parserFields[f], v)
		}
	}
	if v, ok := r.vals[fGas]; ok {
		t.MBus = append(t.MBus, parser.MBus{Channel: 1, Kind: parser.KindGas, ID: []byte(r.gasMeter),
			Value: v, HasValue: true, Unit: []byte("m3"), Time: r.gasAt})
	}
	return t
}

// reference computes a period's value by the rule, straight from the whole
// history: baseline = last reading before the period, else the first one
// inside; segments cut where the register goes down or the meter changes.
func reference(hist []reading, f field, p period) (parser.Decimal, bool) {
	type rd struct {
		at    time.Time
		v     parser.Decimal
		meter string
	}
	var all []rd
	for _, r := range hist {
		v, ok := r.vals[f]
		if !ok {
			continue
		}
		if f == fGas {
			all = append(all, rd{r.gasAt, v, r.gasMeter})
		} else {
			all = append(all, rd{r.at, v, r.meter})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	var prev *rd
	var total, segStart parser.Decimal
	started, inside := false, false
	for i := range all {
		r := &all[i]
		if r.at.Before(p.start) {
			if prev == nil || !r.at.Equal(prev.at) {
				prev = r
			}
			continue
		}
		if !r.at.Before(p.end) {
			break
		}
		if prev != nil && r.at.Equal(prev.at) {
			continue // the same gas capture, seen again
		}
		inside = true
		switch {
		case !started && prev == nil:
			segStart = r.v
		case !started:
			segStart = prev.v
			if prev.meter != r.meter || less(r.v, prev.v) {
				segStart = r.v
			}
		case prev.meter != r.meter || less(r.v, prev.v):
			total = mustAdd(total, mustSub(prev.v, segStart))
			segStart = r.v
		}
		started = true
		prev = r
	}
	if !inside {
		return parser.Decimal{}, false
	}
	return normal(mustAdd(total, mustSub(prev.v, segStart))), true
}

func mustAdd(a, b parser.Decimal) parser.Decimal {
	d, err := a.Add(b)
	if err != nil {
		panic(err)
	}
	return d
}

func mustSub(a, b parser.Decimal) parser.Decimal { return mustAdd(a, b.Neg()) }

// recorder is a PointWriter that keeps every write and can be made to fail.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (r *recorder) WriteLines(_ context.Context, lines []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if len(lines) == 0 || lines[len(lines)-1] != '\n' {
		return errors.New("lines do not end in a newline")
	}
	r.writes = append(r.writes, bytes.Clone(lines))
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

// point is a parsed p1_energy line.
type point struct {
	gw, period string
	at         time.Time
	fields     map[string]string
}

type pointKey struct {
	gw, period string
	at         int64
}

// points returns the latest value of every point written so far.
func (r *recorder) points(t testing.TB) map[pointKey]point {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[pointKey]point{}
	for _, w := range r.writes {
		sc := bufio.NewScanner(bytes.NewReader(w))
		for sc.Scan() {
			p := parseLine(t, sc.Text())
			out[pointKey{p.gw, p.period, p.at.UnixNano()}] = p
		}
	}
	return out
}

// parseLine parses the p1_energy lines the worker writes (no escapes needed
// for the gateway names the tests use).
func parseLine(t testing.TB, line string) point {
	t.Helper()
	parts := strings.Split(line, " ")
	if len(parts) != 3 {
		t.Fatalf("line %q: want 3 parts", line)
	}
	tags := strings.Split(parts[0], ",")
	if tags[0] != "p1_energy" {
		t.Fatalf("line %q: measurement %q", line, tags[0])
	}
	p := point{fields: map[string]string{}}
	for _, kv := range tags[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "gateway":
			p.gw = v
		case "period":
			p.period = v
		default:
			t.Fatalf("line %q: unexpected tag %q", line, k)
		}
	}
	for _, kv := range strings.Split(parts[1], ",") {
		k, v, _ := strings.Cut(kv, "=")
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("line %q: field %s=%q is not a float", line, k, v)
		}
		p.fields[k] = v
	}
	ns, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		t.Fatalf("line %q: time: %v", line, err)
	}
	p.at = time.Unix(0, ns)
	return p
}

// stubQuerier answers every question with nothing (no history), or fails
// with err. It records each question as "Method N" (N gateways).
type stubQuerier struct {
	mu      sync.Mutex
	err     error
	queries []string
}

func (q *stubQuerier) ask(method string, sel Select) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queries = append(q.queries, fmt.Sprintf("%s %d", method, len(sel.Gateways)))
	return q.err
}

func (q *stubQuerier) Summary(_ context.Context, sel Select) ([]SeriesSummary, error) {
	return nil, q.ask("Summary", sel)
}

func (q *stubQuerier) Drops(_ context.Context, sel Select) ([]Drop, error) {
	return nil, q.ask("Drops", sel)
}

func (q *stubQuerier) Runs(_ context.Context, sel Select) ([]Run, error) {
	return nil, q.ask("Runs", sel)
}

func (q *stubQuerier) Last(_ context.Context, sel Select) ([]Reading, error) {
	return nil, q.ask("Last", sel)
}

func (q *stubQuerier) setErr(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
}

// fakeClock is an injected Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// harness runs a worker by hand: Observe readings, move the clock, tick.
type harness struct {
	t     testing.TB
	w     *Worker
	rec   *recorder
	q     *stubQuerier
	clock *fakeClock
	loc   *time.Location
}

func newHarness(t testing.TB, loc *time.Location, start time.Time, gws ...string) *harness {
	t.Helper()
	h := &harness{t: t, rec: &recorder{}, q: &stubQuerier{}, clock: &fakeClock{t: start}, loc: loc}
	w, err := New(Config{
		Location: loc, Interval: time.Minute, Bucket: "p1/autogen", Now: h.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Gateways: gws,
	}, h.rec, h.q)
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h
}

// play observes hist for gw in order and ticks every interval from the
// first reading to until, observing each reading just before the first tick
// at or after its time.
func (h *harness) play(gw string, hist []reading, until time.Time, every time.Duration) {
	h.t.Helper()
	i := 0
	for now := hist[0].at; !now.After(until); now = now.Add(every) {
		for ; i < len(hist) && !hist[i].at.After(now); i++ {
			h.w.Observe(gw, hist[i].at, hist[i].telegram())
		}
		h.tick(now)
	}
}

func (h *harness) tick(now time.Time) {
	h.clock.set(now)
	h.w.tick(context.Background(), true)
}

// check compares the written point of gw for p with the reference.
func (h *harness) check(gw string, hist []reading, p period) {
	h.t.Helper()
	pts := h.rec.points(h.t)
	got, ok := pts[pointKey{gw, p.kind.String(), p.start.UnixNano()}]
	want := map[string]string{}
	for f := range numFields {
		if v, ok := reference(hist, f, p); ok {
			want[fieldNames[f]] = v.String()
		}
	}
	if len(want) == 0 {
		if ok {
			h.t.Errorf("%s %s: point %v written, want none", gw, p, got.fields)
		}
		return
	}
	if !ok {
		h.t.Errorf("%s %s: no point, want %v", gw, p, want)
		return
	}
	if !equalFields(got.fields, want) {
		h.t.Errorf("%s %s:\n got %v\nwant %v", gw, p, got.fields, want)
	}
}

func equalFields(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// meter generates readings every step from `from` to `to` (inclusive) for a
// household that takes `rate` kWh per hour on tariff 1 by day and tariff 2
// by night, injects a little at noon, and has a gas meter captured every
// 5 minutes. Registers start at the given values, in thousandths.
type meter struct {
	id, gasID  string
	t1, t2, i1 int64 // Wh (kWh × 1000)
	gas        int64 // dm³ (m³ × 1000)
	withGas    bool
	lastCap    time.Time
}

func (m *meter) readings(from, to time.Time, step time.Duration, loc *time.Location) []reading {
	var out []reading
	for at := from; !at.After(to); at = at.Add(step) {
		h := at.In(loc).Hour()
		wh := step.Milliseconds() * 1234 / 3_600_000 // 1.234 kWh per hour
		if h >= 7 && h < 21 {
			m.t1 += wh
		} else {
			m.t2 += wh
		}
		if h >= 11 && h < 15 {
			m.i1 += step.Milliseconds() * 777 / 3_600_000
		}
		r := reading{at: at, meter: m.id, vals: map[field]parser.Decimal{
			fTakenT1: {Int: m.t1, Scale: 3}, fTakenT2: {Int: m.t2, Scale: 3},
			fTaken:      {Int: m.t1 + m.t2, Scale: 3},
			fInjectedT1: {Int: m.i1, Scale: 3}, fInjectedT2: {Int: 0, Scale: 3},
			fInjected: {Int: m.i1, Scale: 3},
		}}
		if m.withGas {
			// Captured on the 5-minute mark before at.
			cap := at.Truncate(5 * time.Minute)
			if !cap.Equal(m.lastCap) {
				m.gas += 7
				m.lastCap = cap
			}
			r.vals[fGas] = parser.Decimal{Int: m.gas, Scale: 3}
			r.gasAt, r.gasMeter = cap, m.gasID
		}
		out = append(out, r)
	}
	return out
}
