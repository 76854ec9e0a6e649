package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// WriterConfig tunes a Writer. Zero fields take the defaults noted.
type WriterConfig struct {
	// MaxBatchBytes bounds one request body before compression. Default 1 MiB.
	MaxBatchBytes int
	// MinBackoff and MaxBackoff bound the delay between retries of a failed
	// batch (a Retry-After answer overrides them). Defaults 500ms and 15s, so
	// that InfluxDB coming back is noticed within seconds.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout bounds the final flush after Run's ctx is cancelled.
	// Default 10s. With a durable Buffer the flush also ends at the first
	// failed attempt: what is left is kept on disk for the next start.
	DrainTimeout time.Duration
	// Logger receives write failures and recoveries. Default slog.Default().
	Logger *slog.Logger
}

// maxRetryAfter caps a server's Retry-After, so that a bogus header cannot
// stall delivery for hours.
const maxRetryAfter = 5 * time.Minute

// Writer is the LineWriter of the pipeline: WriteLines appends to a Buffer
// and returns at once; Run sends the Buffer's contents through a Sink, oldest
// first, one batch at a time, retrying with backoff until each is delivered
// or refused for good.
//
// What it does after a failed write depends on Classify: network errors,
// timeouts, 5xx, 429, 401/403 (token rejected) and 404 (no bucket) keep the
// batch and retry it with backoff (or after Retry-After, up to 5 minutes),
// forever and without ever returning an error, so a misconfiguration loses
// nothing and causes no crash loop; 413, 400, 422 and other 4xx halve the
// batch until the parts fit or only the refused lines are left, which are
// dropped, counted and logged with the server's message (see deliver).
// Points delivered after waiting through a failure, or left by a previous run
// in a durable Buffer, are counted as replayed.
type Writer struct {
	cfg  WriterConfig
	buf  Buffer
	sink Sink
	log  *slog.Logger
	send []byte // Peek target, reused
	// durable: buf keeps what is not delivered across restarts.
	durable bool

	points        atomic.Int64
	batches       atomic.Int64
	writeErrors   atomic.Int64
	droppedPoints atomic.Int64 // refused by the server (400/422), or left at drain
	replayed      atomic.Int64 // points delivered from a backlog
	lastOK        atomic.Int64 // unix ns of the last delivered batch
	latency       histogram

	mu            sync.Mutex
	lastError     string
	failing       bool // the last attempt failed
	tokenRejected bool // the last attempt failed with 401 or 403
	retryLog      rateLimit
	dropLog       rateLimit // refused points
	splitLog      rateLimit // batches split after a 400 or 413
	// backlog is how many buffered bytes were waiting when the writer
	// recovered (or started): the first backlog bytes delivered after that
	// are a replay, since the Buffer is first in, first out.
	backlog      int
	backlogStart time.Time
	backlogPts   int64
}

var _ LineWriter = (*Writer)(nil)

// NewWriter returns a Writer that queues in buf and delivers to sink.
func NewWriter(cfg WriterConfig, buf Buffer, sink Sink) *Writer {
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Writer{cfg: cfg, buf: buf, sink: sink, log: cfg.Logger, durable: buf.Stats().Durable}
}

// WriteLines implements LineWriter: it copies lines (whole lines, each ending
// in "\n") into the Buffer and returns without waiting for InfluxDB. It
// returns the Buffer's error, if any; a full MemBuffer drops its oldest data
// instead of failing.
func (w *Writer) WriteLines(_ context.Context, lines []byte) error {
	return w.buf.Append(lines)
}

// Run delivers buffered batches until ctx is cancelled, then drains the
// Buffer for at most DrainTimeout and returns nil. What is still buffered
// then stays in the Buffer (lost with a MemBuffer, kept by a durable one) and
// is logged.
func (w *Writer) Run(ctx context.Context) error {
	if n := w.buf.Bytes(); n > 0 && w.durable {
		w.mu.Lock()
		w.backlog, w.backlogStart = n, time.Now()
		w.mu.Unlock()
	}
	bo := w.newBackoff()
	for {
		batch, token := w.buf.Peek(w.send[:0], w.cfg.MaxBatchBytes)
		w.send = batch[:0]
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return w.drain(ctx)
			case <-w.buf.Notify():
				continue
			}
		}
		wait, ok := w.attempt(ctx, batch, token, bo)
		if ok {
			continue
		}
		if ctx.Err() != nil || !sleep(ctx, wait) {
			return w.drain(ctx)
		}
	}
}

