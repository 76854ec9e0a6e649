// Package source turns a gateway address (DESIGN.md, "Gateway addresses")
// into a byte stream: a TCP socket, a serial device, a HomeWizard's API, an
// MQTT topic or a WebSocket. Every kind delivers the meter's raw bytes, so
// everything after it (framing, CRC, parsing, batching, rollups, the spool)
// is the same for all of them and never learns which kind a frame came from.
//
// Kinds register a Factory under their URL scheme (Register), as
// blackbox_exporter keys its probers by module and litestream its replica
// clients by scheme; Parse looks the scheme up. A bare host:port is TCP, so
// addresses written before there were other kinds keep their meaning.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Conn is one connection to a gateway. Read returns the meter's raw bytes
// (telegrams, noise, encrypted frames: whatever the gateway sends, in order).
// Read returns an error satisfying os.ErrDeadlineExceeded (a net.Error with
// Timeout() true) once the deadline set by SetReadDeadline passes with no
// byte, and io.EOF or another error when the connection ends; the caller
// then closes it and opens a new one. Close unblocks a Read in progress.
//
// A Conn that also implements syscall.Conn (a TCP socket) lets the reader
// wait for bytes without holding a read buffer.
type Conn interface {
	io.ReadCloser
	SetReadDeadline(t time.Time) error
}

// Source opens connections to one gateway. Open blocks at most until ctx is
// done; its error says what failed in words a user can act on, without
// secrets. String returns the address without secrets (passwords, tokens
// and key files never appear in it), for logs, /api and the status page.
// Kind returns the kind's name: "tcp", "serial", "homewizard", "mqtt",
// "websocket" (an encrypting wrapper keeps the kind of what it wraps).
type Source interface {
	Open(ctx context.Context) (Conn, error)
	String() string
	Kind() string
}

// Factory builds a Source from a parsed address. It validates everything it
// can at start (form, options, that secret files can be read) and returns
// an error completing the sentence "address X ..." (e.g. "has no topic;
// want mqtt://[user@]broker[:port]/topic"). It does not connect.
type Factory func(u *url.URL, opt Options) (Source, error)

// Options are the settings every kind may use, from the daemon's config.
type Options struct {
	// DialTimeout bounds one connection attempt (0: 5 s).
	DialTimeout time.Duration
}

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes the kind built by f available under scheme (lower case,
// without "://"). It panics when scheme is registered twice: that is a
// programming error found by the first test that imports both.
func Register(scheme string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[scheme]; dup {
		panic("source: scheme registered twice: " + scheme)
	}
	factories[scheme] = f
}

// Schemes returns the registered schemes, sorted, for error messages.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(factories))
	for s := range factories {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// ErrUnknownScheme is wrapped by Parse's error for a scheme nobody registered.
var ErrUnknownScheme = errors.New("unknown scheme")

// Parse returns the Source for address. An address without "://" is
// host:port over TCP, its port required (tcp://host defaults to port 8088). Its errors complete a sentence that starts with the
// quoted address, as the daemon's config errors do, and never quote a
// secret (Parse never sees one: secrets come from files named in the
// address).
func Parse(address string, opt Options) (Source, error) {
	scheme, _, found := strings.Cut(address, "://")
	if !found {
		return parseBareTCP(address, opt)
	}
	scheme = strings.ToLower(scheme)
	mu.RLock()
	f := factories[scheme]
	mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("has %w %q; want host:port or one of %s://…", ErrUnknownScheme, scheme, strings.Join(Schemes(), "://…, "))
	}
	u, err := url.Parse(address)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("is not a valid address (%v)", err)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, errors.New("holds a password; want the password in a file, named by ?password_file=PATH")
		}
	}
	return f(u, opt)
}
