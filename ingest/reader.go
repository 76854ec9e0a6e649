package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/p1logger/p1logger/parser"
)

// ReaderConfig tunes a Reader. Zero fields take the defaults noted.
type ReaderConfig struct {
	// DialTimeout bounds one connection attempt. Default 5s.
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
	// Dial replaces net.Dialer.DialContext, for tests. Optional.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now replaces time.Now, for tests. Optional.
	Now func() time.Time
}

func (c *ReaderConfig) setDefaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
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
	if c.Dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		c.Dial = d.DialContext
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Reader keeps one gateway connected and feeds its good telegrams to the
// Gateway's slot. It is meant to run in one goroutine per gateway.
//
// A Reader holds little while it waits: no read buffer (one is taken from a
// pool when the socket has bytes, and given back once they are framed), no
// decode target (also pooled), no timer of its own (the idle timeout is the
// socket's read deadline, kept by the runtime's poller). What stays per
// gateway is the slot, the bytes of a telegram that arrived in pieces, and
// the goroutine's stack.
type Reader struct {
	g    *Gateway
	cfg  ReaderConfig
	sp   parser.Splitter
	pend []byte    // the start of a telegram whose end has not arrived yet
	errs rateLimit // telegram errors
	dial rateLimit // repeated dial failures

	failedDials int // dials failed in a row
}

// NewReader returns a Reader for g. It does not dial: Run does.
func NewReader(g *Gateway, cfg ReaderConfig) *Reader {
	cfg.setDefaults()
	return &Reader{
		g:   g,
		cfg: cfg,
	}
}

// logAt logs msg at level with the gateway's name and address first. No
// logger is kept per gateway: one made with With holds its attributes
// preformatted, half a kilobyte per gateway that seldom logs.
func (r *Reader) logAt(level slog.Level, msg string, args ...any) {
	l := r.cfg.Logger
	if !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, msg, append([]any{"gateway", r.g.name, "addr", r.g.addr}, args...)...)
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
	if ok, suppressed := r.dial.allow(r.cfg.Now(), time.Minute); ok && r.failedDials == 1 {
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
	wait := bo.NextBackOff()
	r.logAt(slog.LevelWarn, "gateway connection lost", "reason", reason, "telegrams", n)
	r.logAt(slog.LevelInfo, "redialling", "in", wait.Round(time.Millisecond))
	return wait
}

// connect dials, holding a DialLimit slot if there is one.
func (r *Reader) connect(ctx context.Context) (net.Conn, error) {
	if r.cfg.DialLimit != nil {
		select {
		case r.cfg.DialLimit <- struct{}{}:
			defer func() { <-r.cfg.DialLimit }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	// The dialer's error already says "dial tcp host:port: …".
	return r.cfg.Dial(dctx, "tcp", r.g.addr)
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
// returns how many telegrams it accepted and why the connection ended.
func (r *Reader) serve(ctx context.Context, conn net.Conn, bo backoff.BackOff) (int, error) {
	defer conn.Close()
	// Closing the socket is the only way to interrupt a blocked Read; the
	// AfterFunc costs no goroutine until ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r.g.setConnected(true, r.cfg.Now(), nil)

	r.sp = parser.Splitter{}
	r.pend = r.pend[:0]
	read := plainRead
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			read = rawRead(rc)
		}
	}
	accepted := 0
	var err error
	for {
		// The deadline is the runtime poller's timer of this socket: no
		// timer of our own, and no system call to move it.
		if err = conn.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout)); err != nil {
			break
		}
		var bp *[]byte
		var n int
		bp, n, err = read(conn)
		if n > 0 {
			k := r.frames((*bp)[:n], false)
			if k > 0 && accepted == 0 {
				bo.Reset()
			}
			accepted += k
		}
		if bp != nil {
			readPool.Put(bp)
		}
		if err != nil {
			break
		}
	}
	if err == io.EOF {
		// Whatever follows the last "/" is a cut telegram: it is reported.
		accepted += r.frames(nil, true)
	}
	r.pend = r.pend[:0]
	if cap(r.pend) > maxPend {
		r.pend = nil
	}
	return accepted, r.endReason(err)
}

