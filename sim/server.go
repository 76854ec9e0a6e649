package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a [Server]. Only Meter needs thought; every other zero
// value has a sensible default.
type Config struct {
	Addr     string        // TCP listen address; default "127.0.0.1:0" (any free port)
	Interval time.Duration // time between telegrams; default 1s
	// PerConn gives every accepted connection its own meter, with Index
	// Meter.Index + n − 1 for the n-th connection, so that each has its own
	// ids. Otherwise one meter broadcasts the same telegram to every client,
	// like a real gateway.
	PerConn bool
	Meter   MeterConfig
	// Now is the clock the meters read; default time.Now. Faults that last
	// a while (Silence, Refuse, Drip) and the interval use real time.
	Now          func() time.Time
	Faults       Faults
	DripFor      time.Duration // how long a FaultDrip telegram takes; default 1s
	WriteTimeout time.Duration // a client that does not read for this long is dropped; default 10s
	// LogSize is how many recent Sent records Recent keeps; 0 means 1024,
	// negative none.
	LogSize int
	// OnSend, if set, is called after every telegram written, from the
	// connection's goroutine: it must be safe for concurrent use and quick.
	OnSend func(Sent)
	// Wire, if set, turns each telegram (after a BadCRC corruption) into
	// the bytes written instead: p1sim's encryption. A Cut cuts those bytes
	// at the same fraction. It is called from the connections' goroutines:
	// it must be safe for concurrent use.
	Wire   func(frame []byte) []byte
	Logger *slog.Logger // default: discard
}

// Server is a simulated P1 gateway: it accepts TCP clients and writes
// telegrams to them every interval, injecting faults on request.
type Server struct {
	cfg    Config
	log    *slog.Logger
	addr   net.Addr
	meter  *Meter // broadcast mode; used by the scheduler goroutine only
	slots  int
	shared atomic.Pointer[Sent] // broadcast: the telegram of this interval

	mu          sync.Mutex
	ln          net.Listener // nil while refusing
	closed      bool
	refuseUntil time.Time
	conns       map[*conn]struct{}
	bySlot      [][]*conn
	ring        []Sent
	ringNext    int

	running     atomic.Bool
	nextConn    atomic.Uint64
	silentUntil atomic.Int64 // unix nanoseconds, real clock
	pending     [numFaultKinds]atomic.Int64
	injected    [numFaultKinds]atomic.Uint64
	telegrams   atomic.Uint64
	bytes       atomic.Uint64
	skipped     atomic.Uint64
	rngMu       sync.Mutex
	rng         *rand.Rand
}

// conn is one client. Its goroutine owns rng and garbageN.
type conn struct {
	id       uint64
	nc       net.Conn
	remote   string
	wake     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	slot     int
	slotPos  int
	seq      atomic.Uint64
	limit    atomic.Uint64 // close after this many telegrams; 0 means never
	rng      *rand.Rand
	garbageN int
}

