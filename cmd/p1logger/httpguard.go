package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The HTTP server's bounds. The page is read by Prometheus every few
// seconds and by a browser now and then; nothing legitimate needs more.
const (
	// maxHTTPConns bounds the open HTTP connections. Each costs a goroutine
	// and a file descriptor, which gateway dials need too.
	maxHTTPConns = 64
	// httpReadHeaderTimeout bounds a request's header (slowloris); every
	// endpoint is a GET without a body, so httpReadTimeout can be short.
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	// httpWriteTimeout bounds writing an answer: /metrics and
	// /api/v1/gateways of 10,000 gateways are megabytes.
	httpWriteTimeout = 30 * time.Second
	// httpIdleTimeout closes a keep-alive connection that sends nothing
	// for this long; Prometheus scrapes far more often.
	httpIdleTimeout = 60 * time.Second
)

// requireToken serves h to requests that carry token, as a bearer token
// (Authorization: Bearer, what Prometheus sends) or as the password of HTTP
// basic authentication (what a browser asks for; any user name), and
// answers 401 to others. /healthz stays open: container health checks and
// load balancers probe it without credentials, and it tells nothing. An
// empty token serves h as it is.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	// Comparing digests keeps the comparison's time independent of the
	// token's length as well as of its contents.
	want := sha256.Sum256([]byte(token))
	ok := func(got string) bool {
		g := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(g[:], want[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		scheme, cred, _ := strings.Cut(auth, " ")
		cred = strings.TrimSpace(cred)
		granted := false
		switch strings.ToLower(scheme) {
		case "bearer":
			granted = ok(cred)
		case "basic":
			if raw, err := base64.StdEncoding.DecodeString(cred); err == nil {
				_, pass, found := strings.Cut(string(raw), ":")
				granted = found && ok(pass)
			}
		}
		if !granted {
			w.Header().Set("WWW-Authenticate", `Basic realm="p1logger", charset="UTF-8"`)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "unauthorized: this p1logger wants P1_HTTP_TOKEN as a bearer token or as the password of basic authentication\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// connLimiter bounds the connections of an http.Server: its listener
// (listen) hands out at most max open connections, and its ConnState hook
// (track) follows what each is doing. At the bound, a new connection takes
// the place of the one idle the longest (a keep-alive connection between
// requests), so that idle connections, which cost the server nothing to
// drop and their client only a reconnect, cannot lock Prometheus out; with
// none idle, the new connection is closed at once. A connection that sends
// nothing is closed by ReadHeaderTimeout.
type connLimiter struct {
	max int

	mu    sync.Mutex
	conns map[net.Conn]*connInfo
}

type connInfo struct {
	idle  bool
	since time.Time // of the last state change
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, conns: make(map[net.Conn]*connInfo, max)}
}

// listen wraps ln.
func (l *connLimiter) listen(ln net.Listener) net.Listener { return &limitedListener{ln, l} }

type limitedListener struct {
	net.Listener
	l *connLimiter
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ll.l.admit(c) {
			return c, nil
		}
		c.Close()
	}
}

// admit registers c, making room by closing the longest idle connection
// when at the bound. It reports false when there is no room.
func (l *connLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		var oldest net.Conn
		var at time.Time
		for oc, info := range l.conns {
			if info.idle && (oldest == nil || info.since.Before(at)) {
				oldest, at = oc, info.since
			}
		}
		if oldest == nil {
			return false
		}
		// The server sees the close, ends the connection and reports
		// StateClosed to track, which would delete it again: harmless.
		oldest.Close()
		delete(l.conns, oldest)
	}
	l.conns[c] = &connInfo{since: time.Now()}
	return true
}

// track is the http.Server's ConnState hook.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
		return
	}
	if info, ok := l.conns[c]; ok {
		info.idle = st == http.StateIdle
		info.since = time.Now()
	}
}