// endReason says why a connection ended, given the read error.
func (r *Reader) endReason(err error) error {
	var ne net.Error
	switch {
	case err == io.EOF:
		return fmt.Errorf("closed by gateway: %w", io.EOF)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: no data for %s", errIdle, r.cfg.IdleTimeout)
	}
	return err
}

// rawRead returns a read function that waits for the socket to be readable
// without holding a buffer, then reads into a pooled one that the caller
// puts back: a Reader holds a read buffer only while it frames its bytes.
func rawRead(rc syscall.RawConn) func(net.Conn) (*[]byte, int, error) {
	return func(net.Conn) (*[]byte, int, error) {
		var (
			bp   *[]byte
			n    int
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			bp = readPool.Get().(*[]byte)
			for {
				n, rerr = syscall.Read(int(fd), *bp)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				readPool.Put(bp)
				bp = nil
				return false // wait until readable, or the deadline
			}
			return true
		})
		switch {
		case err != nil:
			return bp, 0, err
		case rerr != nil:
			return bp, 0, os.NewSyscallError("read", rerr)
		case n <= 0:
			return bp, 0, io.EOF
		}
		return bp, n, nil
	}
}

// plainRead reads from a connection that has no file descriptor (a test's
// net.Pipe, say), holding a pooled buffer while it waits.
func plainRead(conn net.Conn) (*[]byte, int, error) {
	bp := readPool.Get().(*[]byte)
	n, err := conn.Read(*bp)
	return bp, n, err
}

// frames frames the bytes in r.pend followed by data, hands every whole
// telegram to handle, keeps the start of an unfinished one in r.pend, and
// returns how many telegrams were accepted. At EOF, a cut telegram is handed
// over too.
func (r *Reader) frames(data []byte, atEOF bool) int {
	if len(r.pend) > 0 {
		r.pend = append(r.pend, data...)
		data = r.pend
	}
	skipped := r.sp.Skipped
	accepted := 0
	for len(data) > 0 {
		adv, tok, _ := r.sp.Split(data, atEOF)
		if adv == 0 && tok == nil {
			break
		}
		data = data[adv:]
		if tok != nil && r.handle(tok) {
			accepted++
		}
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
	return accepted
}

// handle parses one frame and, if it can be trusted, stores it. It reports
// whether the telegram was accepted.
//
// Policy: CRC and frame errors mean nothing in the telegram can be trusted.
// Syntax errors concern single lines: the telegram is still used when its CRC
// matched (the damage is the parser's, not the line's), and dropped when there
// was no CRC to vouch for the rest.
func (r *Reader) handle(frame []byte) bool {
	now := r.cfg.Now()
	t := getTelegram()
	defer putTelegram(t)
	err := parser.ParseInto(t, frame, r.cfg.Location)
	accept := err == nil
	switch {
	case err == nil:
	case errors.Is(err, parser.ErrCRC):
		r.g.crcErrors.Add(1)
	case errors.Is(err, parser.ErrFrame):
		r.g.parseErrors.Add(1)
	default:
		r.g.parseErrors.Add(1)
		accept = t.CRC == parser.CRCOK
	}
	if err != nil {
		if !accept {
			r.g.dropped.Add(1)
		}
		if ok, suppressed := r.errs.allow(now, time.Minute); ok {
			r.logAt(slog.LevelWarn, "bad telegram", "reason", err, "used", accept,
				"suppressed_since_last", suppressed,
				"crc_errors", r.g.crcErrors.Load(), "parse_errors", r.g.parseErrors.Load())
		}
	}
	if !accept {
		return false
	}
	r.g.store(frame, r.cfg.Location, now)
	return true
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
type rateLimit struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now and how many were
// suppressed since the last one that was.
func (l *rateLimit) allow(now time.Time, every time.Duration) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
