package source

import (
	"context"
	"net"
	"os"
	"sync"
	"time"
)

// streamConn is the Conn of a message-based source (a HomeWizard's polled
// API, an MQTT topic, a WebSocket): one goroutine feeds it the payloads as
// they arrive, and Read hands out their bytes in order, as if they had come
// down one TCP stream. Framing is left to the splitter downstream, so a
// telegram split over several messages (Tasmota) or several telegrams in one
// need nothing special here.
//
// The feeder blocks while streamQueue chunks wait unread, so memory stays
// bounded when the reader falls behind; Close unblocks both sides. When the
// feeder stops with an error (fail), Read returns what was queued before it
// and then that error.
type streamConn struct {
	chunks chan []byte
	done   chan struct{} // closed by Close
	wake   chan struct{} // SetReadDeadline moved the deadline
	stop   func()        // ends the feeder; called once, by Close

	closeOnce sync.Once
	failOnce  sync.Once
	failed    chan struct{} // closed by fail
	err       error         // why the feeder stopped; set before failed closes

	mu       sync.Mutex
	deadline time.Time
	rest     []byte // unread tail of the current chunk; Read's only
}

// streamQueue is how many chunks may wait unread: a few telegrams' worth,
// since a reader that keeps up drains every chunk as it comes.
const streamQueue = 16

// newStreamConn returns a streamConn whose Close calls stop (which must
// make the feeder return).
func newStreamConn(stop func()) *streamConn {
	return &streamConn{
		chunks: make(chan []byte, streamQueue),
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		failed: make(chan struct{}),
		stop:   stop,
	}
}

// errConnClosed is what feed and Read return after Close.
var errConnClosed = net.ErrClosed

// feed queues b (which the conn owns from now on) for Read. It blocks while
// the queue is full, and returns errConnClosed once the conn is closed or
// ctx is done.
func (c *streamConn) feed(ctx context.Context, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	select {
	case <-c.done:
		return errConnClosed
	default:
	}
	select {
	case c.chunks <- b:
		return nil
	case <-c.done:
		return errConnClosed
	case <-ctx.Done():
		return errConnClosed
	}
}

// fail records why the feeder stopped; Read returns err once the queued
// chunks are read. Only the first call counts.
func (c *streamConn) fail(err error) {
	c.failOnce.Do(func() {
		c.err = err
		close(c.failed)
	})
}

// Read implements Conn.
func (c *streamConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.rest) > 0 {
		return c.take(p), nil
	}
	for {
		select {
		case <-c.done:
			return 0, errConnClosed
		default:
		}
		n, again, err := c.wait(p)
		if !again {
			return n, err
		}
	}
}

// wait waits for one chunk until the deadline, and reports again when the
// deadline moved while it waited.
func (c *streamConn) wait(p []byte) (n int, again bool, err error) {
	c.mu.Lock()
	dl := c.deadline
	c.mu.Unlock()
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return 0, false, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case b := <-c.chunks:
		c.rest = b
		return c.take(p), false, nil
	case <-c.done:
		return 0, false, errConnClosed
	case <-c.failed:
		// What was fed before the failure is read first.
		select {
		case b := <-c.chunks:
			c.rest = b
			return c.take(p), false, nil
		default:
			return 0, false, c.err
		}
	case <-timeout:
		return 0, false, os.ErrDeadlineExceeded
	case <-c.wake:
		return 0, true, nil
	}
}

func (c *streamConn) take(p []byte) int {
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	if len(c.rest) == 0 {
		c.rest = nil
	}
	return n
}

// SetReadDeadline implements Conn; it also applies to a Read in progress.
func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close implements Conn: it unblocks Read and feed and stops the feeder.
// Later calls return nil and do nothing.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		if c.stop != nil {
			c.stop()
		}
	})
	return nil
}