func (c *conn) stop() {
	c.stopOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

// NewServer checks cfg and binds the listening socket, so that Addr is known
// before Run; it starts no goroutine. It fails on an invalid configuration
// or when the address cannot be bound. Call Run (or Close) afterwards.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Interval < time.Millisecond {
		return nil, fmt.Errorf("sim: interval %v is below 1ms", cfg.Interval)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DripFor == 0 {
		cfg.DripFor = time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.DripFor < 0 || cfg.WriteTimeout < 0 {
		return nil, errors.New("sim: negative DripFor or WriteTimeout")
	}
	if cfg.LogSize == 0 {
		cfg.LogSize = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Faults.validate(); err != nil {
		return nil, err
	}
	// Build the meter now: it validates the meter configuration, and
	// broadcast mode needs it anyway.
	m, err := NewMeter(cfg.Meter)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim: listen: %w", err)
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		addr:  ln.Addr(),
		meter: m,
		ln:    ln,
		conns: make(map[*conn]struct{}),
		rng:   rand.New(rand.NewPCG(cfg.Meter.Seed, 0x5EED)),
	}
	// Per-connection meters start in one of up to 50 slots of the interval
	// (at least 10 ms apart), so that thousands of them do not all write in
	// the same millisecond. Broadcast writes everything at once, like a
	// real gateway.
	s.slots = 1
	if cfg.PerConn {
		s.slots = int(min(max(cfg.Interval/(10*time.Millisecond), 1), 50))
	}
	s.bySlot = make([][]*conn, s.slots)
	if cfg.LogSize > 0 {
		s.ring = make([]Sent, 0, cfg.LogSize)
	}
	return s, nil
}

// Addr returns the address the server listens on, also while it refuses
// connections.
func (s *Server) Addr() net.Addr { return s.addr }

// Close releases the listener of a server whose Run was never called.
// After Run it does nothing: cancel Run's context instead.
func (s *Server) Close() error {
	if s.running.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln != nil {
		err := s.ln.Close()
		s.ln = nil
		return err
	}
	return nil
}

// Run accepts clients and writes telegrams until ctx is cancelled; then it
// closes the listener and every connection, waits for its goroutines and
// returns nil. It returns an error when the listener fails for good (it
// cannot be reopened after a Refuse) and when called twice.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run called twice")
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("sim: Run after Close")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.schedule(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		s.shutdown()
	})
	s.log.Info("gateway listening", "addr", s.addr.String(), "profile", s.cfg.Meter.Profile,
		"per_conn", s.cfg.PerConn, "interval", s.cfg.Interval)
	err := s.accept(ctx, &wg)
	cancel()
	wg.Wait()
	return err
}

func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.stop()
	}
}

// accept runs the accept loop, reopening the listener after a Refuse.
func (s *Server) accept(ctx context.Context, wg *sync.WaitGroup) error {
	var lastErr time.Time
	for ctx.Err() == nil {
		s.mu.Lock()
		ln, until := s.ln, s.refuseUntil
		s.mu.Unlock()
		if ln == nil {
			if err := s.relisten(ctx, until); err != nil {
				return err
			}
			continue
		}
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				continue // shutting down, or closed by a Refuse
			}
			// Out of file descriptors and the like: wait a little.
			if time.Since(lastErr) > 10*time.Second {
				s.log.Warn("accept failed", "err", err)
				lastErr = time.Now()
			}
			if !sleepCtx(ctx, 20*time.Millisecond) {
				break
			}
			continue
		}
		c := &conn{
			id:     s.nextConn.Add(1),
			nc:     nc,
			remote: nc.RemoteAddr().String(),
			wake:   make(chan struct{}, 1),
			done:   make(chan struct{}),
		}
		c.limit.Store(uint64(s.cfg.Faults.DisconnectAfter))
		s.rngMu.Lock()
		c.rng = rand.New(rand.NewPCG(s.rng.Uint64(), c.id))
		c.slot = s.rng.IntN(s.slots)
		s.rngMu.Unlock()
		if !s.add(c) {
			nc.Close()
			break
		}
		s.log.Debug("client connected", "conn", c.id, "remote", c.remote)
		wg.Go(func() { s.serve(ctx, c) })
	}
	return nil
}

// relisten waits out a Refuse and opens the listener again on the same
// address. Another process may have taken the port meanwhile; after 5 s of
// trying, that is an error.
func (s *Server) relisten(ctx context.Context, until time.Time) error {
	if !sleepCtx(ctx, time.Until(until)) {
		return nil
	}
	for try := 0; ; try++ {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil
		}
		if time.Now().Before(s.refuseUntil) { // extended meanwhile
			s.mu.Unlock()
			return nil
		}
		ln, err := net.Listen("tcp", s.addr.String())
		if err == nil {
			s.ln = ln
			s.mu.Unlock()
			s.log.Info("accepting connections again", "addr", s.addr.String())
			return nil
		}
		s.mu.Unlock()
		if try == 100 {
			return fmt.Errorf("sim: reopen listener: %w", err)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return nil
		}
	}
}

// sleepCtx sleeps for d and reports whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	c.slotPos = len(s.bySlot[c.slot])
	s.bySlot[c.slot] = append(s.bySlot[c.slot], c)
	return true
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	sl := s.bySlot[c.slot]
	last := sl[len(sl)-1]
	sl[c.slotPos] = last
	last.slotPos = c.slotPos
	sl[len(sl)-1] = nil
	s.bySlot[c.slot] = sl[:len(sl)-1]
}

