package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
)

// window is the measuring window and what counts as a lost cycle in it.
type window struct {
	start, end time.Time
	cycle      time.Duration
}

func (w window) contains(t time.Time) bool { return !t.Before(w.start) && !t.After(w.end) }

// lostBetween is how many cycles fell between two consecutive points (or a
// window edge and a point) a and b apart: none when they are about one
// cycle apart, one when two cycles, and so on.
func (w window) lostBetween(d time.Duration) int {
	n := int((d + w.cycle/2) / w.cycle)
	return max(n-1, 0)
}

// lost counts the lost cycles of one gateway's sorted point times, and
// adds a description of each gap to gaps (up to 20 in all).
func (w window) lost(gw string, times []time.Time, gaps *[]string) int {
	prev := w.start
	n := 0
	note := func(a, b time.Time, k int) {
		if k > 0 && len(*gaps) < 20 {
			*gaps = append(*gaps, fmt.Sprintf("%s: no point from %s to %s (+%.1fs, +%.1fs into the window)",
				gw, a.Format("15:04:05.000"), b.Format("15:04:05.000"), b.Sub(a).Seconds(), a.Sub(w.start).Seconds()))
		}
		n += k
	}
	for _, t := range times {
		if !w.contains(t) {
			continue
		}
		note(prev, t, w.lostBetween(t.Sub(prev)))
		prev = t
	}
	note(prev, w.end, w.lostBetween(w.end.Sub(prev)))
	return n
}

// lagStats collects end-to-end lags.
type lagStats struct {
	mu   sync.Mutex
	lags []time.Duration
}

func (l *lagStats) add(d time.Duration) {
	l.mu.Lock()
	l.lags = append(l.lags, d)
	l.mu.Unlock()
}

// quantiles returns p50, p99, max and the count.
func (l *lagStats) quantiles() (p50, p99, mx time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lags) == 0 {
		return 0, 0, 0, 0
	}
	s := slices.Clone(l.lags)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(int(p*float64(len(s))), len(s)-1)] }
	return q(0.50), q(0.99), s[len(s)-1], len(s)
}

// discardSink is an InfluxDB stand-in that accepts every write and keeps only
// what the report needs: the lag of every p1 point (its time to its arrival
// here) and each gateway's p1 point times inside the window.
type discardSink struct {
	srv  *http.Server
	addr string

	mu     sync.Mutex
	win    window // zero until the window is known
	times  map[string][]time.Time
	lag    lagStats
	points int64 // every line received
	bytes  int64 // request bodies as sent (compressed or not)
}

func startDiscard() (*discardSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &discardSink{addr: ln.Addr().String(), times: map[string][]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/write", d.write)
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	// The rollup worker recovers its baselines with Flux: an empty answer
	// means InfluxDB knows nothing yet, as on a first start.
	mux.HandleFunc("POST /api/v2/query", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusOK)
	})
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go d.srv.Serve(ln)
	return d, nil
}

func (d *discardSink) url() string { return "http://" + d.addr }

func (d *discardSink) setWindow(w window) {
	d.mu.Lock()
	d.win = w
	d.mu.Unlock()
}

