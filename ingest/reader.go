package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/internal/lograte"
	"github.com/p1logger/p1logger/parser"
)

// Source is how a Reader reaches its gateway: Open returns a connection
// that delivers the meter's raw bytes and honours read deadlines (see
// source.Conn), String the address without secrets, Kind the kind's name.
// Every kind in package source satisfies it. Nothing in ingest knows which
// kind a gateway uses; the Reader only checks whether the Conn is also a
// syscall.Conn (a TCP socket), to wait for bytes without holding a buffer.
type Source interface {
	Open(ctx context.Context) (source.Conn, error)
	String() string
	Kind() string
}

var _ Source = source.Source(nil)

// ReaderConfig tunes a Reader. Zero fields take the defaults noted.
type ReaderConfig struct {
	// DialTimeout, when set, bounds each Source.Open. Zero leaves the bound
	// to the source: TCP dials for source.Options.DialTimeout (5 s by
	// default), while opening a serial device may take half a minute of
	// trying speeds the first time.
	DialTimeout time.Duration
	// IdleTimeout drops a connection that delivers no byte for this long
	// (P1_IDLE_TIMEOUT). Default 10s.
	IdleTimeout time.Duration
	// Location is the zone of the meters' clocks (P1_TIMEZONE). Default time.Local.
	Location *time.Location
	// MinBackoff is the first redial delay, MaxBackoff its cap. The delay
	// doubles per failed attempt, with ±50% jitter so that gateways behind
	// one failed router do not redial in step, and is reset by a good
	// telegram. Defaults 1s and 1 min.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connection state changes and rate-limited telegram
	// errors. Default slog.Default().
	Logger *slog.Logger
	// DialLimit, when not nil, is a semaphore shared by all Readers: a slot is
	// held during each dial, so that thousands of gateways starting at once
	// do not overflow the listeners' accept queues.
	DialLimit chan struct{}
	// MaxTelegramRate bounds the telegrams parsed per second, on average;
	// twice as many may come at once. The excess is skipped, the newest kept
	// (see Reader.hold). Default 10: ten times what a meter sends.
	MaxTelegramRate int
	// Parsers is the number of goroutines that parse the frames of all
	// gateways. Default GOMAXPROCS: parsing only uses the CPU.
	Parsers int
	// FrameQueue is the capacity of the frame channel from the Readers to
	// the parsers. Default 1024: a tenth of a second of 10,000 meters.
	FrameQueue int
	// Now replaces time.Now, for tests. Optional.
	Now func() time.Time
}

