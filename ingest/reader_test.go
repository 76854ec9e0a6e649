package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/parser"
)

// latestJSON is the gateway's newest telegram as JSON, or "" if none.
func latestJSON(g *Gateway) string {
	b, _, ok := g.AppendLatestJSON(nil)
	if !ok {
		return ""
	}
	return string(b)
}

func frameJSON(t *testing.T, frame []byte) string {
	t.Helper()
	return string(mustParse(t, frame).AppendJSON(nil))
}

func fastReader(t *testing.T, g *Gateway, idle time.Duration) *Readers {
	return fastReaders(t, idle, g)
}

// fastReaders is fastReader for several gateways, sharing one frame channel
// and parser pool, as in the daemon.
func fastReaders(t *testing.T, idle time.Duration, gws ...*Gateway) *Readers {
	return NewReaders(gws, ReaderConfig{
		IdleTimeout: idle,
		DialTimeout: time.Second,
		Location:    brussels,
		MinBackoff:  20 * time.Millisecond,
		MaxBackoff:  100 * time.Millisecond,
		Logger:      testLogger(t),
	})
}

func TestReaderGoodStream(t *testing.T) {
	start := time.Now()
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		for i := range 10 {
			f := belgian(i, start.Add(time.Duration(i)*time.Second))
			gw.record(f) // before the write: the reader may store it at once
			if _, err := c.Write(f); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		gw.hold()
	})
	g := tcpGateway("home", gw.addr())
	runInBackground(t, fastReader(t, g, 5*time.Second).Run)
	waitFor(t, 5*time.Second, "10 telegrams", func() bool { return g.Stats().Telegrams == 10 })
	s := g.Stats()
	if !s.Connected || s.CRCErrors != 0 || s.ParseErrors != 0 || s.Dropped != 0 || s.Reconnects != 0 {
		t.Errorf("stats after a clean stream: %+v", s)
	}
	sent := gw.sentFrames()
	if got, want := latestJSON(g), frameJSON(t, sent[len(sent)-1]); got != want {
		t.Errorf("latest telegram:\ngot  %s\nwant %s", got, want)
	}
}

// noise returns n random bytes that cannot start or end a telegram.
func noise(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		c := byte(r.IntN(256))
		if c == '/' || c == '!' {
			c = 'x'
		}
		b[i] = c
	}
	return b
}

// TestReaderFaultyStream sends, on one connection, good telegrams mixed with
// garbage, telegrams cut at random byte boundaries and telegrams with a bad
// CRC, for several seeds, and checks every count and that the newest stored
// telegram is always the last good one.
func TestReaderFaultyStream(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			start := time.Now()
			var stream bytes.Buffer
			var good, crc, cut int
			var last []byte
			for i := range 60 {
				f := belgian(i, start.Add(time.Duration(i)*time.Second))
				switch r.IntN(4) {
				case 0: // good
					stream.Write(f)
					last = f
					good++
				case 1: // garbage, then good
					stream.Write(noise(r, 1+r.IntN(300)))
					stream.Write(f)
					last = f
					good++
				case 2: // cut before its "!" line: the next "/" ends it
					bang := bytes.IndexByte(f, '!')
					stream.Write(f[:1+r.IntN(bang)])
					cut++
				case 3:
					stream.Write(badCRC(f))
					crc++
				}
			}
			// The stream ends with a bad-CRC telegram: it must not replace
			// the last good one.
			stream.Write(badCRC(belgian(99, start)))
			crc++
			payload := stream.Bytes()
			gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
				// Write in random pieces, so frames straddle reads.
				for p := payload; len(p) > 0; {
					k := min(len(p), 1+r.IntN(700))
					if _, err := c.Write(p[:k]); err != nil {
						return
					}
					p = p[k:]
				}
				gw.hold()
			})
			g := tcpGateway("faulty", gw.addr())
			rd := fastReader(t, g, 5*time.Second)
			// The stream is 61 telegrams at once: every one is to be
			// checked here, none skipped for coming too fast.
			rd.cfg.MaxTelegramRate = 1000
			runInBackground(t, rd.Run)
			// The final bad-CRC telegram ends with its CRC line, so it is
			// framed without waiting for more bytes.
			waitFor(t, 5*time.Second, "all frames", func() bool {
				s := g.Stats()
				return s.Telegrams+s.CRCErrors+s.ParseErrors == int64(good+crc+cut)
			})
			s := g.Stats()
			if s.Telegrams != int64(good) || s.CRCErrors != int64(crc) || s.ParseErrors != int64(cut) ||
				s.Dropped != int64(crc+cut) {
				t.Errorf("got telegrams=%d crc=%d parse=%d dropped=%d, want %d %d %d %d",
					s.Telegrams, s.CRCErrors, s.ParseErrors, s.Dropped, good, crc, cut, crc+cut)
			}
			if s.SkippedBytes == 0 {
				t.Error("no garbage bytes counted")
			}
			if got, want := latestJSON(g), frameJSON(t, last); got != want {
				t.Errorf("latest telegram is not the last good one:\ngot  %s\nwant %s", got, want)
			}
			if s.Reconnects != 0 {
				t.Errorf("reconnects = %d: bad data must not drop the connection", s.Reconnects)
			}
		})
	}
}

