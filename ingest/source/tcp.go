package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTCPPort is the port of tcp://host without one: the port ESP P1
// gateways and most ser2net set-ups serve the meter's stream on.
const DefaultTCPPort = "8088"

const tcpForm = "want host:port or tcp://host[:port] (port " + DefaultTCPPort + " by default)"

func init() { Register("tcp", newTCP) }

// TCP is the "tcp" kind: a raw telegram stream over TCP (ser2net, ESP
// gateways). Its Conn is the *net.TCPConn itself, which implements
// syscall.Conn, so that a reader can wait for bytes without holding a read
// buffer.
type TCP struct {
	addr        string // host:port
	dialTimeout time.Duration
	// Dial replaces net.Dialer.DialContext, for tests. Optional.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewTCP returns the TCP source for addr (host:port), without checking it.
func NewTCP(addr string) *TCP { return &TCP{addr: addr} }

func newTCP(u *url.URL, opt Options) (Source, error) {
	switch {
	case u.Opaque != "":
		return nil, errors.New("is not a URL with a host; " + tcpForm)
	case u.User != nil:
		return nil, errors.New("has user information, which TCP does not use; " + tcpForm)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("has a path %q, which TCP does not use; %s", u.Path, tcpForm)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("has options (?…), which TCP does not use; " + tcpForm)
	case u.Fragment != "":
		return nil, errors.New("has a fragment (#…); " + tcpForm)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, errors.New("has no host; " + tcpForm)
	}
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return nil, errors.New("has an empty port; " + tcpForm)
		}
		port = DefaultTCPPort
	}
	if !validPort(port) {
		return nil, fmt.Errorf("has a bad port %q; %s", port, tcpForm)
	}
	return &TCP{addr: net.JoinHostPort(host, port), dialTimeout: opt.DialTimeout}, nil
}

// parseBareTCP parses an address without a scheme: host:port, with the
// port required. Without a scheme there is nothing to say that a bare name
// is meant as a TCP host (it may be a device path that lacks serial://), so
// it is not completed with the default port.
func parseBareTCP(address string, opt Options) (Source, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		var ae *net.AddrError
		switch {
		case strings.HasPrefix(address, "/"):
			return nil, errors.New("is a path without a scheme; want serial://" + address + " for a serial device, or host:port")
		case errors.As(err, &ae) && strings.Contains(ae.Err, "missing port"):
			return nil, errors.New("has no port; " + tcpForm)
		}
		return nil, errors.New("is not host:port; " + tcpForm)
	}
	if host == "" {
		return nil, errors.New("has no host; " + tcpForm)
	}
	if !validPort(port) {
		return nil, fmt.Errorf("has a bad port %q; %s", port, tcpForm)
	}
	return &TCP{addr: net.JoinHostPort(host, port), dialTimeout: opt.DialTimeout}, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535
}

// Open dials the gateway, for at most the DialTimeout of the Options (5 s by
// default) or until ctx is done. Its error is the dialer's, which says
// "dial tcp host:port: …". The Conn is a *net.TCPConn.
func (s *TCP) Open(ctx context.Context) (Conn, error) {
	timeout := s.dialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := s.Dial
	if dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	c, err := dial(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// String returns host:port, the form addresses had before there were other
// kinds, so that logs and the status page read as they did.
func (s *TCP) String() string { return s.addr }

// Kind returns "tcp".
func (s *TCP) Kind() string { return "tcp" }