func (c *ReaderConfig) setDefaults() {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Second
	}
	if c.Location == nil {
		c.Location = time.Local
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxTelegramRate <= 0 {
		c.MaxTelegramRate = defaultTelegramRate
	}
	if c.Parsers <= 0 {
		c.Parsers = runtime.GOMAXPROCS(0)
	}
	if c.FrameQueue <= 0 {
		c.FrameQueue = defaultFrameQueue
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Reader keeps one gateway connected, frames what it sends, and hands every
// telegram to the parsers over the frame channel (see Readers). It runs in
// one goroutine per gateway, started by Readers.Run.
//
// A Reader holds little while it waits: no read buffer (one is taken from a
// pool when the socket has bytes, and given back once they are framed), no
// frame buffer (pooled, and the parser gives it back), no decode target
// (parsing is the parsers'), no timer of its own (the idle timeout is the
// socket's read deadline, kept by the runtime's poller). What stays per
// gateway is the slot, the bytes of a telegram that arrived in pieces, and
// the goroutine's stack.
type Reader struct {
	g        *Gateway
	cfg      *ReaderConfig // shared by all Readers
	out      chan<- frame  // to the parsers; closed by Readers.Run, never here
	sp       parser.Splitter
	pend     []byte    // the start of a telegram whose end has not arrived yet
	dial     rateLimit // repeated dial failures
	budget   telegramBudget
	held     []byte    // the newest telegram framed beyond the budget, not parsed yet
	holding  bool      // held is set
	seq      uint64    // frames sent; numbers them, so that the slot keeps the newest
	lastSent time.Time // the stamp of the last frame sent (send)

	failedDials int   // dials failed in a row
	base        int64 // the gateway's accepted telegrams when this connection opened
	reset       bool  // the backoff was reset on this connection
}

// newReader returns a Reader for g that sends frames to out. It does not
// open g's source: Run does.
func newReader(g *Gateway, cfg *ReaderConfig, out chan<- frame) *Reader {
	return &Reader{g: g, cfg: cfg, out: out}
}

// logAt logs msg at level with the gateway's name and address first.
func (r *Reader) logAt(level slog.Level, msg string, args ...any) {
	logGateway(r.cfg.Logger, r.g, level, msg, args...)
}

// logGateway logs msg at level with g's name and address first. No logger
// is kept per gateway: one made with With holds its attributes
// preformatted, half a kilobyte per gateway that seldom logs.
func logGateway(l *slog.Logger, g *Gateway, level slog.Level, msg string, args ...any) {
	if !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, msg, append([]any{"gateway", g.name, "addr", g.addr}, args...)...)
}

// errIdle is the reason for dropping a connection that went silent.
var errIdle = errors.New("idle timeout")

// Run dials the gateway, reads telegrams until the connection fails, and
// redials with capped exponential backoff, forever: a gateway that is down,
// refuses, closes (EOF), or goes silent for IdleTimeout is only ever
// redialled. Run returns nil when ctx is cancelled, closing the connection.
//
// Run's frame and serve's stay on the goroutine's stack while it waits for
// bytes, so they are kept small (logging and error wrapping happen in
// helpers that return first): a goroutine whose waiting stack is under a
// kilobyte is shrunk by the garbage collector to 4 KiB, a few hundred bytes
// more and it keeps 8 KiB, for every gateway.
func (r *Reader) Run(ctx context.Context) error {
	bo := newBackoff(r.cfg.MinBackoff, r.cfg.MaxBackoff)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.g.reconnects.Add(1)
		}
		conn, err := r.connect(ctx)
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return nil
		}
		var wait time.Duration
		if err != nil {
			wait = r.dialFailed(err, bo)
		} else {
			r.connected()
			n, reason := r.serve(ctx, conn, bo)
			if ctx.Err() != nil {
				r.g.setConnected(false, r.cfg.Now(), nil)
				return nil
			}
			wait = r.lost(n, reason, bo)
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

func newBackoff(minB, maxB time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(minB),
		// ±50% jitter on at most 2/3 of the cap keeps every delay ≤ MaxBackoff.
		backoff.WithMaxInterval(maxB*2/3),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0), // never give up
	)
}

// dialFailed records and logs (rate-limited) a failed dial and returns the
// delay before the next.
func (r *Reader) dialFailed(err error, bo backoff.BackOff) time.Duration {
	r.failedDials++
	r.g.setConnected(false, r.cfg.Now(), err)
	wait := bo.NextBackOff()
	if ok, suppressed := r.dial.Allow(r.cfg.Now(), time.Minute); ok && r.failedDials == 1 {
		r.logAt(slog.LevelWarn, "gateway unreachable", "reason", err, "redial_in", wait.Round(time.Millisecond))
	} else if ok {
		r.logAt(slog.LevelWarn, "gateway still unreachable", "reason", err, "failed_dials", r.failedDials,
			"suppressed", suppressed, "redial_in", wait.Round(time.Millisecond))
	} else {
		r.logAt(slog.LevelDebug, "dial failed", "reason", err, "redial_in", wait.Round(time.Millisecond))
	}
	return wait
}

// connected logs a connection and resets the dial failures.
func (r *Reader) connected() {
	if r.failedDials > 0 {
		r.logAt(slog.LevelInfo, "gateway connected", "after_failed_dials", r.failedDials)
	} else {
		r.logAt(slog.LevelInfo, "gateway connected")
	}
	r.failedDials = 0
	r.dial = rateLimit{}
}

