package sim_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

var start2026 = time.Date(2026, 3, 29, 0, 0, 0, 0, brussels)

// startServer runs a server on loopback until the test ends, and checks
// that Run then returns nil promptly.
func startServer(t *testing.T, cfg sim.Config) *sim.Server {
	t.Helper()
	if cfg.Meter.Loc == nil {
		cfg.Meter.Loc = brussels
	}
	if cfg.Interval == 0 {
		cfg.Interval = 20 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = sim.StepClock(start2026, time.Second)
	}
	srv, err := sim.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5 s of cancel")
		}
	})
	return srv
}

// client reads telegrams the way p1logger does: parser.Splitter over a
// bufio.Scanner.
type client struct {
	t    testing.TB
	conn net.Conn
	sc   *bufio.Scanner
	sp   parser.Splitter
}

func dial(t testing.TB, srv *sim.Server) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, sc: bufio.NewScanner(conn)}
	c.sc.Buffer(make([]byte, 0, 4096), parser.MaxTelegramSize)
	c.sc.Split(c.sp.Split)
	return c
}

// next returns the next token, or io.EOF when the server closed the
// connection; it fails the test when nothing comes within 3 s.
func (c *client) next() ([]byte, error) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if c.sc.Scan() {
		return bytes.Clone(c.sc.Bytes()), nil
	}
	if err := c.sc.Err(); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return nil, io.EOF
}

// telegram returns the next token, which must be a telegram that parses.
func (c *client) telegram() ([]byte, *parser.Telegram) {
	c.t.Helper()
	b, err := c.next()
	if err != nil {
		c.t.Fatalf("want a telegram, got %v", err)
	}
	return b, parse(c.t, b)
}

// sentTo returns the records of the telegrams written to c, in order.
func sentTo(srv *sim.Server, c *client) []sim.Sent {
	var out []sim.Sent
	for _, s := range srv.Recent() {
		if s.Remote == c.conn.LocalAddr().String() {
			out = append(out, s)
		}
	}
	return out
}

// waitSent polls until at least n telegrams were recorded for c.
func waitSent(t *testing.T, srv *sim.Server, c *client, n int) []sim.Sent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := sentTo(srv, c)
		if len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d telegrams recorded", len(s), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readRaw reads exactly n bytes.