func (d *discardSink) write(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	cr := &countReader{r: r.Body}
	var body io.Reader = cr
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(cr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	type pt struct {
		gw string
		t  time.Time
	}
	var pts []pt
	var lines int64
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Bytes()
		if len(l) == 0 {
			continue
		}
		lines++
		if !bytes.HasPrefix(l, []byte("p1,")) {
			continue
		}
		gw, t, ok := p1Point(l)
		if ok {
			pts = append(pts, pt{gw, t})
		}
	}
	if err := sc.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.points += lines
	d.bytes += cr.n
	win := d.win
	for _, p := range pts {
		if win.cycle == 0 || !win.contains(p.t) {
			continue
		}
		d.times[p.gw] = append(d.times[p.gw], p.t)
	}
	d.mu.Unlock()
	for _, p := range pts {
		if win.cycle != 0 && win.contains(p.t) {
			d.lag.add(now.Sub(p.t))
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// p1Point returns the gateway tag and the time of a p1 line.
func p1Point(l []byte) (string, time.Time, bool) {
	i := bytes.Index(l, []byte(",gateway="))
	sp := bytes.LastIndexByte(l, ' ')
	if i < 0 || sp < 0 {
		return "", time.Time{}, false
	}
	v := l[i+len(",gateway="):]
	if j := bytes.IndexAny(v, ", "); j >= 0 {
		v = v[:j]
	}
	ns, err := strconv.ParseInt(string(l[sp+1:]), 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return string(v), time.Unix(0, ns), true
}

// lostCycles counts the window's lost cycles over the gateways named.
func (d *discardSink) lostCycles(names []string, gaps *[]string) (lost, points int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range names {
		ts := d.times[n]
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		lost += d.win.lost(n, ts, gaps)
		points += len(ts)
	}
	return lost, points
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// lagPoller polls InfluxDB for the newest p1 points of a sample of gateways
// and records, for each point in the window, when it was first seen.
type lagPoller struct {
	srv   *influxtest.Server
	db    string
	query string
	win   func() window
	seen  map[string]struct{}
	lag   lagStats
	polls int
	errs  int
	last  error
}

func newLagPoller(srv *influxtest.Server, db string, sample []string, win func() window) *lagPoller {
	var cond []string
	for _, g := range sample {
		cond = append(cond, "gateway = '"+g+"'")
	}
	q := "SELECT power_net_w FROM p1 WHERE time > now() - 60s AND (" + strings.Join(cond, " OR ") + ") GROUP BY gateway"
	return &lagPoller{srv: srv, db: db, query: q, win: win, seen: map[string]struct{}{}}
}

// run polls every 250 ms until ctx is cancelled.
func (p *lagPoller) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := p.srv.InfluxQL(qctx, p.query, p.db)
		cancel()
		now := time.Now()
		p.polls++
		if err != nil {
			if ctx.Err() == nil {
				p.errs++
				p.last = err
			}
			continue
		}
		w := p.win()
		for _, r := range res.Results {
			for _, s := range r.Series {
				for _, v := range s.Values {
					ts, _ := v[0].(string)
					key := s.Tags["gateway"] + " " + ts
					if _, ok := p.seen[key]; ok {
						continue
					}
					p.seen[key] = struct{}{}
					t, err := time.Parse(time.RFC3339Nano, ts)
					if err != nil || w.cycle == 0 || !w.contains(t) {
						continue
					}
					p.lag.add(now.Sub(t))
				}
			}
		}
	}
}

// influxLost queries every gateway's p1 points in the window, in batches
// of gateways sharing a name prefix, and counts the lost cycles.
func influxLost(ctx context.Context, srv *influxtest.Server, db string, w window, names []string, prefixes []string, gaps *[]string) (lost, points int, err error) {
	got := map[string][]time.Time{}
	for _, pre := range prefixes {
		q := fmt.Sprintf("SELECT power_net_w FROM p1 WHERE time >= '%s' AND time <= '%s' AND gateway =~ /^%s/ GROUP BY gateway",
			w.start.UTC().Format(time.RFC3339Nano), w.end.UTC().Format(time.RFC3339Nano), pre)
		qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		res, err := srv.InfluxQL(qctx, q, db)
		cancel()
		if err != nil {
			return 0, 0, err
		}
		for _, r := range res.Results {
			for _, s := range r.Series {
				g := s.Tags["gateway"]
				for _, v := range s.Values {
					ts, _ := v[0].(string)
					t, err := time.Parse(time.RFC3339Nano, ts)
					if err != nil {
						return 0, 0, fmt.Errorf("point time %q: %w", ts, err)
					}
					got[g] = append(got[g], t)
				}
			}
		}
	}
	for _, n := range names {
		ts := got[n]
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		lost += w.lost(n, ts, gaps)
		points += len(ts)
	}
	return lost, points, nil
}