// lost records and logs a lost connection and returns the delay before the
// redial.
func (r *Reader) lost(n int, reason error, bo backoff.BackOff) time.Duration {
	r.g.setConnected(false, r.cfg.Now(), reason)
	if n > 0 && !r.reset {
		bo.Reset()
	}
	wait := bo.NextBackOff()
	r.logAt(slog.LevelWarn, "gateway connection lost", "reason", reason, "telegrams", n)
	r.logAt(slog.LevelInfo, "redialling", "in", wait.Round(time.Millisecond))
	return wait
}

// connect opens the gateway's source, holding a DialLimit slot if there is
// one.
func (r *Reader) connect(ctx context.Context) (source.Conn, error) {
	if r.cfg.DialLimit != nil {
		select {
		case r.cfg.DialLimit <- struct{}{}:
			defer func() { <-r.cfg.DialLimit }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	dctx := ctx
	if r.cfg.DialTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, r.cfg.DialTimeout)
		defer cancel()
	}
	// The source's error already says what failed ("dial tcp host:port: …").
	return r.g.src.Open(dctx)
}

// readSize is the size of the pooled read buffers: a whole telegram of the
// usual size arrives in one read.
const readSize = 4 << 10

// maxPend bounds the storage a Reader keeps between reads for a telegram
// that arrived in pieces: larger storage is dropped once it is empty, so
// that one long telegram does not cost its size for good.
const maxPend = 4 << 10

var readPool = sync.Pool{New: func() any { b := make([]byte, readSize); return &b }}

// serve reads telegrams from conn until it fails or ctx is cancelled, and
// returns how many telegrams the parsers accepted from it (as far as they
// got by then) and why the connection ended.
func (r *Reader) serve(ctx context.Context, conn source.Conn, bo backoff.BackOff) (int, error) {
	defer conn.Close()
	// Closing the socket is the only way to interrupt a blocked Read; the
	// AfterFunc costs no goroutine until ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r.g.setConnected(true, r.cfg.Now(), nil)

	r.sp = parser.Splitter{}
	r.pend = r.pend[:0]
	r.base, r.reset = r.g.telegrams.Load(), false
	var err error
	if sc, ok := conn.(syscall.Conn); ok {
		var rc syscall.RawConn
		if rc, err = sc.SyscallConn(); err == nil {
			err = r.serveRaw(conn, rc, bo)
		}
	} else {
		err = r.servePlain(conn, bo)
	}
	if err == io.EOF {
		// Whatever follows the last "/" is a cut telegram: it is reported.
		r.frames(nil, true)
	}
	// The newest telegram, held back by the budget, is parsed whatever the
	// budget says: none will come after it on this connection.
	r.flushHeld(r.cfg.Now(), true)
	r.pend = r.pend[:0]
	if cap(r.pend) > maxPend {
		r.pend = nil
	}
	return int(r.g.telegrams.Load() - r.base), r.endReason(err)
}

// probeAfter is how long serveRaw waits after a read before it checks, with
// a read of its own, whether the gateway closed the connection: a meter
// sending every second never lets it pass.
const probeAfter = 2 * time.Second