func (w *Writer) newBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(w.cfg.MinBackoff),
		// ±30% jitter on at most 3/4 of the cap keeps every delay ≤ MaxBackoff.
		backoff.WithMaxInterval(w.cfg.MaxBackoff*3/4),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.3),
		backoff.WithMaxElapsedTime(0),
	)
}

// attempt sends one batch and acknowledges it unless it must be retried, in
// which case it returns how long to wait first.
func (w *Writer) attempt(ctx context.Context, batch []byte, token uint64, bo *backoff.ExponentialBackOff) (time.Duration, bool) {
	var d delivery
	err := w.deliver(ctx, batch, &d)
	if err == nil {
		// Counted only now: a batch retried after a part of it went through
		// is sent again whole, and its points are stored (and counted) once.
		w.points.Add(d.sent)
		w.droppedPoints.Add(d.dropped)
		w.recovered()
		if d.dropped > 0 {
			w.noteError(d.reason, false)
			w.logDropped(&d)
		}
		w.buf.Ack(token)
		w.delivered(batch)
		bo.Reset()
		return 0, true
	}
	if ctx.Err() != nil && !errors.As(err, new(*WriteError)) {
		// Cancelled mid-request: not the server's fault; drain retries it.
		return 0, false
	}
	wait := bo.NextBackOff()
	var we *WriteError
	if errors.As(err, &we) && we.RetryAfter > 0 {
		wait = min(we.RetryAfter, maxRetryAfter)
	}
	w.noteError(err, true)
	w.logRetry(err, wait)
	return wait, false
}

// maxDeliverRequests bounds the requests one batch may take while deliver
// splits it to isolate refused lines or to fit a 413. Isolating k bad lines
// among n takes about 2k·log2(n) requests: 64 isolate the usual one or two
// bad lines of a 1 MiB batch exactly. A batch that is bad throughout (a
// field type conflict on every line, a server that answers 413 to
// everything) would otherwise cost a request per line; past the bound the
// parts still refused are dropped whole.
const maxDeliverRequests = 64

// delivery is what deliver found out about one batch: the lines stored and
// dropped, and the first refusal, for the log.
type delivery struct {
	requests int
	sent     int64
	dropped  int64
	refused  int // parts dropped
	reason   error
	line     []byte // the first dropped line, or the start of the first dropped part
}

// deliver sends batch. When the server refuses it for good (400, 422, other
// 4xx) or finds it too large (413), deliver halves it and sends each half, so
// that only the lines the server refuses are dropped and counted in d: on
// InfluxDB 2.x a 400 stores nothing of the batch, so dropping a whole batch
// would lose every other gateway's points with it. (1.8 stores the good lines
// of a batch it answers 400; sending them again in the halves is harmless,
// since identical points overwrite themselves.) A part of one line, or any
// part once the batch took maxDeliverRequests, is dropped when refused.
// deliver returns the error of a failure to be retried (network, 5xx, 429,
// 401/403, 404): the whole batch is then sent again later.
func (w *Writer) deliver(ctx context.Context, batch []byte, d *delivery) error {
	d.requests++
	start := time.Now()
	err := w.sink.Send(ctx, batch)
	w.latency.observe(time.Since(start))
	if err == nil {
		d.sent += int64(bytes.Count(batch, []byte{'\n'}))
		w.batches.Add(1)
		w.lastOK.Store(time.Now().UnixNano())
		return nil
	}
	if ctx.Err() == nil || errors.As(err, new(*WriteError)) {
		// A request cut short by shutdown is not a failed write.
		w.writeErrors.Add(1)
	}
	action := Classify(err)
	if action == Retry {
		return err
	}
	if we := (*WriteError)(nil); errors.As(err, &we) && we.Partial != nil {
		if rest, ok := w.partial(batch, we, d); ok {
			if len(rest) == 0 {
				return nil
			}
			return w.deliver(ctx, rest, d)
		}
	}
	mid := bytes.LastIndexByte(batch[:len(batch)/2], '\n') + 1
	if mid == 0 {
		mid = bytes.IndexByte(batch, '\n') + 1
	}
	if mid <= 0 || mid >= len(batch) || d.requests >= maxDeliverRequests {
		if action == Split && (mid <= 0 || mid >= len(batch)) {
			err = &WriteError{Status: http.StatusRequestEntityTooLarge, Message: "a single line is too large: " + err.Error()}
		}
		d.refuse(batch, err)
		return nil
	}
	w.logSplit(err, len(batch))
	if err := w.deliver(ctx, batch[:mid], d); err != nil {
		return err
	}
	return w.deliver(ctx, batch[mid:], d)
}

