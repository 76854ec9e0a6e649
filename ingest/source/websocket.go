package source

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// A WebSocket gateway (ws://host[:port]/path, wss://…), such as the Homey
// Energy Dongle at ws://IP:80/ws, streams the meter's raw bytes: each
// message, binary or text, is the next piece of the stream (a whole
// telegram, part of one, or an encrypted frame), handed on as it is.
//
// github.com/coder/websocket does the protocol: context-aware reads (a
// cancelled context closes the connection, which is how Close unblocks a
// read), a read limit, and close codes. Such devices allow few clients (the
// Homey dongle two): a third is closed with 1008 (policy violation), which
// ends the Conn with an error that says so; the Reader logs it and backs off
// as after any lost connection, so p1logger does not keep pushing out the
// other clients.

// wsMaxMessage bounds one message: a telegram or a few.
const wsMaxMessage = 64 << 10

func init() {
	Register("ws", newWebSocket)
	Register("wss", newWebSocket)
}

type webSocket struct {
	url     string // without user info
	timeout time.Duration
}

func newWebSocket(u *url.URL, opt Options) (Source, error) {
	form := "ws://host[:port]/path or wss://host[:port]/path"
	if u.Hostname() == "" {
		return nil, fmt.Errorf("has no host; want %s", form)
	}
	if u.User != nil {
		return nil, fmt.Errorf("has a user name; want %s", form)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("has a fragment #%s; want %s", u.Fragment, form)
	}
	c := *u
	c.Scheme = strings.ToLower(c.Scheme)
	if c.Path == "" {
		c.Path = "/"
	}
	s := &webSocket{url: c.String(), timeout: opt.DialTimeout}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	return s, nil
}

// String returns the address.
func (s *webSocket) String() string { return s.url }

// Kind returns "websocket".
func (s *webSocket) Kind() string { return "websocket" }

// errTooManyClients is the reason when the device closes with 1008.
var errTooManyClients = errors.New("device closed the WebSocket with 1008 (policy violation): it already serves as many clients as it allows (the Homey Energy Dongle two); close another app or gateway reading it")

// Open connects and starts reading messages in a goroutine of the returned
// Conn. A failed handshake says what the server answered; the end of the
// stream (a close frame, a broken connection) ends the Conn with its reason.
func (s *webSocket) Open(ctx context.Context) (Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, s.url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("connect %s: server answered HTTP %d, not a WebSocket", s.url, resp.StatusCode)
		}
		return nil, fmt.Errorf("connect %s: %w", s.url, err)
	}
	ws.SetReadLimit(wsMaxMessage)
	rctx, stop := context.WithCancel(context.Background())
	c := newStreamConn(stop)
	go func() {
		defer ws.CloseNow()
		for {
			_, b, err := ws.Read(rctx)
			if err != nil {
				if rctx.Err() == nil {
					c.fail(s.endReason(err))
				}
				return
			}
			if c.feed(rctx, b) != nil {
				return
			}
		}
	}()
	return c, nil
}

// endReason says why the stream ended, in words for the log.
func (s *webSocket) endReason(err error) error {
	switch code := websocket.CloseStatus(err); code {
	case -1:
		return fmt.Errorf("read %s: %w", s.url, err)
	case websocket.StatusPolicyViolation:
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Reason != "" {
			return fmt.Errorf("%w (reason: %q)", errTooManyClients, ce.Reason)
		}
		return errTooManyClients
	default:
		var ce websocket.CloseError
		errors.As(err, &ce)
		return fmt.Errorf("device closed the WebSocket: %d %s %q", int(code), code, ce.Reason)
	}
}