// TestReaderSyntaxPolicy: a telegram with a bad line is used when its CRC
// vouches for the rest, and dropped when it has no CRC.
func TestReaderSyntaxPolicy(t *testing.T) {
	// With CRC: one unreadable register.
	body := strings.Replace(string(belgian(1, time.Now()))[:strings.IndexByte(string(belgian(1, time.Now())), '!')+1],
		"1-0:52.7.0(228.1*V)", "1-0:52.7.0(2x8.1*V)", 1)
	withCRC := fmt.Appendf(nil, "%s%04X\r\n", body, parser.CRC16([]byte(body)))
	// Without CRC: a DSMR 2.2 telegram with an unreadable register.
	dsmr22 := string(readTestTelegram(t, "nl-dsmr22-kamstrup-ka6u-export-gas.txt"))
	i := strings.Index(dsmr22, "1-0:1.8.1(")
	if i < 0 {
		t.Fatal("test telegram has no 1-0:1.8.1")
	}
	noCRC := []byte(dsmr22[:i+len("1-0:1.8.1(")] + "zz" + dsmr22[i+len("1-0:1.8.1(")+2:])
	for _, f := range [][]byte{withCRC, noCRC} {
		if _, err := parser.Parse(f, brussels); !errors.Is(err, parser.ErrSyntax) {
			t.Fatalf("test frame should have a syntax error, got %v:\n%s", err, f)
		}
	}
	good := belgian(2, time.Now())

	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		c.Write(good)
		c.Write(noCRC)
		time.Sleep(50 * time.Millisecond)
		c.Write(withCRC)
		gw.hold()
	})
	g := tcpGateway("policy", gw.addr())
	runInBackground(t, fastReader(t, g, 5*time.Second).Run)
	waitFor(t, 5*time.Second, "3 telegrams handled", func() bool {
		s := g.Stats()
		return s.Telegrams == 2 && s.ParseErrors == 2
	})
	if s := g.Stats(); s.Dropped != 1 || s.CRCErrors != 0 {
		t.Errorf("dropped=%d crc=%d, want 1 and 0", s.Dropped, s.CRCErrors)
	}
	// The telegram with a CRC is the latest, without voltage_l2_v.
	tg := mustParseLoose(t, withCRC)
	if got, want := latestJSON(g), string(tg.AppendJSON(nil)); got != want {
		t.Errorf("latest:\ngot  %s\nwant %s", got, want)
	}
	if strings.Contains(latestJSON(g), "voltage_l2_v") {
		t.Error("the unreadable register was stored")
	}
}

func mustParseLoose(t *testing.T, f []byte) *parser.Telegram {
	t.Helper()
	tg, err := parser.Parse(f, brussels)
	if err != nil && !errors.Is(err, parser.ErrSyntax) {
		t.Fatal(err)
	}
	return tg
}

// TestReaderReconnects: a gateway that closes after 3 telegrams is redialled
// again and again, quickly, since each connection delivered good telegrams
// and so reset the backoff. The close comes a little after the telegrams, as
// when a gateway is restarted; a close that arrives with the last bytes is
// TestReaderCloseWithData's.
func TestReaderReconnects(t *testing.T) {
	start := time.Now()
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		for i := range 3 {
			c.Write(belgian(n*3+i, start))
		}
		time.Sleep(20 * time.Millisecond)
	})
	g := tcpGateway("flaky", gw.addr())
	t0 := time.Now()
	runInBackground(t, fastReader(t, g, 5*time.Second).Run)
	waitFor(t, 5*time.Second, "5 connections", func() bool { return gw.connections() >= 5 })
	// Without the reset, delays would be capped at 100ms anyway; with it
	// they stay near 20ms: 4 redials well within 1s.
	if d := time.Since(t0); d > time.Second {
		t.Errorf("5 connections took %s; backoff not reset after good telegrams?", d)
	}
	waitFor(t, 2*time.Second, "telegrams of 5 connections", func() bool { return g.Stats().Telegrams >= 15 })
	s := g.Stats()
	if s.Reconnects < 4 {
		t.Errorf("reconnects = %d, want ≥ 4", s.Reconnects)
	}
	if !strings.Contains(s.LastError, "closed by gateway") {
		t.Errorf("last error %q, want it to say the gateway closed", s.LastError)
	}
}