// schedule is the one ticker of the server: every interval/slots it wakes
// the connections of the next slot, and in broadcast mode it renders the
// shared telegram. It also fires the periodic faults.
func (s *Server) schedule(ctx context.Context) {
	step := s.cfg.Interval / time.Duration(s.slots)
	tick := time.NewTicker(step)
	defer tick.Stop()
	f := s.cfg.Faults
	start := time.Now()
	stateFailing := false // the meter's state file: logged when it starts failing
	nextSilence, nextRefuse := start.Add(f.SilenceEvery), start.Add(f.RefuseEvery)
	for slot := 0; ; slot = (slot + 1) % s.slots {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		if f.SilenceEvery > 0 && !now.Before(nextSilence) {
			s.Inject(Fault{Kind: FaultSilence, For: f.SilenceFor})
			nextSilence = now.Add(f.SilenceEvery)
		}
		if f.RefuseEvery > 0 && !now.Before(nextRefuse) {
			s.Inject(Fault{Kind: FaultRefuse, For: f.RefuseFor})
			nextRefuse = now.Add(f.RefuseEvery)
		}
		if !s.cfg.PerConn {
			if s.Clients() == 0 || s.silent() {
				continue
			}
			sent := s.meter.Render(s.cfg.Now())
			s.shared.Store(&sent)
			if err := s.meter.stateErr; (err != nil) != stateFailing {
				stateFailing = err != nil
				if stateFailing {
					s.log.Warn("meter state not saved; a restart will go on from the last saved registers", "err", err)
				}
			}
		}
		s.mu.Lock()
		for _, c := range s.bySlot[slot] {
			select {
			case c.wake <- struct{}{}:
			default:
				s.skipped.Add(1) // still busy with the previous telegram
			}
		}
		s.mu.Unlock()
	}
}

func (s *Server) silent() bool { return time.Now().UnixNano() < s.silentUntil.Load() }

// serve writes telegrams to one client until it fails, is disconnected, or
// the server stops.
func (s *Server) serve(ctx context.Context, c *conn) {
	defer func() {
		s.remove(c)
		c.stop()
		s.log.Debug("client disconnected", "conn", c.id, "remote", c.remote, "telegrams", c.seq.Load())
	}()
	var m *Meter
	if s.cfg.PerConn {
		mc := s.cfg.Meter
		mc.Index += int(c.id - 1)
		mc.StateFile = "" // one file is one meter's: the shared one
		var err error
		if m, err = NewMeter(mc); err != nil { // checked in NewServer; cannot happen
			s.log.Error("create meter", "err", err)
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-c.wake:
		}
		if s.silent() {
			continue
		}
		var base Sent
		if m != nil {
			base = m.Render(s.cfg.Now())
		} else if p := s.shared.Load(); p != nil {
			base = *p
		} else {
			continue
		}
		if !s.send(ctx, c, &base) {
			return
		}
		if lim := c.limit.Load(); lim > 0 && c.seq.Load() >= lim {
			s.injected[FaultDisconnect].Add(1)
			s.log.Info("fault: disconnecting client", "conn", c.id, "telegrams", c.seq.Load())
			return
		}
	}
}