// serveRaw reads conn through its file descriptor. The callback of
// RawConn.Read reads what the socket has into a pooled buffer, frames it and
// gives the buffer back, then asks the runtime's poller to wait for more, in
// one RawConn.Read for as long as bytes keep coming. That is one read(2) per
// arrival: a read that drained the socket (returned less than the buffer
// holds) is not followed by another that would only say EAGAIN, because the
// poller remembers any byte that arrived since, and wakes the callback again
// at once.
//
// What the poller cannot tell is a close (FIN) that arrived together with
// the last bytes: only a read sees it. So the wait after bytes is cut short
// at probeAfter, and the callback reads once more: EAGAIN (the usual answer,
// for a meter that sends less often) means waiting on until the idle timeout,
// counted from the last bytes.
func (r *Reader) serveRaw(conn source.Conn, rc syscall.RawConn, bo backoff.BackOff) error {
	probe := min(probeAfter, r.cfg.IdleTimeout)
	last := time.Now()
	deadline := last.Add(r.cfg.IdleTimeout)
	var rerr error
	read := func(fd uintptr) bool {
		for {
			bp := readPool.Get().(*[]byte)
			n, err := syscall.Read(int(fd), *bp)
			switch {
			case err == syscall.EINTR:
				readPool.Put(bp)
				continue
			case err == syscall.EAGAIN:
				readPool.Put(bp)
				return false // wait until readable, or the deadline
			case err != nil:
				readPool.Put(bp)
				rerr = os.NewSyscallError("read", err)
				return true
			case n <= 0:
				readPool.Put(bp)
				rerr = io.EOF
				return true
			}
			r.took(r.frames((*bp)[:n], false), bo)
			readPool.Put(bp)
			last = time.Now()
			if rerr = conn.SetReadDeadline(last.Add(probe)); rerr != nil {
				return true
			}
			if n < readSize {
				return false // drained: wait for the next bytes
			}
		}
	}
	for {
		if err := conn.SetReadDeadline(deadline); err != nil {
			return err
		}
		err := rc.Read(read)
		switch {
		case err == nil:
			return rerr
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return err
		}
		// A probe, or the idle timeout itself.
		// The gateway paused: the telegram held back is the newest.
		r.took(r.flushHeld(r.cfg.Now(), false), bo)
		deadline = last.Add(r.cfg.IdleTimeout)
		if !time.Now().Before(deadline) {
			return err
		}
	}
}

// servePlain reads a connection that has no file descriptor the poller can
// wait on (a serial device, an HTTP poll, an MQTT subscription, a test's
// net.Pipe), holding a pooled buffer while it waits.
func (r *Reader) servePlain(conn source.Conn, bo backoff.BackOff) error {
	for {
		if err := conn.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout)); err != nil {
			return err
		}
		bp := readPool.Get().(*[]byte)
		n, err := conn.Read(*bp)
		if n > 0 {
			r.took(r.frames((*bp)[:n], false), bo)
		}
		readPool.Put(bp)
		if err != nil {
			return err
		}
	}
}

// took resets the redial backoff after a read that framed k telegrams, once
// a connection has had one accepted. The parsers decide that, a moment
// after the frames were sent, so a read sees what the ones before it
// brought; lost looks once more for the telegrams of the last read.
func (r *Reader) took(k int, bo backoff.BackOff) {
	if k > 0 && !r.reset && r.g.telegrams.Load() > r.base {
		bo.Reset()
		r.reset = true
	}
}

// endReason says why a connection ended, given the read error.
func (r *Reader) endReason(err error) error {
	var ne net.Error
	switch {
	case err == io.EOF:
		return fmt.Errorf("closed by gateway: %w", io.EOF)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: no data for %s", errIdle, r.cfg.IdleTimeout)
	}
	return err
}

// frames frames the bytes in r.pend followed by data, sends every whole
// telegram the budget allows to the parsers (holding the newest of the
// rest), keeps the start of an unfinished one in r.pend, and returns how
// many telegrams it sent. At EOF, a cut telegram is sent too: the parser
// reports it.
func (r *Reader) frames(data []byte, atEOF bool) int {
	if len(r.pend) > 0 {
		r.pend = append(r.pend, data...)
		data = r.pend
	}
	skipped := r.sp.Skipped
	sent := 0
	now := r.cfg.Now()
	for len(data) > 0 {
		adv, tok, _ := r.sp.Split(data, atEOF)
		if adv == 0 && tok == nil {
			break
		}
		data = data[adv:]
		if tok == nil {
			continue
		}
		if !r.budget.take(now, r.cfg.MaxTelegramRate) {
			r.hold(tok)
			continue
		}
		r.dropHeld()
		r.send(tok)
		sent++
	}
	if d := r.sp.Skipped - skipped; d > 0 {
		r.g.skipped.Add(d)
	}
	switch {
	case len(data) > 0:
		// copy, not append: data may be the tail of r.pend itself.
		if cap(r.pend) < len(data) {
			r.pend = make([]byte, 0, max(len(data), 2048))
		}
		r.pend = r.pend[:copy(r.pend[:cap(r.pend)], data)]
	case cap(r.pend) > maxPend:
		// Storage that grew for a long telegram goes once it is empty.
		r.pend = nil
	default:
		r.pend = r.pend[:0]
	}
	return sent
}