// TestReaderIdle: a gateway that sends one telegram and then goes silent with
// its socket open is dropped after the idle timeout and redialled.
func TestReaderIdle(t *testing.T) {
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		c.Write(belgian(n, time.Now()))
		gw.hold()
	})
	g := tcpGateway("silent", gw.addr())
	runInBackground(t, fastReader(t, g, 150*time.Millisecond).Run)
	waitFor(t, 5*time.Second, "a second connection", func() bool { return gw.connections() >= 2 })
	waitFor(t, 2*time.Second, "2 telegrams", func() bool { return g.Stats().Telegrams >= 2 })
	if s := g.Stats(); !strings.Contains(s.LastError, "idle timeout") {
		t.Errorf("last error %q, want an idle timeout", s.LastError)
	}
}

// TestReaderNeverAnswers: a listener that never accepts (the kernel completes
// the handshake, nothing is ever sent) is dropped after the idle timeout; a
// port that refuses is redialled with growing, capped delays; Run returns
// promptly when cancelled in either state.
func TestReaderNeverAnswers(t *testing.T) {
	t.Run("no accept", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		g := tcpGateway("mute", ln.Addr().String())
		stop := runInBackground(t, fastReader(t, g, 100*time.Millisecond).Run)
		waitFor(t, 5*time.Second, "2 redials", func() bool { return g.Stats().Reconnects >= 2 })
		if s := g.Stats(); s.Telegrams != 0 || !strings.Contains(s.LastError, "idle timeout") {
			t.Errorf("stats %+v, want no telegram and an idle timeout", s)
		}
		t0 := time.Now()
		stop()
		if d := time.Since(t0); d > time.Second {
			t.Errorf("Run took %s to return after cancel", d)
		}
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		g := tcpGateway("down", addr)
		t0 := time.Now()
		stop := runInBackground(t, fastReader(t, g, time.Second).Run)
		time.Sleep(600 * time.Millisecond)
		s := g.Stats()
		// 20ms doubling, ±50%, capped at 100ms: between 5 and 40 dials in
		// 600ms; an unbounded loop would make thousands.
		if s.Reconnects < 3 || s.Reconnects > 40 {
			t.Errorf("%d redials in %s; want a few, with backoff", s.Reconnects, time.Since(t0))
		}
		if s.Connected || !strings.Contains(s.LastError, "refused") {
			t.Errorf("stats %+v, want disconnected, connection refused", s)
		}
		t1 := time.Now()
		stop()
		if d := time.Since(t1); d > time.Second {
			t.Errorf("Run took %s to return after cancel", d)
		}
	})
}

// TestReaderCancel: cancelling Run while a connection is open and quiet
// closes it at once, without waiting for the idle timeout.
func TestReaderCancel(t *testing.T) {
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		c.Write(belgian(0, time.Now()))
		gw.hold()
	})
	g := tcpGateway("quiet", gw.addr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fastReader(t, g, time.Minute).Run(ctx) }()
	waitFor(t, 5*time.Second, "a telegram", func() bool { return g.Stats().Telegrams == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancel")
	}
	if g.Stats().Connected {
		t.Error("still marked connected after Run returned")
	}
}

// TestReaderDialLimit: readers sharing a one-slot DialLimit all connect.
func TestReaderDialLimit(t *testing.T) {
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		c.Write(belgian(n, time.Now()))
		gw.hold()
	})
	limit := make(chan struct{}, 1)
	var gs []*Gateway
	for i := range 20 {
		gs = append(gs, tcpGateway(fmt.Sprint("g", i), gw.addr()))
	}
	runInBackground(t, NewReaders(gs, ReaderConfig{Location: brussels, DialLimit: limit, Logger: testLogger(t)}).Run)
	waitFor(t, 5*time.Second, "20 gateways with a telegram", func() bool {
		for _, g := range gs {
			if g.Stats().Telegrams != 1 {
				return false
			}
		}
		return true
	})
}

// TestReaderCloseWithData: a gateway that sends telegrams and closes at once
// can have its close (FIN) arrive before the reader read the bytes, when the
// poller has nothing new to report. The reader still notices the close
// within probeAfter, not after the whole idle timeout, and keeps every
// telegram.
func TestReaderCloseWithData(t *testing.T) {
	start := time.Now()
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		var b []byte
		for i := range 3 {
			b = append(b, belgian(n*3+i, start)...)
		}
		c.Write(b)
	})
	// Returning the connection only once the gateway's bytes and close are
	// both queued makes the race certain.
	src := source.NewTCP(gw.addr())
	var d net.Dialer
	src.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			time.Sleep(100 * time.Millisecond)
		}
		return c, err
	}
	g := NewGateway("sudden", src)
	t0 := time.Now()
	idle := 30 * time.Second
	r := fastReader(t, g, idle)
	runInBackground(t, r.Run)
	waitFor(t, 4*probeAfter, "3 connections", func() bool { return gw.connections() >= 3 })
	if d := time.Since(t0); d >= idle {
		t.Errorf("3 connections took %s, the idle timeout: a close with the data went unnoticed", d)
	}
	waitFor(t, 2*time.Second, "telegrams of 2 connections", func() bool { return g.Stats().Telegrams >= 6 })
	if s := g.Stats(); s.Dropped != 0 || s.ParseErrors != 0 {
		t.Errorf("stats = %+v, want nothing dropped", s)
	}
}

