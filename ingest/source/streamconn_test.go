package source

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestStreamConn: chunks come out in order across small reads, the queued
// ones before the feeder's error, and Close ends both sides.
func TestStreamConn(t *testing.T) {
	stopped := make(chan struct{})
	c := newStreamConn(func() { close(stopped) })
	ctx := context.Background()
	go func() {
		c.feed(ctx, []byte("/ABC\r\n"))
		c.feed(ctx, []byte("!1234\r\n"))
		c.fail(io.ErrUnexpectedEOF)
	}()
	var got []byte
	buf := make([]byte, 4)
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		var n int
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err = c.Read(buf)
		got = append(got, buf[:n]...)
	}
	if string(got) != "/ABC\r\n!1234\r\n" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %q, %v; want the two chunks, then the feeder's error", got, err)
	}
	c.Close()
	c.Close()
	select {
	case <-stopped:
	default:
		t.Fatal("Close did not stop the feeder")
	}
	if err := c.feed(ctx, []byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("feed after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, want net.ErrClosed", err)
	}
}

// TestStreamConnDeadlineMoves: a deadline set while a Read waits applies to
// it, as on a socket, and the error is a timeout.
func TestStreamConnDeadlineMoves(t *testing.T) {
	c := newStreamConn(nil)
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	select {
	case err := <-errc:
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read = %v, want a timeout", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the moved deadline did not end the Read")
	}
}

// TestStreamConnFeedBlocks: a full queue holds the feeder until Close.
func TestStreamConnFeedBlocks(t *testing.T) {
	c := newStreamConn(nil)
	for range streamQueue {
		if err := c.feed(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- c.feed(context.Background(), []byte("y")) }()
	select {
	case err := <-errc:
		t.Fatalf("feed into a full queue returned %v at once", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("feed = %v, want net.ErrClosed", err)
	}
}