func (c *client) readRaw(n int) []byte {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c.conn, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// wire is what the records say went out on a connection.
func wire(recs []sim.Sent) []byte {
	var b []byte
	for _, s := range recs {
		b = append(b, s.Garbage...)
		b = append(b, s.Frame[:s.Written]...)
	}
	return b
}

func TestBroadcastSameBytesToAll(t *testing.T) {
	srv := startServer(t, sim.Config{Meter: sim.MeterConfig{Water: true}})
	clients := []*client{dial(t, srv), dial(t, srv), dial(t, srv)}
	byTime := make([]map[time.Time][]byte, len(clients))
	for i, c := range clients {
		byTime[i] = map[time.Time][]byte{}
		for range 8 {
			b, tg := c.telegram()
			byTime[i][tg.Time] = b
		}
	}
	common := 0
	for tm, b := range byTime[0] {
		b1, ok1 := byTime[1][tm]
		b2, ok2 := byTime[2][tm]
		if !ok1 || !ok2 {
			continue
		}
		common++
		if !bytes.Equal(b, b1) || !bytes.Equal(b, b2) {
			t.Errorf("telegram of %v differs between clients:\n%s\n%s\n%s", tm, b, b1, b2)
		}
	}
	if common < 4 {
		t.Errorf("only %d telegrams reached all three clients", common)
	}
	if st := srv.Stats(); st.Clients != 3 || st.Accepted != 3 {
		t.Errorf("stats %+v, want 3 clients", st)
	}
}

func TestPerConnDistinctMeters(t *testing.T) {
	srv := startServer(t, sim.Config{PerConn: true, Meter: sim.MeterConfig{Profile: sim.ProfileNL5, Name: "gw"}})
	ids := map[string]bool{}
	for range 5 {
		c := dial(t, srv)
		_, first := c.telegram()
		_, second := c.telegram()
		if string(first.MeterID) != string(second.MeterID) {
			t.Errorf("meter id changed on one connection: %s, %s", first.MeterID, second.MeterID)
		}
		if !second.Time.After(first.Time) {
			t.Errorf("meter clock did not advance: %v, %v", first.Time, second.Time)
		}
		if ids[string(first.MeterID)] {
			t.Errorf("meter id %s served twice", first.MeterID)
		}
		ids[string(first.MeterID)] = true
	}
}

// TestManyConnections opens 200 connections to a per-connection server:
// each gets valid telegrams from a meter of its own, spread over the interval.
func TestManyConnections(t *testing.T) {
	const n = 200
	srv := startServer(t, sim.Config{PerConn: true, Interval: 100 * time.Millisecond, LogSize: -1})
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, srv)
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range clients {
		wg.Go(func() {
			var id string
			for k := range 2 {
				c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if !c.sc.Scan() {
					errs <- errors.New("no telegram")
					return
				}
				tg, err := parser.Parse(c.sc.Bytes(), brussels)
				if err != nil {
					errs <- err
					return
				}
				if k > 0 && string(tg.MeterID) != id {
					errs <- errors.New("meter id changed")
				}
				id = string(tg.MeterID)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("meter id %s on two connections", id)
		}
		seen[id] = true
	}
	if st := srv.Stats(); st.Accepted != n || st.Telegrams < 2*n {
		t.Errorf("stats %+v, want %d accepted and %d telegrams", st, n, 2*n)
	}
}

func TestFaultBadCRCEvery(t *testing.T) {
	for _, tc := range []struct {
		profile sim.Profile
		want    error
	}{{sim.ProfileBE3, parser.ErrCRC}, {sim.ProfileNL5, parser.ErrCRC}, {sim.ProfileNL22, parser.ErrSyntax}} {
		srv := startServer(t, sim.Config{Meter: sim.MeterConfig{Profile: tc.profile}, Faults: sim.Faults{BadCRCEvery: 3}})
		c := dial(t, srv)
		var got [][]byte
		for i := 1; i <= 7; i++ {
			b, err := c.next()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b)
			_, perr := parser.Parse(b, brussels)
			if bad := i%3 == 0; bad != (perr != nil) || (bad && !errors.Is(perr, tc.want)) {
				t.Errorf("%s telegram %d: parse error %v, want one: %v", tc.profile, i, perr, bad)
			}
		}
		recs := waitSent(t, srv, c, 7)
		for i, s := range recs[:7] {
			if !bytes.Equal(s.Frame, got[i]) {
				t.Errorf("%s telegram %d: received bytes differ from the record", tc.profile, i+1)
			}
			if bad := s.Seq%3 == 0; s.BadCRC != bad || s.Corrupt() != bad || (bad && s.FlipAt < 0) {
				t.Errorf("%s record %d: BadCRC %v Corrupt %v FlipAt %d", tc.profile, s.Seq, s.BadCRC, s.Corrupt(), s.FlipAt)
			}
		}
	}
}

func TestFaultBadCRCInjected(t *testing.T) {
	srv := startServer(t, sim.Config{})
	c := dial(t, srv)
	c.telegram()
	if err := srv.Inject(sim.Fault{Kind: sim.FaultBadCRC, Count: 2}); err != nil {
		t.Fatal(err)
	}
	var results []bool // true: CRC error
	for bad := 0; bad < 2 && len(results) < 10; {
		b, _ := c.next()
		_, err := parser.Parse(b, brussels)
		if err != nil && !errors.Is(err, parser.ErrCRC) {
			t.Fatalf("unexpected error %v", err)
		}
		if err != nil {
			bad++
		}
		results = append(results, err != nil)
	}
	c.telegram() // the ones after are fine again
	for len(results) > 0 && !results[0] {
		results = results[1:] // sent before the injection took effect
	}
	if len(results) != 2 || !results[0] || !results[1] {
		t.Errorf("want exactly two consecutive CRC errors, got %v", results)
	}
	if st := srv.Stats(); st.Faults["badcrc"] != 2 || st.Pending["badcrc"] != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestFaultGarbage: noise before every telegram, and every telegram still
// arrives intact. The bytes on the wire are exactly those recorded.
func TestFaultGarbage(t *testing.T) {
	srv := startServer(t, sim.Config{Faults: sim.Faults{GarbageEvery: 1}})
	c := dial(t, srv)
	recs := waitSent(t, srv, c, 6)[:6]
	raw := c.readRaw(len(wire(recs)))
	if !bytes.Equal(raw, wire(recs)) {
		t.Fatalf("wire differs from records:\n%q\n%q", raw, wire(recs))
	}
	var sp parser.Splitter
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Split(sp.Split)
	ok, slashNoise := 0, 0
	for sc.Scan() {
		if _, err := parser.Parse(sc.Bytes(), brussels); err == nil {
			ok++
		} else {
			slashNoise++
		}
	}
	if ok != 6 {
		t.Errorf("%d telegrams decoded after garbage, want 6", ok)
	}
	for i, s := range recs {
		if len(s.Garbage) < 8 || s.Corrupt() {
			t.Errorf("record %d: %d bytes of garbage, corrupt %v", i, len(s.Garbage), s.Corrupt())
		}
	}
	// Six records cycle twice through the three kinds of noise.
	if sp.Skipped == 0 || slashNoise != 2 {
		t.Errorf("skipped %d bytes and %d noise frames, want some and 2", sp.Skipped, slashNoise)
	}
}

func TestFaultCut(t *testing.T) {
	srv := startServer(t, sim.Config{Faults: sim.Faults{CutEvery: 2}, Meter: sim.MeterConfig{Profile: sim.ProfileNL22}})
	c := dial(t, srv)
	for i := 1; i <= 6; i++ {
		b, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		_, perr := parser.Parse(b, brussels)
		if cut := i%2 == 0; cut != errors.Is(perr, parser.ErrFrame) || (!cut && perr != nil) {
			t.Errorf("telegram %d: %v", i, perr)
		}
	}
	recs := waitSent(t, srv, c, 6)[:6]
	for _, s := range recs {
		if cut := s.Seq%2 == 0; s.Cut != cut || s.Corrupt() != cut || (cut && s.Written >= bytes.LastIndex(s.Frame, []byte("\n!"))+1) {
			t.Errorf("record %d: cut %v, %d of %d bytes", s.Seq, s.Cut, s.Written, len(s.Frame))
		}
	}
}

func TestFaultCutWire(t *testing.T) {
	srv := startServer(t, sim.Config{Faults: sim.Faults{CutEvery: 1}})
	c := dial(t, srv)
	recs := waitSent(t, srv, c, 4)[:4]
	if raw := c.readRaw(len(wire(recs))); !bytes.Equal(raw, wire(recs)) {
		t.Fatalf("wire differs from records")
	}
}

func TestFaultDrip(t *testing.T) {
	srv := startServer(t, sim.Config{Interval: 50 * time.Millisecond, DripFor: 300 * time.Millisecond, Faults: sim.Faults{DripEvery: 1}})
	c := dial(t, srv)
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	reads := 0
	var first time.Time
	buf := make([]byte, 4096)
	end := func() int { // just past the CRC line, or -1
		bang := bytes.Index(got, []byte("\n!"))
		if bang < 0 {
			return -1
		}
		if nl := bytes.IndexByte(got[bang+1:], '\n'); nl >= 0 {
			return bang + 1 + nl + 1
		}
		return -1
	}
	for end() < 0 {
		n, err := c.conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() {
			first = time.Now()
		}
		got = append(got, buf[:n]...)
		reads++
	}
	took := time.Since(first)
	got = got[:end()] // the next telegram may have begun
	if took < 250*time.Millisecond || reads < 10 {
		t.Errorf("telegram of %d bytes arrived in %d reads over %v, want a slow drip", len(got), reads, took)
	}
	tg := parse(t, got)
	recs := waitSent(t, srv, c, 1)
	if !recs[0].Drip || !bytes.Equal(recs[0].Frame, got) || tg.CRC != parser.CRCOK {
		t.Errorf("record %+v does not match the dripped telegram", recs[0].Reading)
	}
}

func TestFaultSilence(t *testing.T) {
	srv := startServer(t, sim.Config{})
	c := dial(t, srv)
	c.telegram()
	if err := srv.Inject(sim.Fault{Kind: sim.FaultSilence, For: 400 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if !srv.Stats().Silent {
		t.Error("stats do not show the silence")
	}
	var longest time.Duration
	last := time.Now()
	for range 5 {
		c.telegram()
		longest = max(longest, time.Since(last))
		last = time.Now()
	}
	if longest < 350*time.Millisecond {
		t.Errorf("longest gap %v, want the 400 ms silence", longest)
	}
	if srv.Stats().Accepted != 1 {
		t.Error("the connection did not survive the silence")
	}
}

func TestFaultDisconnectAfter(t *testing.T) {
	srv := startServer(t, sim.Config{Faults: sim.Faults{DisconnectAfter: 3}})
	for range 2 { // the client may reconnect, and gets three more
		c := dial(t, srv)
		for range 3 {
			c.telegram()
		}
		if b, err := c.next(); err != io.EOF {
			t.Fatalf("after 3 telegrams: %v %q, want EOF", err, b)
		}
	}
	if n := srv.Stats().Faults["disconnect"]; n != 2 {
		t.Errorf("%d disconnects counted, want 2", n)
	}
}

func TestFaultDisconnectInjected(t *testing.T) {
	srv := startServer(t, sim.Config{})
	c := dial(t, srv)
	c.telegram()
	if err := srv.Inject(sim.Fault{Kind: sim.FaultDisconnect, Count: 2}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; n < 20; n++ {
		if _, err := c.next(); err == io.EOF {
			break
		}
	}
	if n < 2 || n >= 20 {
		t.Errorf("%d telegrams after disconnect-after-2, want 2 (plus any in flight)", n)
	}
	c = dial(t, srv)
	c.telegram()
	if err := srv.Inject(sim.Fault{Kind: sim.FaultDisconnect}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.next(); err == io.EOF {
			return
		}
	}
	t.Error("connection still open after disconnect now")
}

func TestFaultRefuse(t *testing.T) {
	srv := startServer(t, sim.Config{})
	c := dial(t, srv)
	c.telegram()
	injected := time.Now()
	if err := srv.Inject(sim.Fault{Kind: sim.FaultRefuse, For: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		conn.Close()
		t.Fatal("dial succeeded while refusing")
	}
	if !srv.Stats().Refusing {
		t.Error("stats do not show refusing")
	}
	c.telegram() // the open connection goes on
	for {
		conn, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Since(injected) > 3*time.Second {
			t.Fatalf("still refusing after 3 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(injected); d < 450*time.Millisecond {
		t.Errorf("accepting again after %v, want 500 ms", d)
	}
	dial(t, srv).telegram()
}

func TestOnSend(t *testing.T) {
	var mu sync.Mutex
	var sent []sim.Sent
	srv := startServer(t, sim.Config{LogSize: -1, Meter: sim.MeterConfig{Profile: sim.ProfileBE1}, OnSend: func(s sim.Sent) {
		mu.Lock()
		sent = append(sent, s)
		mu.Unlock()
	}})
	c := dial(t, srv)
	var got [][]byte
	var tgs []*parser.Telegram
	for range 3 {
		b, tg := c.telegram()
		got = append(got, b)
		tgs = append(tgs, tg)
	}
	// OnSend runs after the write returns; the client may be faster.
	var recs []sim.Sent
	for deadline := time.Now().Add(3 * time.Second); len(recs) < 3 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		recs = append(recs[:0], sent...)
		mu.Unlock()
	}
	if len(recs) < 3 {
		t.Fatalf("%d OnSend calls, want 3", len(recs))
	}
	for i, b := range got {
		if !bytes.Equal(recs[i].Frame, b) || recs[i].Seq != uint64(i+1) || recs[i].Conn != 1 {
			t.Errorf("OnSend record %d does not match", i)
		}
		compareReading(t, &recs[i].Reading, tgs[i])
	}
	if len(srv.Recent()) != 0 {
		t.Error("LogSize -1 still logs")
	}
}

func TestRunStopsAndClosesConnections(t *testing.T) {
	srv, err := sim.NewServer(sim.Config{Interval: 20 * time.Millisecond, Meter: sim.MeterConfig{Loc: brussels}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	c := dial(t, srv)
	c.telegram()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return")
	}
	for range 3 {
		if _, err := c.next(); err == io.EOF {
			break
		}
	}
	if conn, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		conn.Close()
		t.Error("still listening after Run returned")
	}
	if err := srv.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestNewServerErrors(t *testing.T) {
	for _, cfg := range []sim.Config{
		{Interval: time.Microsecond},
		{Meter: sim.MeterConfig{Profile: "de"}},
		{Faults: sim.Faults{CutEvery: -1}},
		{Faults: sim.Faults{SilenceFor: time.Second}},
		{Faults: sim.Faults{SilenceFor: time.Minute, SilenceEvery: time.Second}},
		{Addr: "256.0.0.1:0"},
	} {
		if srv, err := sim.NewServer(cfg); err == nil {
			srv.Close()
			t.Errorf("NewServer(%+v) succeeded", cfg)
		}
	}
	srv, err := sim.NewServer(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Error(err)
	}
	for _, f := range []sim.Fault{{Kind: 0}, {Kind: sim.FaultSilence}, {Kind: sim.FaultRefuse}, {Kind: sim.FaultCut, Count: -1}} {
		if err := srv.Inject(f); err == nil {
			t.Errorf("Inject(%+v) succeeded", f)
		}
	}
}