// TestReaderGarbageWithoutCRC: frames without a CRC that do not look like a
// telegram (binary noise between a "/" and a "!" line) are garbage: counted
// as skipped bytes, neither telegrams nor parse errors, while the real DSMR
// 2.2 telegrams around them (no CRC either) are accepted.
func TestReaderGarbageWithoutCRC(t *testing.T) {
	real22 := readTestTelegram(t, "nl-dsmr22-kamstrup-ka6u-export-gas.txt")
	r := rand.New(rand.NewPCG(11, 12))
	var garbage bytes.Buffer
	garbage.WriteString("/\x00\x9c\x01\n!\n")                      // header only: was a telegram, "crc": "none"
	garbage.WriteString("/\xfe\xff\xfa\r\n\r\n\r\n!\r\n")          // binary header, blank lines
	garbage.WriteString("/ABC5 x\r\n1-0:1.8.1(\x80*kWh)\r\n!\r\n") // unprintable value
	for range 20 {
		garbage.WriteByte('/')
		garbage.Write(noise(r, 1+r.IntN(200)))
		garbage.WriteString("\n!\r\n")
	}
	var stream bytes.Buffer
	stream.Write(real22)
	stream.Write(garbage.Bytes())
	stream.Write(real22)
	payload := stream.Bytes()
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		for p := payload; len(p) > 0; {
			k := min(len(p), 1+r.IntN(300))
			if _, err := c.Write(p[:k]); err != nil {
				return
			}
			p = p[k:]
		}
		gw.hold()
	})
	g := tcpGateway("noisy22", gw.addr())
	runInBackground(t, fastReader(t, g, 5*time.Second).Run)
	waitFor(t, 5*time.Second, "2 telegrams", func() bool { return g.Stats().Telegrams >= 2 })
	s := g.Stats()
	if s.Telegrams != 2 || s.ParseErrors != 0 || s.Dropped != 0 || s.CRCErrors != 0 {
		t.Errorf("telegrams=%d parse=%d dropped=%d crc=%d, want 2 0 0 0", s.Telegrams, s.ParseErrors, s.Dropped, s.CRCErrors)
	}
	if s.SkippedBytes != int64(garbage.Len()) {
		t.Errorf("skipped %d bytes, want the %d bytes of garbage frames", s.SkippedBytes, garbage.Len())
	}
	if got, want := latestJSON(g), frameJSON(t, real22); got != want {
		t.Errorf("latest:\ngot  %s\nwant %s", got, want)
	}
}

// plainSource opens a TCP connection but hides that it is a socket, as a
// serial device or an HTTP poll is not one: the Reader must read it
// through servePlain, with the same idle timeout, counting and redials.
type plainSource struct{ tcp *source.TCP }

func (s plainSource) Open(ctx context.Context) (source.Conn, error) {
	c, err := s.tcp.Open(ctx)
	if err != nil {
		return nil, err
	}
	return struct{ source.Conn }{c}, nil
}
func (s plainSource) String() string { return s.tcp.String() }
func (s plainSource) Kind() string   { return "plain" }

func TestReaderPlainConn(t *testing.T) {
	start := time.Now()
	gw := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		for i := range 3 {
			f := belgian(n*3+i, start.Add(time.Duration(n*3+i)*time.Second))
			gw.record(f)
			if _, err := c.Write(f); err != nil {
				return
			}
		}
		gw.hold() // silent: the idle timeout must end the connection
	})
	g := NewGateway("plain", plainSource{source.NewTCP(gw.addr())})
	runInBackground(t, fastReader(t, g, 300*time.Millisecond).Run)
	waitFor(t, 10*time.Second, "2 connections' telegrams", func() bool { return g.Stats().Telegrams >= 6 })
	s := g.Stats()
	if s.Kind != "plain" || s.Addr != gw.addr() {
		t.Errorf("kind %q addr %q, want plain %s", s.Kind, s.Addr, gw.addr())
	}
	if s.Reconnects < 1 || s.CRCErrors != 0 || s.ParseErrors != 0 || s.Dropped != 0 {
		t.Errorf("stats = %+v, want a redial after the idle timeout and nothing dropped", s)
	}
	if !strings.Contains(s.LastError, "idle timeout") {
		t.Errorf("last error %q, want the idle timeout", s.LastError)
	}
}
