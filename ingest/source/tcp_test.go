package source

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseTCP(t *testing.T) {
	tests := []struct {
		addr, want string // want: String(), or the error
		ok         bool
	}{
		{"10.0.0.5:8088", "10.0.0.5:8088", true},
		{"tcp://10.0.0.5:23", "10.0.0.5:23", true},
		{"tcp://10.0.0.5", "10.0.0.5:8088", true},
		{"tcp://10.0.0.5/", "10.0.0.5:8088", true},
		{"TCP://[::1]", "[::1]:8088", true},
		{"[::1]:9", "[::1]:9", true},
		{"10.0.0.5", "has no port; " + tcpForm, false},
		{"/dev/ttyUSB0", "is a path without a scheme; want serial:///dev/ttyUSB0 for a serial device, or host:port", false},
		{":8088", "has no host; " + tcpForm, false},
		{"a:b:c", "is not host:port; " + tcpForm, false},
		{"h:99999", `has a bad port "99999"; ` + tcpForm, false},
		{"tcp://h:", "has an empty port; " + tcpForm, false},
		{"tcp://h:x", `is not a valid address (invalid port ":x" after host)`, false},
		{"tcp://u@h:1", "has user information, which TCP does not use; " + tcpForm, false},
		{"tcp://", "has no host; " + tcpForm, false},
	}
	for _, tt := range tests {
		s, err := Parse(tt.addr, Options{})
		var got string
		if err != nil {
			got = err.Error()
		} else {
			got = s.String()
			if s.Kind() != "tcp" {
				t.Errorf("%q: kind %q", tt.addr, s.Kind())
			}
		}
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("%q: got %q (ok %v), want %q (ok %v)", tt.addr, got, err == nil, tt.want, tt.ok)
		}
	}
}

// TestTCPOpen: the Conn is the socket itself, a syscall.Conn, so that the
// reader's buffer-free wait keeps working; bytes pass as sent.
func TestTCPOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("/ABC5\r\n"))
			c.Close()
		}
	}()
	s, err := Parse("tcp://"+ln.Addr().String(), Options{DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(syscall.Conn); !ok {
		t.Errorf("conn %T is not a syscall.Conn", c)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, _ := c.Read(buf)
	if got, want := string(buf[:n]), "/ABC5\r\n"; got != want {
		t.Errorf("read %q, want %q", got, want)
	}
}

// TestTCPOpenRefused: the error names the address.
func TestTCPOpenRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, _ := Parse(addr, Options{})
	_, err = s.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "dial tcp "+addr) {
		t.Errorf("err %v, want one naming dial tcp %s", err, addr)
	}
}
