package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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
type Reader struct {
	g    *Gateway
	cfg  ReaderConfig
	log  *slog.Logger
	t    *parser.Telegram // parse target; swapped with the Gateway's slot
	buf  []byte           // the Scanner's initial buffer, reused per connection
	errs rateLimit        // telegram errors
	dial rateLimit        // repeated dial failures
}

// NewReader returns a Reader for g. It does not dial: Run does.
func NewReader(g *Gateway, cfg ReaderConfig) *Reader {
	cfg.setDefaults()
	return &Reader{
		g:   g,
		cfg: cfg,
		log: cfg.Logger.With("gateway", g.name, "addr", g.addr),
		t:   new(parser.Telegram),
	}
}

// errIdle is the reason for dropping a connection that went silent.
var errIdle = errors.New("idle timeout")

// Run dials the gateway, reads telegrams until the connection fails, and
// redials with capped exponential backoff, forever: a gateway that is down,
// refuses, closes (EOF), or goes silent for IdleTimeout is only ever
// redialled. Run returns nil when ctx is cancelled, closing the connection.
func (r *Reader) Run(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.cfg.MinBackoff),
		// ±50% jitter on at most 2/3 of the cap keeps every delay ≤ MaxBackoff.
		backoff.WithMaxInterval(r.cfg.MaxBackoff*2/3),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0), // never give up
	)
	failedDials := 0
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
			failedDials++
			r.g.setConnected(false, r.cfg.Now(), err)
			wait = bo.NextBackOff()
			if ok, suppressed := r.dial.allow(r.cfg.Now(), time.Minute); ok && failedDials == 1 {
				r.log.Warn("gateway unreachable", "reason", err, "redial_in", wait.Round(time.Millisecond))
			} else if ok {
				r.log.Warn("gateway still unreachable", "reason", err, "failed_dials", failedDials,
					"suppressed", suppressed, "redial_in", wait.Round(time.Millisecond))
			} else {
				r.log.Debug("dial failed", "reason", err, "redial_in", wait.Round(time.Millisecond))
			}
		} else {
			if failedDials > 0 {
				r.log.Info("gateway connected", "after_failed_dials", failedDials)
			} else {
				r.log.Info("gateway connected")
			}
			failedDials = 0
			r.dial = rateLimit{}
			n, reason := r.serve(ctx, conn, bo)
			if ctx.Err() != nil {
				r.g.setConnected(false, r.cfg.Now(), nil)
				return nil
			}
			r.g.setConnected(false, r.cfg.Now(), reason)
			wait = bo.NextBackOff()
			r.log.Warn("gateway connection lost", "reason", reason, "telegrams", n)
			r.log.Info("redialling", "in", wait.Round(time.Millisecond))
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
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

// serve reads telegrams from conn until it fails or ctx is cancelled, and
// returns how many telegrams it accepted and why the connection ended.
func (r *Reader) serve(ctx context.Context, conn net.Conn, bo backoff.BackOff) (int, error) {
	defer conn.Close()
	// Closing the socket is the only way to interrupt a blocked Read; the
	// AfterFunc costs no goroutine until ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r.g.setConnected(true, r.cfg.Now(), nil)

	if r.buf == nil {
		r.buf = make([]byte, 0, 2048)
	}
	sp := &parser.Splitter{}
	sc := bufio.NewScanner(&idleConn{conn: conn, idle: r.cfg.IdleTimeout})
	sc.Buffer(r.buf[:0], parser.MaxTelegramSize)
	sc.Split(sp.Split)
	accepted := 0
	var skipped int64
	for sc.Scan() {
		if sp.Skipped != skipped {
			r.g.skipped.Add(sp.Skipped - skipped)
			skipped = sp.Skipped
		}
		if r.handle(sc.Bytes()) {
			if accepted == 0 {
				bo.Reset()
			}
			accepted++
		}
	}
	if sp.Skipped != skipped {
		r.g.skipped.Add(sp.Skipped - skipped)
	}
	err := sc.Err()
	var ne net.Error
	switch {
	case err == nil:
		err = fmt.Errorf("closed by gateway: %w", io.EOF)
	case errors.As(err, &ne) && ne.Timeout():
		err = fmt.Errorf("%w: no data for %s", errIdle, r.cfg.IdleTimeout)
	}
	return accepted, err
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
	err := parser.ParseInto(r.t, frame, r.cfg.Location)
	accept := err == nil
	switch {
	case err == nil:
	case errors.Is(err, parser.ErrCRC):
		r.g.crcErrors.Add(1)
	case errors.Is(err, parser.ErrFrame):
		r.g.parseErrors.Add(1)
	default:
		r.g.parseErrors.Add(1)
		accept = r.t.CRC == parser.CRCOK
	}
	if err != nil {
		if !accept {
			r.g.dropped.Add(1)
		}
		if ok, suppressed := r.errs.allow(now, time.Minute); ok {
			r.log.Warn("bad telegram", "reason", err, "used", accept,
				"suppressed_since_last", suppressed,
				"crc_errors", r.g.crcErrors.Load(), "parse_errors", r.g.parseErrors.Load())
		}
	}
	if !accept {
		return false
	}
	if old := r.g.store(r.t, now); old != nil {
		r.t = old
	} else {
		r.t = new(parser.Telegram)
	}
	return true
}

// idleConn sets the read deadline before every Read, so that a gateway that
// keeps its socket open but sends nothing is dropped after idle.
type idleConn struct {
	conn net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.conn.Read(p)
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