// defaultTelegramRate is the default MaxTelegramRate. Meters send one
// telegram a second (DSMR 5, e-MUCS) or one every ten (DSMR 2.2 to 4), and a
// gateway that reconnects may deliver a few it buffered; a gateway that
// sends thousands a second (a loop, an attack) would otherwise cost a core
// for itself, parsing and CRC-checking telegrams of which a cycle writes one.
const defaultTelegramRate = 10

// telegramBudget is a token bucket of telegrams to parse: rate a second,
// 2×rate at once.
type telegramBudget struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date; zero = full
}

// take reports whether a telegram framed at now may be parsed, and spends
// its token.
func (b *telegramBudget) take(now time.Time, rate int) bool {
	burst := float64(2 * rate)
	if b.at.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.at); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*float64(rate))
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// hold keeps frame, framed while the budget was spent, as the newest
// telegram not parsed yet; the one it replaces is skipped and counted.
// Keeping the newest is what makes skipping harmless: a cycle writes only
// the newest telegram, and the held one is parsed once the budget allows
// (unless a newer one is parsed first), when the gateway pauses (serveRaw's
// probe, at most probeAfter after the last bytes) or when the connection
// ends, so what is skipped is always older than what is written.
func (r *Reader) hold(frame []byte) {
	if r.holding {
		r.g.rateSkipped.Add(1)
	}
	r.held = append(r.held[:0], frame...)
	r.holding = true
}

// dropHeld skips the held telegram: a newer one is about to be parsed.
func (r *Reader) dropHeld() {
	if r.holding {
		r.g.rateSkipped.Add(1)
		r.releaseHeld()
	}
}

// releaseHeld forgets the held telegram and its storage: only a gateway
// that sends too fast needs it, and then at most ten times a second anew.
func (r *Reader) releaseHeld() { r.held, r.holding = nil, false }

// flushHeld sends the held telegram, if there is one and the budget allows
// (or force is set: the connection ended, and it is the newest there will
// be), and returns how many telegrams it sent.
func (r *Reader) flushHeld(now time.Time, force bool) int {
	if !r.holding || (!r.budget.take(now, r.cfg.MaxTelegramRate) && !force) {
		return 0
	}
	r.send(r.held)
	r.releaseHeld()
	return 1
}

// Decode parses frame (as framed by parser.Splitter) into t, meter clocks
// in loc, and reports whether the daemon uses the telegram: whether its
// registers would be written. err is the parse error, nil when there was
// none; a telegram may be used with an error.
//
// The rule: CRC and frame errors mean nothing in the telegram can be
// trusted. Syntax errors concern single lines: the telegram is still used
// when its CRC matched (the damage is the parser's, not the line's), without
// the bad lines, and dropped when there was no CRC to vouch for the rest.
//
// The Reader decides with Decode which telegrams to keep, the Batcher and
// the status page decode the kept bytes with it, and "p1logger decode"
// prints what it returns, so that what decode prints is what is written.
func Decode(t *parser.Telegram, frame []byte, loc *time.Location) (use bool, err error) {
	err = parser.ParseInto(t, frame, loc)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, parser.ErrCRC), errors.Is(err, parser.ErrFrame):
		return false, err
	}
	return t.CRC == parser.CRCOK, err
}

// sleep waits d or until ctx is cancelled, and reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// rateLimit lets one log line through per interval and counts the rest.
type rateLimit = lograte.Limit