// take consumes one pending injected fault of kind k, if any.
func (s *Server) take(k FaultKind) bool {
	p := &s.pending[k]
	for {
		n := p.Load()
		if n <= 0 {
			return false
		}
		if p.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// send applies the telegram faults that are due and writes one telegram.
// It reports whether the connection is still usable.
func (s *Server) send(ctx context.Context, c *conn, rec *Sent) bool {
	rec.Conn, rec.Remote = c.id, c.remote
	rec.Seq = c.seq.Add(1)
	f := &s.cfg.Faults
	if s.take(FaultBadCRC) || every(f.BadCRCEvery, rec.Seq) {
		rec.Frame, rec.FlipAt = corrupt(rec.Frame, rec.CRC, c.rng)
		rec.BadCRC = rec.FlipAt >= 0
		s.injected[FaultBadCRC].Add(1)
	}
	if s.take(FaultGarbage) || every(f.GarbageEvery, rec.Seq) {
		rec.Garbage = garbage(c.rng, c.garbageN)
		c.garbageN++
		s.injected[FaultGarbage].Add(1)
	}
	n := len(rec.Frame)
	if s.take(FaultCut) || every(f.CutEvery, rec.Seq) {
		// Cut before the end line, so that no cut can pass for a whole
		// telegram (a CRC-less one ending at "!", say).
		if end := bytes.LastIndex(rec.Frame, []byte("\n!")); end > 0 {
			n = 1 + c.rng.IntN(end)
			rec.Cut = true
			s.injected[FaultCut].Add(1)
		}
	}
	if s.take(FaultDrip) || every(f.DripEvery, rec.Seq) {
		rec.Drip = true
		s.injected[FaultDrip].Add(1)
	}

	out := rec.Frame[:n]
	if s.cfg.Wire != nil {
		w := s.cfg.Wire(rec.Frame)
		out = w[:len(w)*n/max(len(rec.Frame), 1)]
	}
	// written converts bytes of out written to bytes of Frame.
	written := func(k int) int { return k * n / max(len(out), 1) }
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	if rec.Drip {
		deadline = deadline.Add(s.cfg.DripFor)
	}
	c.nc.SetWriteDeadline(deadline)
	var err error
	if rec.Drip {
		if len(rec.Garbage) > 0 {
			_, err = c.nc.Write(rec.Garbage)
		}
		if err == nil {
			var k int
			k, err = s.drip(ctx, c, out)
			rec.Written = written(k)
		}
	} else {
		bufs := net.Buffers{rec.Garbage, out}
		var nn int64
		nn, err = bufs.WriteTo(c.nc)
		rec.Written = written(max(int(nn)-len(rec.Garbage), 0))
	}
	rec.Err = err
	s.record(rec)
	if err != nil {
		select {
		case <-c.done: // closed on purpose
		default:
			s.log.Debug("write failed", "conn", c.id, "remote", c.remote, "err", err)
		}
		return false
	}
	return true
}

// drip writes b one byte at a time over DripFor. Byte i is due at
// i×DripFor/len(b) after the start; a timer that wakes late is made up for by
// writing the overdue bytes at once, still one per write.
func (s *Server) drip(ctx context.Context, c *conn, b []byte) (int, error) {
	step := s.cfg.DripFor / time.Duration(max(len(b), 1))
	start := time.Now()
	var t *time.Timer
	for i := range b {
		if _, err := c.nc.Write(b[i : i+1]); err != nil {
			return i, err
		}
		wait := time.Until(start.Add(time.Duration(i+1) * step))
		if i == len(b)-1 || wait <= 0 {
			continue
		}
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return i + 1, ctx.Err()
		case <-c.done:
			return i + 1, net.ErrClosed
		case <-t.C:
		}
	}
	return len(b), nil
}

func (s *Server) record(rec *Sent) {
	s.telegrams.Add(1)
	s.bytes.Add(uint64(rec.Written + len(rec.Garbage)))
	if s.cfg.LogSize > 0 {
		s.mu.Lock()
		if len(s.ring) < s.cfg.LogSize {
			s.ring = append(s.ring, *rec)
		} else {
			s.ring[s.ringNext] = *rec
			s.ringNext = (s.ringNext + 1) % s.cfg.LogSize
		}
		s.mu.Unlock()
	}
	if s.cfg.OnSend != nil {
		s.cfg.OnSend(*rec)
	}
}

// Recent returns the last Config.LogSize telegrams written, on all
// connections, oldest first. The records share their Frame bytes with the
// server's log; do not modify them.
func (s *Server) Recent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Sent, 0, len(s.ring))
	out = append(out, s.ring[s.ringNext:]...)
	return append(out, s.ring[:s.ringNext]...)
}

