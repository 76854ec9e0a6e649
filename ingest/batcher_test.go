package ingest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
)

type observed struct {
	gateway string
	at      time.Time
	taken   string
}

// observer records Observe calls, copying what it needs as the contract says.
type observer struct {
	mu   sync.Mutex
	seen []observed
}

func (o *observer) Observe(gateway string, at time.Time, t *parser.Telegram) {
	d, _ := t.Get(parser.TakenT1)
	o.mu.Lock()
	o.seen = append(o.seen, observed{gateway, at, d.String()})
	o.mu.Unlock()
}

// TestBatcherCycle: per cycle, one p1 point per gateway that received a
// telegram — the newest — and nothing for one that did not.
func TestBatcherCycle(t *testing.T) {
	at := time.Date(2026, 3, 14, 18, 45, 12, 0, brussels)
	a, b := tcpGateway("a", "x:1"), tcpGateway("b", "x:2")
	rec := &recorder{}
	obs := &observer{}
	bt := NewBatcher(BatcherConfig{Location: brussels, Logger: testLogger(t)}, []*Gateway{a, b}, rec, obs)

	// a receives two telegrams, b none.
	a.store(belgian(1, at), brussels, at)
	a.store(belgian(2, at.Add(time.Second)), brussels, at.Add(time.Second))
	if n := bt.Cycle(context.Background()); n != 1 {
		t.Fatalf("cycle 1 wrote %d p1 points, want 1", n)
	}
	out := rec.String()
	if strings.Count(out, "p1,") != 1 || !strings.Contains(out, "taken_t1_kwh=301.550,") ||
		!strings.Contains(out, " "+itoa(at.Add(time.Second).UnixNano())+"\n") {
		t.Errorf("cycle 1 lines:\n%s\nwant the p1 point of telegram 2 at its receive time", out)
	}
	if strings.Contains(out, "gateway=b") {
		t.Error("a point for gateway b, which sent nothing")
	}
	if len(obs.seen) != 1 || obs.seen[0] != (observed{"a", at.Add(time.Second), "301.550"}) {
		t.Errorf("observed %+v", obs.seen)
	}

	// Nothing new: nothing written.
	rec.lines.Reset()
	if n := bt.Cycle(context.Background()); n != 0 || rec.String() != "" {
		t.Errorf("idle cycle wrote %d points: %q", n, rec.String())
	}

	// b's first telegram.
	b.store(belgian(3, at), brussels, at)
	bt.Cycle(context.Background())
	if out := rec.String(); strings.Count(out, "p1,gateway=b,") != 1 || strings.Contains(out, "gateway=a") {
		t.Errorf("cycle 3 lines:\n%s", out)
	}
	s := bt.Stats()
	if s.Cycles != 3 || s.P1Points != 2 || s.MBusPoints != 4 || s.PeakPoints != 8 {
		t.Errorf("stats %+v", s)
	}
}

func TestBatcherHealth(t *testing.T) {
	a := tcpGateway("a", "x:1")
	a.telegrams.Store(5)
	a.crcErrors.Store(2)
	a.connected.Store(true)
	rec := &recorder{}
	now := time.Unix(1700000000, 0)
	bt := NewBatcher(BatcherConfig{Now: func() time.Time { return now }}, []*Gateway{a, tcpGateway("b", "x:2")}, rec, nil)
	bt.Health(context.Background())
	want := "p1_gateway,gateway=a connected=true,telegrams=5i,crc_errors=2i,parse_errors=0i,reconnects=0i 1700000000000000000\n" +
		"p1_gateway,gateway=b connected=false,telegrams=0i,crc_errors=0i,parse_errors=0i,reconnects=0i 1700000000000000000\n"
	if got := rec.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestBatcherRunFinalFlush: cancelling Run writes the telegrams received
// since the last cycle.
func TestBatcherRunFinalFlush(t *testing.T) {
	a := tcpGateway("a", "x:1")
	rec := &recorder{}
	bt := NewBatcher(BatcherConfig{Cycle: time.Hour}, []*Gateway{a}, rec, nil)
	stop := runInBackground(t, bt.Run)
	a.store(belgian(1, time.Now()), brussels, time.Now())
	stop()
	if !strings.Contains(rec.String(), "p1,gateway=a,") {
		t.Errorf("no p1 point after the final flush: %q", rec.String())
	}
}

// TestBatcherFlushBytes: a cycle of many gateways reaches the writer in
// pieces of about FlushBytes, each made of whole lines.
func TestBatcherFlushBytes(t *testing.T) {
	at := time.Now()
	var gws []*Gateway
	for i := range 50 {
		g := tcpGateway("g"+itoa(int64(i)), "x:1")
		g.store(belgian(i, at), brussels, at)
		gws = append(gws, g)
	}
	calls := &countingWriter{}
	bt := NewBatcher(BatcherConfig{FlushBytes: 4096, Location: brussels}, gws, calls, nil)
	if n := bt.Cycle(context.Background()); n != 50 {
		t.Fatalf("wrote %d p1 points, want 50", n)
	}
	if calls.n < 5 {
		t.Errorf("%d WriteLines calls for ~50 KB at FlushBytes 4096", calls.n)
	}
	if calls.partial {
		t.Error("a WriteLines call did not end with a whole line")
	}
}

type countingWriter struct {
	n       int
	partial bool
}

func (c *countingWriter) WriteLines(_ context.Context, b []byte) error {
	c.n++
	if len(b) == 0 || b[len(b)-1] != '\n' {
		c.partial = true
	}
	return nil
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
