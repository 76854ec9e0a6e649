package dlms

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/p1logger/p1logger/ingest/source"
)

// Reader decrypts the stream of an io.Reader: its Read returns the plain
// telegram bytes (see Decoder). A frame that cannot be decrypted is never
// returned: it goes to onReject (when not nil), called from inside Read.
// A read error of the underlying reader that satisfies
// os.ErrDeadlineExceeded is returned at once and the Reader stays usable;
// any other error (io.EOF included) first flushes what is buffered, as at
// the end of the stream, and is then returned by every Read.
type Reader struct {
	r        io.Reader
	dec      Decoder
	onReject func(error)
	buf      []byte
	start    int
	end      int
	pending  []byte // decoded bytes that did not fit the caller's p
	pend     []byte // pending's storage
	err      error  // sticky error of r
}

// NewReader returns a Reader of r that decrypts with keys (tried in order).
func NewReader(r io.Reader, keys []Key, onReject func(error)) *Reader {
	return &Reader{r: r, dec: Decoder{Keys: keys}, onReject: onReject}
}

// initialBuf is the buffer a Reader starts with: one telegram. It grows up
// to MaxFrame for a long frame.
const initialBuf = 4096

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.buf == nil {
		r.buf = make([]byte, initialBuf)
	}
	// Each pass returns, consumes buffered bytes, or reads more, which
	// ends at the latest at MaxFrame buffered bytes (Decode then always
	// decides) or at the first error of r.
	for {
		if len(r.pending) > 0 {
			n := copy(p, r.pending)
			r.pending = r.pending[n:]
			return n, nil
		}
		eof := r.err != nil
		if r.start < r.end {
			adv, out, err := r.dec.Decode(r.buf[r.start:r.end], eof)
			r.start += adv
			if err != nil && r.onReject != nil {
				r.onReject(err)
			}
			if len(out) > 0 {
				n := copy(p, out)
				if n < len(out) {
					r.pend = append(r.pend[:0], out[n:]...)
					r.pending = r.pend
				}
				return n, nil
			}
			if adv > 0 {
				continue
			}
		}
		if eof {
			return 0, r.err
		}
		r.fill()
		if r.err != nil && errors.Is(r.err, os.ErrDeadlineExceeded) {
			err := r.err
			r.err = nil
			return 0, err
		}
	}
}

// fill reads once from r into the free end of the buffer, first moving the
// unread bytes to its start and growing it when they fill it.
func (r *Reader) fill() {
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end == len(r.buf) {
		if len(r.buf) >= MaxFrame {
			// Cannot happen: Decode decides on MaxFrame bytes. Guard the
			// loop all the same.
			r.err = errors.New("dlms: frame buffer full")
			return
		}
		nb := make([]byte, min(2*len(r.buf), MaxFrame))
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if err != nil && (n == 0 || !errors.Is(err, os.ErrDeadlineExceeded)) {
		r.err = err
	}
}

// Wrap returns a Source whose connections read the decrypted stream of
// src's: each Conn's Read yields plain telegram bytes (a fresh Decoder per
// connection), with frames that fail to decrypt handed to onReject instead.
// Kind and String are src's: the keys never appear in them.
func Wrap(src source.Source, keys []Key, onReject func(error)) source.Source {
	return &wrapped{src: src, keys: keys, onReject: onReject}
}

type wrapped struct {
	src      source.Source
	keys     []Key
	onReject func(error)
}

func (w *wrapped) Open(ctx context.Context) (source.Conn, error) {
	c, err := w.src.Open(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, r: NewReader(c, w.keys, w.onReject)}, nil
}

func (w *wrapped) String() string { return w.src.String() }
func (w *wrapped) Kind() string   { return w.src.Kind() }

// conn embeds the wrapped source.Conn for Close and SetReadDeadline. As an
// interface embedding, it hides whatever else the wrapped connection is (a
// syscall.Conn, for one): a reader that found that would read the socket
// past the decryption.
type conn struct {
	source.Conn
	r *Reader
}

func (c *conn) Read(p []byte) (int, error) { return c.r.Read(p) }
