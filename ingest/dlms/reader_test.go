package dlms

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
)

// tcpSource is a Source over a real loopback TCP connection, standing in
// for the daemon's TCP kind.
type tcpSource struct{ addr string }

func (s tcpSource) Open(ctx context.Context) (source.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}
func (s tcpSource) String() string { return s.addr }
func (s tcpSource) Kind() string   { return "tcp" }

// TestWrapTCP: a meter behind a real TCP socket sends two frames, one
// tampered, and a plain telegram; the wrapped Conn yields the good
// telegrams, hands the tampered frame to onReject, passes read deadlines
// through, and hides the socket's syscall.Conn (which would let a reader
// bypass the decryption).
func TestWrapTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t1, t2 := telegram(400), telegram(150)
	good := seal(t, testKeyAuth, 1, 0x30, t1)
	bad := seal(t, testKeyAuth, 2, 0x30, t2)
	bad[len(bad)-3] ^= 0x80
	sent := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(good[:100])
		time.Sleep(20 * time.Millisecond)
		c.Write(append(append(good[100:], bad...), t2...))
		<-sent
	}()
	var rejected []error
	src := Wrap(tcpSource{ln.Addr().String()}, []Key{testKeyAuth}, func(err error) { rejected = append(rejected, err) })
	if src.Kind() != "tcp" || src.String() != ln.Addr().String() {
		t.Errorf("Kind %q String %q, want the wrapped source's", src.Kind(), src.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := src.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(syscall.Conn); ok {
		t.Fatal("the wrapped Conn is a syscall.Conn: a reader could read the socket past the decryption")
	}
	var got []byte
	buf := make([]byte, 256)
	for len(got) < len(t1)+len(t2) {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", len(got), err)
		}
	}
	if want := append(bytes.Clone(t1), t2...); !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if len(rejected) != 1 || !errors.Is(rejected[0], ErrAuth) || !strings.Contains(rejected[0].Error(), "frame 2 from meter SAG6770010203") {
		t.Fatalf("rejected %v, want frame 2's ErrAuth", rejected)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read on a silent socket: %v, want a deadline error", err)
	}
	close(sent)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
	}
}

// FuzzDecrypt feeds arbitrary bytes, split in two reads at a point the
// input chooses, through a Reader holding the public vectors' keys and the
// test keys: it must not panic, must end, and never yields more bytes than
// it was given (a telegram is shorter than its frame). Seeds: the public
// frames, sealed frames of every security byte and length form, and their
// mixtures with plain telegrams.
func FuzzDecrypt(f *testing.F) {
	keys := []Key{testKey, testKeyAuth}
	for _, v := range vectors(f) {
		keys = append(keys, v.key)
		f.Add(uint16(len(v.frame)/2), v.frame)
	}
	for _, sec := range []byte{0x30, 0x31, 0x20, 0x21} {
		for _, size := range []int{60, 200, 700} {
			fr := seal(f, testKey, 3, sec, telegram(size))
			f.Add(uint16(size/3), fr)
			f.Add(uint16(7), append(append(telegram(80), fr...), 0x7E, 0xA0, 0x05, 0xE6, 0xE7, 0x00, 0x68, 0x04, 0x04, 0x68, 0x53))
		}
	}
	f.Fuzz(func(t *testing.T, cut uint16, in []byte) {
		at := int(cut) % (len(in) + 1)
		r := io.MultiReader(bytes.NewReader(in[:at]), bytes.NewReader(in[at:]))
		dr := NewReader(r, keys, func(error) {})
		var out int
		buf := make([]byte, 512)
		for i := 0; ; i++ {
			if i > 2*len(in)+10 {
				t.Fatalf("no EOF after %d reads of %d bytes", i, len(in))
			}
			n, err := dr.Read(buf)
			out += n
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if out > len(in) {
			t.Fatalf("%d bytes out of %d in", out, len(in))
		}
	})
}