// partial settles a batch the server took in part and said which lines it
// refused (InfluxDB 3): those are dropped, the others counted as sent and
// not sent again. It returns the lines the answer does not speak for (past
// the last refused line of a full list), to be sent again; ok is false when
// the account does not fit the batch, which is then split as any refusal.
func (w *Writer) partial(batch []byte, we *WriteError, d *delivery) (rest []byte, ok bool) {
	p := we.Partial
	lines := bytes.Count(batch, []byte{'\n'})
	if p.Refused[len(p.Refused)-1] > lines || p.Through > lines {
		return nil, false
	}
	through := p.Through
	if through == 0 {
		through = lines
	}
	refused := p.Refused
	rest = batch
	for n := 1; n <= through; n++ {
		i := bytes.IndexByte(rest, '\n') + 1
		line := rest[:i]
		rest = rest[i:]
		if len(refused) > 0 && refused[0] == n {
			refused = refused[1:]
			d.refuse(line, we)
			continue
		}
		d.sent++
	}
	w.batches.Add(1)
	return rest, true
}

// maxLoggedLine bounds the dropped line quoted in the log.
const maxLoggedLine = 256

func (d *delivery) refuse(part []byte, err error) {
	d.dropped += int64(bytes.Count(part, []byte{'\n'}))
	d.refused++
	if d.reason == nil {
		d.reason = err
		line, _, _ := bytes.Cut(part, []byte{'\n'})
		d.line = line[:min(len(line), maxLoggedLine)]
	}
}

// logDropped logs the points a batch lost, with the server's reason and the
// first refused line: at once for the first such batch, then at most once a
// minute, so that a server that refuses everything cannot flood the log.
func (w *Writer) logDropped(d *delivery) {
	w.mu.Lock()
	ok, suppressed := w.dropLog.Allow(time.Now(), time.Minute)
	w.mu.Unlock()
	if !ok {
		w.log.Debug("influxdb refused points again; dropped", "points", d.dropped, "reason", d.reason)
		return
	}
	w.log.Error("influxdb refused points; dropped", "points", d.dropped, "delivered", d.sent,
		"refused_parts", d.refused, "reason", d.reason, "line", fmt.Sprintf("%q", d.line),
		"suppressed_since_last", suppressed)
}

// logSplit logs a batch being split, at most once a minute.
func (w *Writer) logSplit(err error, n int) {
	w.mu.Lock()
	ok, suppressed := w.splitLog.Allow(time.Now(), time.Minute)
	w.mu.Unlock()
	if !ok {
		w.log.Debug("influxdb refused a batch; splitting", "bytes", n, "reason", err)
		return
	}
	w.log.Info("influxdb refused a batch; splitting it to deliver what it takes", "bytes", n, "reason", err,
		"suppressed_since_last", suppressed)
}

// drain sends what is buffered with a fresh deadline of DrainTimeout.
func (w *Writer) drain(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.DrainTimeout)
	defer cancel()
	bo := w.newBackoff()
	bo.MaxInterval = min(bo.MaxInterval, w.cfg.DrainTimeout/4)
	for {
		batch, token := w.buf.Peek(w.send[:0], w.cfg.MaxBatchBytes)
		w.send = batch[:0]
		if len(batch) == 0 {
			return nil
		}
		wait, ok := w.attempt(dctx, batch, token, bo)
		if ok {
			continue
		}
		if w.durable {
			w.log.Info("shutdown: influxdb unavailable; undelivered points stay in the spool for the next start",
				"bytes_left", w.buf.Bytes())
			return nil
		}
		if dctx.Err() != nil || !sleep(dctx, wait) {
			left := w.buf.Bytes()
			w.log.Error("shutdown: influxdb did not take everything in time", "bytes_left", left,
				"drain_timeout", w.cfg.DrainTimeout)
			return nil
		}
	}
}

func (w *Writer) noteError(err error, retry bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastError = err.Error()
	w.failing = retry
	w.tokenRejected = IsTokenRejected(err)
}

// IsTokenRejected reports whether err is InfluxDB refusing the token
// (401 Unauthorized or 403 Forbidden).
func IsTokenRejected(err error) bool {
	var we *WriteError
	return errors.As(err, &we) && (we.Status == http.StatusUnauthorized || we.Status == http.StatusForbidden)
}

