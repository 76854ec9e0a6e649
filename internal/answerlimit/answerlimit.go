// Package answerlimit bounds what p1logger reads back from InfluxDB: every
// query answer (rollup recovery, p1logger report) and every error body goes
// through a limit on its decompressed bytes.
//
// The InfluxDB client library reads a QueryRaw answer whole into a string,
// and asks for gzip, so a misbehaving server (or anything that answers in
// its place) can make a few megabytes on the wire into gigabytes in memory.
// Transport sits under the client, decompresses gzip itself so that the
// limit counts what the client will hold, and fails the read past the limit.
package answerlimit

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DefaultMax is the limit p1logger uses: 64 MiB. A recovery batch of a
// thousand gateways answers a few megabytes, a bill a few kilobytes; the
// limit leaves room for years of meter replacements and still keeps a bad
// answer from costing more than a small multiple of it in memory.
const DefaultMax = 64 << 20

// ErrTooLarge matches (errors.Is) every *TooLargeError.
var ErrTooLarge = errors.New("influx answer too large")

// TooLargeError is the read error of an answer longer than its limit.
type TooLargeError struct {
	Limit int64 // bytes, after decompression
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("influx answer exceeds %d bytes", e.Limit)
}

// Is reports whether target is ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Reader returns r limited to max bytes: it reads as r does up to max bytes,
// then, if r has more, closes r and fails every further Read with a
// *TooLargeError. An answer of exactly max bytes reads whole and ends with
// r's io.EOF. Close closes r.
func Reader(r io.ReadCloser, max int64) io.ReadCloser {
	return &limited{r: r, left: max, max: max}
}

type limited struct {
	r    io.ReadCloser
	left int64
	max  int64
	err  error // sticky: the first *TooLargeError
}

func (l *limited) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if l.left <= 0 {
		// At the limit: one more byte tells a complete answer of exactly
		// max bytes from a longer one.
		var one [1]byte
		n, err := io.ReadFull(l.r, one[:])
		if n > 0 {
			l.err = &TooLargeError{Limit: l.max}
			// Hang up now: the InfluxDB client's QueryRaw never closes
			// a body it failed to read, which would keep the connection
			// and the server's answer streaming until the server gives up.
			l.r.Close()
			return 0, l.err
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limited) Close() error { return l.r.Close() }

// Transport returns a RoundTripper that sends requests with base (nil:
// http.DefaultTransport) and limits each response body to max decompressed
// bytes with Reader. A gzip body is decompressed here and handed on without
// its Content-Encoding, so that the limit counts decompressed bytes also for
// a client that asked for gzip itself, as the InfluxDB client library does.
// A body that is not valid gzip fails on its first Read.
func Transport(base http.RoundTripper, max int64) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, max: max}
}

type transport struct {
	base http.RoundTripper
	max  int64
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body := resp.Body
	if !resp.Uncompressed && strings.EqualFold(strings.TrimSpace(resp.Header.Get("Content-Encoding")), "gzip") {
		body = &gunzip{src: resp.Body}
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
	}
	resp.Body = Reader(body, t.max)
	return resp, nil
}

// gunzip decompresses src, reading the gzip header on the first Read rather
// than in RoundTrip, so that a bad header is a read error of the answer.
type gunzip struct {
	src io.ReadCloser
	zr  *gzip.Reader
	err error
}

func (g *gunzip) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.zr == nil {
		zr, err := gzip.NewReader(g.src)
		if err == io.EOF {
			g.err = io.EOF // an empty body: an empty answer
			return 0, g.err
		}
		if err != nil {
			g.err = fmt.Errorf("influx answer: gzip: %w", err)
			return 0, g.err
		}
		g.zr = zr
	}
	return g.zr.Read(p)
}

func (g *gunzip) Close() error {
	if g.zr != nil {
		g.zr.Close()
	}
	return g.src.Close()
}
