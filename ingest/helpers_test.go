package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/parser"
)

// tcpGateway returns the Gateway name that dials addr (host:port) over TCP.
func tcpGateway(name, addr string) *Gateway { return NewGateway(name, source.NewTCP(addr)) }

// brussels is the zone of the Belgian test telegrams.
var brussels = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		panic(err)
	}
	return loc
}()

// readTestTelegram returns a telegram file from testdata/telegrams.
func readTestTelegram(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "telegrams", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// beTemplate is a real Fluvius three-phase telegram with gas, water and
// peak history; belgian fills in the registers that change.
const beTemplate = "/FLU5\\253769484_A\r\n\r\n" +
	"0-0:96.1.4(50217)\r\n" +
	"0-0:96.1.1(3153414733313030373231333236)\r\n" +
	"0-0:1.0.0(%s)\r\n" +
	"1-0:1.8.1(%010.3f*kWh)\r\n" +
	"1-0:1.8.2(000270.014*kWh)\r\n" +
	"1-0:2.8.1(%010.3f*kWh)\r\n" +
	"1-0:2.8.2(000000.000*kWh)\r\n" +
	"0-0:96.14.0(0001)\r\n" +
	"1-0:1.4.0(00.052*kW)\r\n" +
	"1-0:1.6.0(%s)(%06.3f*kW)\r\n" +
	"0-0:98.1.0(4)(1-0:1.6.0)(1-0:1.6.0)(230801000000S)(632525252525W)(00.000*kW)(230901000000S)(230831181500S)(01.862*kW)(231001000000S)(230910183000S)(04.229*kW)(231101000000W)(231016130000S)(04.927*kW)\r\n" +
	"1-0:1.7.0(%06.3f*kW)\r\n" +
	"1-0:2.7.0(00.000*kW)\r\n" +
	"1-0:21.7.0(00.047*kW)\r\n" +
	"1-0:41.7.0(00.179*kW)\r\n" +
	"1-0:61.7.0(00.111*kW)\r\n" +
	"1-0:22.7.0(00.000*kW)\r\n" +
	"1-0:42.7.0(00.000*kW)\r\n" +
	"1-0:62.7.0(00.000*kW)\r\n" +
	"1-0:32.7.0(%05.1f*V)\r\n" +
	"1-0:52.7.0(228.1*V)\r\n" +
	"1-0:72.7.0(228.1*V)\r\n" +
	"1-0:31.7.0(000.27*A)\r\n" +
	"1-0:51.7.0(000.88*A)\r\n" +
	"1-0:71.7.0(000.52*A)\r\n" +
	"0-0:96.3.10(1)\r\n" +
	"0-0:17.0.0(999.9*kW)\r\n" +
	"1-0:31.4.0(999*A)\r\n" +
	"0-0:96.13.0()\r\n" +
	"0-1:24.1.0(003)\r\n" +
	"0-1:96.1.1(37464C4F32313233303838303237)\r\n" +
	"0-1:24.4.0(1)\r\n" +
	"0-1:24.2.3(%s)(%09.3f*m3)\r\n" +
	"0-2:24.1.0(007)\r\n" +
	"0-2:96.1.1(3853455430303030393631313733)\r\n" +
	"0-2:24.2.1(231102121532W)(00008.579*m3)\r\n" +
	"!"

// meterTime formats t as a meter timestamp YYMMDDhhmmssX in Brussels.
func meterTime(t time.Time) string {
	t = t.In(brussels)
	flag := "W"
	if t.IsDST() {
		flag = "S"
	}
	return t.Format("060102150405") + flag
}

// belgian renders telegram number seq as the meter would send it at now:
// registers grow with seq, gas is captured every 5 telegrams, the month's
// peak changes every 3. The CRC is correct.
func belgian(seq int, now time.Time) []byte {
	gasAt := now.Add(-time.Duration(seq%5) * time.Second).Truncate(time.Second)
	peakAt := now.Add(-time.Duration(seq%3) * time.Minute).Truncate(time.Minute)
	body := fmt.Sprintf(beTemplate,
		meterTime(now.Truncate(time.Second)),
		301.548+float64(seq)*0.001,
		0.005+float64(seq/2)*0.001,
		meterTime(peakAt), 3.064+float64(seq/3)*0.001,
		0.338+float64(seq%100)*0.001,
		220+float64(seq%200)*0.1,
		meterTime(gasAt), 92.287+float64(seq/5)*0.001,
	)
	return fmt.Appendf(nil, "%s%04X\r\n", body, parser.CRC16([]byte(body)))
}

// badCRC returns frame with one digit of the first register changed but the
// original CRC kept: a transmission error the CRC must catch.
func badCRC(frame []byte) []byte {
	out := bytes.Clone(frame)
	i := bytes.Index(out, []byte("1-0:1.8.1(")) + len("1-0:1.8.1(")
	out[i] = '9' // 000301.548 → 900301.548
	return out
}

// gatewayFunc serves one accepted connection; n counts connections from 0.
// The connection is closed when it returns or the test ends.
type gatewayFunc func(gw *gateway, c net.Conn, n int)

// gateway is a real TCP listener on loopback that plays a P1 gateway.
type gateway struct {
	ln    net.Listener
	mu    sync.Mutex
	sent  [][]byte // good telegrams written, in order
	conns int
	wg    sync.WaitGroup
	done  chan struct{}
}

// startGateway listens on 127.0.0.1 and serves every connection with fn
// until the test ends.
func startGateway(t *testing.T, fn gatewayFunc) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{ln: ln, done: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			n := g.conns
			g.conns++
			g.mu.Unlock()
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer c.Close()
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					select {
					case <-g.done:
						c.Close()
					case <-stop:
					}
				}()
				fn(g, c, n)
			}()
		}
	}()
	t.Cleanup(func() {
		close(g.done)
		ln.Close()
		g.wg.Wait()
	})
	return g
}

func (g *gateway) addr() string { return g.ln.Addr().String() }

func (g *gateway) connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns
}

// record notes a good telegram as sent.
func (g *gateway) record(frame []byte) {
	g.mu.Lock()
	g.sent = append(g.sent, frame)
	g.mu.Unlock()
}

func (g *gateway) sentFrames() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]byte(nil), g.sent...)
}

// hold blocks until the test ends: a gateway that keeps its socket open
// and says nothing.
func (g *gateway) hold() { <-g.done }

// testLogger logs to the test's output at debug level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runInBackground runs fn(ctx) and returns a stop function that cancels it
// and waits for it, failing the test if it returns an error.
func runInBackground(t *testing.T, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return within 15s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// recorder is a LineWriter that keeps what it is given.
type recorder struct {
	mu    sync.Mutex
	lines bytes.Buffer
}

func (r *recorder) WriteLines(_ context.Context, lines []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines.Write(lines)
	return nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines.String()
}

var _ io.Writer = testWriter{}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