// logRetry logs a failure to be retried: the first of a series at once,
// repeats at most once a minute.
func (w *Writer) logRetry(err error, wait time.Duration) {
	w.mu.Lock()
	ok, suppressed := w.retryLog.Allow(time.Now(), time.Minute)
	w.mu.Unlock()
	if !ok {
		w.log.Debug("influxdb write failed again", "reason", err, "retry_in", wait.Round(time.Millisecond))
		return
	}
	var we *WriteError
	msg := "influxdb write failed; keeping points and retrying"
	if errors.As(err, &we) {
		switch we.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			msg = "influxdb token rejected; keeping points and retrying"
		case http.StatusNotFound:
			msg = "influxdb bucket not found; keeping points and retrying"
		}
	}
	w.log.Warn(msg, "reason", err, "retry_in", wait.Round(time.Millisecond),
		"buffered_bytes", w.buf.Bytes(), "suppressed_since_last", suppressed)
}

// recovered ends a series of failures; what is buffered then (the batch
// just delivered included, as it is not acknowledged yet) is a backlog.
func (w *Writer) recovered() {
	w.mu.Lock()
	was := w.failing
	w.failing, w.tokenRejected = false, false
	w.retryLog = rateLimit{}
	n := w.buf.Bytes()
	if was {
		// The replay is timed from the moment InfluxDB answered again.
		w.backlog, w.backlogStart, w.backlogPts = n, time.Now(), 0
	}
	w.mu.Unlock()
	if was {
		w.log.Info("influxdb writes recovered; delivering the backlog, oldest first", "buffered_bytes", n)
	}
}

// delivered counts a delivered batch into the backlog being replayed.
func (w *Writer) delivered(batch []byte) {
	w.mu.Lock()
	if w.backlog <= 0 {
		w.mu.Unlock()
		return
	}
	n := int64(bytes.Count(batch, []byte{'\n'}))
	w.replayed.Add(n)
	w.backlogPts += n
	w.backlog -= len(batch)
	done, pts, took := w.backlog <= 0, w.backlogPts, time.Since(w.backlogStart)
	w.mu.Unlock()
	if done {
		w.log.Info("backlog delivered", "points", pts, "took", took.Round(time.Millisecond),
			"buffered_bytes", w.buf.Bytes())
	}
}

// WriterStats counts what a Writer did since it was created.
type WriterStats struct {
	Points        int64 // points delivered
	Batches       int64 // requests that succeeded
	WriteErrors   int64 // failed attempts (each retry counts)
	DroppedPoints int64 // points the server refused for good
	// ReplayedPoints counts points delivered after waiting through a
	// failed write, or left in a durable Buffer by a previous run.
	ReplayedPoints int64
	BufferedBytes  int
	Failing        bool   // the last attempt failed and will be retried
	TokenRejected  bool   // the last attempt failed with 401 or 403
	LastError      string // the last failure, if any
	LastOK         time.Time
	Latency        HistogramSnapshot // per request, seconds
	Buffer         BufferStats
}

// Stats returns the Writer's counters.
func (w *Writer) Stats() WriterStats {
	s := WriterStats{
		Points:         w.points.Load(),
		Batches:        w.batches.Load(),
		WriteErrors:    w.writeErrors.Load(),
		DroppedPoints:  w.droppedPoints.Load(),
		ReplayedPoints: w.replayed.Load(),
		Buffer:         w.buf.Stats(),
		Latency:        w.latency.snapshot(),
	}
	s.BufferedBytes = int(s.Buffer.Bytes)
	if ns := w.lastOK.Load(); ns != 0 {
		s.LastOK = time.Unix(0, ns)
	}
	w.mu.Lock()
	s.Failing, s.LastError, s.TokenRejected = w.failing, w.lastError, w.tokenRejected
	w.mu.Unlock()
	return s
}

// LatencyBuckets are the upper bounds, in seconds, of the write latency
// histogram.
var LatencyBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

type histogram struct {
	mu     sync.Mutex
	counts [len(LatencyBuckets)]int64
	count  int64
	sum    float64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, le := range LatencyBuckets {
		if s <= le {
			h.counts[i]++
		}
	}
	h.count++
	h.sum += s
}

// HistogramSnapshot is a cumulative histogram: Buckets[i] counts observations
// not above LatencyBuckets[i].
type HistogramSnapshot struct {
	Buckets [len(LatencyBuckets)]int64
	Count   int64
	Sum     float64
}

func (h *histogram) snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HistogramSnapshot{Buckets: h.counts, Count: h.count, Sum: h.sum}
}