// Clients returns the number of connected clients.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Inject requests a fault; it is safe for concurrent use, also before Run.
// Telegram faults (BadCRC, Garbage, Cut, Drip) add Count to those pending;
// Silence and Refuse start now and last For (a running one is extended);
// Disconnect limits the connections open now. It fails for an unknown kind,
// a negative Count, or a Silence or Refuse without a positive For.
func (s *Server) Inject(f Fault) error {
	if f.Count < 0 {
		return fmt.Errorf("sim: fault %v: negative count %d", f.Kind, f.Count)
	}
	switch f.Kind {
	case FaultBadCRC, FaultGarbage, FaultCut, FaultDrip:
		s.pending[f.Kind].Add(int64(max(f.Count, 1)))
		s.log.Info("fault injected", "kind", f.Kind.String(), "count", max(f.Count, 1))
	case FaultSilence:
		if f.For <= 0 {
			return errors.New("sim: fault silence needs a positive duration")
		}
		until := time.Now().Add(f.For).UnixNano()
		for {
			old := s.silentUntil.Load()
			if old >= until || s.silentUntil.CompareAndSwap(old, until) {
				break
			}
		}
		s.injected[FaultSilence].Add(1)
		s.log.Info("fault injected", "kind", "silence", "for", f.For)
	case FaultRefuse:
		if f.For <= 0 {
			return errors.New("sim: fault refuse needs a positive duration")
		}
		s.mu.Lock()
		if until := time.Now().Add(f.For); until.After(s.refuseUntil) {
			s.refuseUntil = until
		}
		if s.ln != nil {
			s.ln.Close()
			s.ln = nil
		}
		s.mu.Unlock()
		s.injected[FaultRefuse].Add(1)
		s.log.Info("fault injected", "kind", "refuse", "for", f.For)
	case FaultDisconnect:
		s.mu.Lock()
		for c := range s.conns {
			if f.Count == 0 {
				c.stop()
				s.injected[FaultDisconnect].Add(1)
				continue
			}
			lim := c.seq.Load() + uint64(f.Count)
			if old := c.limit.Load(); old == 0 || lim < old {
				c.limit.Store(lim)
			}
		}
		s.mu.Unlock()
		s.log.Info("fault injected", "kind", "disconnect", "after", f.Count)
	default:
		return fmt.Errorf("sim: unknown fault kind %v", f.Kind)
	}
	return nil
}

// Stats is a snapshot of a server's counters.
type Stats struct {
	Addr      string            `json:"addr"`
	Profile   Profile           `json:"profile"`
	PerConn   bool              `json:"per_conn"`
	Clients   int               `json:"clients"`   // connected now
	Accepted  uint64            `json:"accepted"`  // connections since start
	Telegrams uint64            `json:"telegrams"` // telegrams written, whole or in part
	Bytes     uint64            `json:"bytes"`     // bytes written, noise included
	Skipped   uint64            `json:"skipped"`   // intervals a client missed because it did not read fast enough
	Faults    map[string]uint64 `json:"faults"`    // faults injected, by kind
	Pending   map[string]int64  `json:"pending"`   // telegram faults requested but not yet applied
	Silent    bool              `json:"silent"`
	Refusing  bool              `json:"refusing"`
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Addr:      s.addr.String(),
		Profile:   s.cfg.Meter.Profile,
		PerConn:   s.cfg.PerConn,
		Accepted:  s.nextConn.Load(),
		Telegrams: s.telegrams.Load(),
		Bytes:     s.bytes.Load(),
		Skipped:   s.skipped.Load(),
		Faults:    make(map[string]uint64),
		Pending:   make(map[string]int64),
		Silent:    s.silent(),
	}
	if st.Profile == "" {
		st.Profile = ProfileBE3
	}
	for k := FaultBadCRC; int(k) < numFaultKinds; k++ {
		st.Faults[k.String()] = s.injected[k].Load()
	}
	for _, k := range []FaultKind{FaultBadCRC, FaultGarbage, FaultCut, FaultDrip} {
		st.Pending[k.String()] = s.pending[k].Load()
	}
	s.mu.Lock()
	st.Clients = len(s.conns)
	st.Refusing = s.ln == nil && !s.closed
	s.mu.Unlock()
	return st
}
