package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/lptest"
	"github.com/p1logger/p1logger/parser"
)

// panicky stands for a bug in the rollups' Observer: it panics on the
// telegrams of one gateway, after the Batcher appended their lines.
type panicky struct {
	observer
	gateway string
}

func (p *panicky) Observe(gateway string, at time.Time, t *parser.Telegram) {
	if gateway == p.gateway {
		var regs []int
		_ = regs[len(gateway)] // index out of range, as a real bug would
	}
	p.observer.Observe(gateway, at, t)
}

// TestContainPanics: a panic while decoding (parser) or encoding (Batcher)
// one gateway's telegrams drops those telegrams, is counted and logged once
// with the telegram, and the other gateways, on real TCP connections, keep
// being written cycle after cycle.
func TestContainPanics(t *testing.T) {
	for _, stage := range []string{stageDecode, stageEncode} {
		t.Run(stage, func(t *testing.T) {
			var obs Observer = &observer{}
			if stage == stageDecode {
				hook := func(st, gateway string, raw []byte) {
					if st == stageDecode && gateway == "bad" {
						panic("injected decode bug")
					}
				}
				panicHook.Store(&hook)
				t.Cleanup(func() { panicHook.Store(nil) })
			} else {
				obs = &panicky{gateway: "bad"}
			}
			log, logs := captureLog(t)
			var gws []*Gateway
			for _, name := range []string{"a", "bad", "b"} {
				src := startGateway(t, func(gw *gateway, c net.Conn, n int) {
					start := time.Now()
					for i := range 200 {
						if _, err := c.Write(belgian(i, start.Add(time.Duration(i)*time.Second))); err != nil {
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
					gw.hold()
				})
				gws = append(gws, tcpGateway(name, src.addr()))
			}
			// One parser for all three: the one that recovers from bad's
			// panics must go on parsing a's and b's telegrams.
			rd := fastReaders(t, 5*time.Second, gws...)
			rd.cfg.Logger, rd.cfg.Parsers = log, 1
			runInBackground(t, rd.Run)
			rec := &recorder{}
			bt := NewBatcher(BatcherConfig{Location: brussels, Logger: log}, gws, rec, obs)
			written := map[string]int{}
			for cycle := 0; cycle < 100 && (written["a"] < 5 || written["b"] < 5); cycle++ {
				time.Sleep(50 * time.Millisecond)
				rec.mu.Lock()
				rec.lines.Reset()
				rec.mu.Unlock()
				bt.Cycle(context.Background())
				lines, err := lptest.Decode([]byte(rec.String()))
				if err != nil {
					t.Fatalf("cycle %d: %v", cycle, err)
				}
				for _, l := range lines {
					if l.Measurement == "p1" {
						written[l.Tags["gateway"]]++
					}
					if l.Tags["gateway"] == "bad" {
						t.Errorf("cycle %d wrote for gateway bad: %+v", cycle, l)
					}
				}
			}
			if written["a"] < 5 || written["b"] < 5 {
				t.Errorf("points per gateway %v: want a and b written on, bad not at all", written)
			}
			bad := gws[1].Stats()
			if bad.InternalErrors < 3 {
				t.Errorf("bad gateway: %d internal errors, want one per telegram", bad.InternalErrors)
			}
			for _, g := range []*Gateway{gws[0], gws[2]} {
				if s := g.Stats(); s.InternalErrors != 0 || s.Telegrams < 5 {
					t.Errorf("gateway %s: %+v", s.Name, s)
				}
			}
			if stage == stageDecode && (bad.Telegrams != 0 || bad.Dropped != bad.InternalErrors) {
				t.Errorf("bad gateway: %d accepted, %d dropped, want 0 and %d", bad.Telegrams, bad.Dropped, bad.InternalErrors)
			}
			out := logs.String()
			if n := strings.Count(out, "internal error"); n != 1 {
				t.Errorf("%d internal error log lines for %d errors, want 1 (rate-limited)", n, bad.InternalErrors)
			}
			if !strings.Contains(out, `gateway=bad stage=`+stage) || !strings.Contains(out, `telegram="\"/FLU5\\\\253769484_A\\r\\n`) {
				t.Errorf("log lacks the gateway, stage or the quoted telegram:\n%s", out)
			}
		})
	}
}

// TestReaderFlood: a real gateway on loopback that sends telegrams as fast
// as TCP takes them gets a bounded number parsed, the rest skipped and
// counted, and the newest telegram it sent still ends up in the slot.
func TestReaderFlood(t *testing.T) {
	start := time.Now()
	var last []byte
	var sent int
	var mu sync.Mutex
	src := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		var burst bytes.Buffer
		for i := range 20 {
			burst.Write(belgian(i, start))
		}
		until := time.Now().Add(time.Second)
		i := 0
		for ; i < 100000 && time.Now().Before(until); i += 20 {
			if _, err := c.Write(burst.Bytes()); err != nil {
				return
			}
		}
		// The newest, different from every telegram before it.
		f := belgian(999999, start.Add(time.Hour))
		if _, err := c.Write(f); err != nil {
			return
		}
		mu.Lock()
		last, sent = f, i+1
		mu.Unlock()
		gw.hold()
	})
	g := tcpGateway("flood", src.addr())
	rd := fastReader(t, g, 10*time.Second)
	runInBackground(t, rd.Run)
	waitFor(t, 10*time.Second, "every telegram framed", func() bool {
		mu.Lock()
		n := sent
		mu.Unlock()
		s := g.Stats()
		return n > 0 && s.Telegrams+s.SkippedTelegrams+s.CRCErrors+s.ParseErrors == int64(n)
	})
	s := g.Stats()
	mu.Lock()
	n, want := sent, frameJSON(t, last)
	mu.Unlock()
	elapsed := time.Since(start).Seconds()
	limit := int64(2*defaultTelegramRate + elapsed*defaultTelegramRate + 2)
	t.Logf("sent %d in %.1fs: parsed %d, skipped %d", n, elapsed, s.Telegrams, s.SkippedTelegrams)
	if s.Telegrams > limit || s.SkippedTelegrams == 0 {
		t.Errorf("parsed %d of %d telegrams, want at most %d, the rest skipped (skipped %d)", s.Telegrams, n, limit, s.SkippedTelegrams)
	}
	if s.CRCErrors != 0 || s.ParseErrors != 0 || s.Reconnects != 0 {
		t.Errorf("stats %+v", s)
	}
	// The newest telegram was held back, and is parsed once the flood pauses.
	waitFor(t, 5*time.Second, "the newest telegram in the slot", func() bool { return latestJSON(g) == want })
	if got := fmt.Sprint(g.Stats().Telegrams); got == "0" {
		t.Error("no telegram accepted")
	}
}
