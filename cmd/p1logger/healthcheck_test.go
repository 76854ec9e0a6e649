package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveLoopback serves h on a loopback port until the test ends and returns
// the port.
func serveLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func runHealthcheckT(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"healthcheck"}, args...), env, nil, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHealthcheck(t *testing.T) {
	// The daemon's own handler: /healthz answers 200.
	healthy := serveLoopback(t, (&status{started: time.Now()}).handler())
	// A server that answers but is not healthy, one that never answers,
	// and a port where nothing listens.
	sick := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "shutting down\nsecond line", http.StatusServiceUnavailable)
	}))
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	hung := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closed, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()

	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want string // in stderr; empty: stderr empty
	}{
		{"healthy, wildcard address", []string{"P1_HTTP_ADDR=:" + healthy}, nil, 0, ""},
		{"healthy, 0.0.0.0", []string{"P1_HTTP_ADDR=0.0.0.0:" + healthy}, nil, 0, ""},
		{"healthy, loopback address", []string{"P1_HTTP_ADDR=127.0.0.1:" + healthy}, nil, 0, ""},
		{"503", []string{"P1_HTTP_ADDR=:" + sick}, nil, 1,
			"GET http://127.0.0.1:" + sick + "/healthz: 503 Service Unavailable shutting down second line"},
		{"nothing listens", []string{"P1_HTTP_ADDR=:" + closed}, nil, 1, "connection refused"},
		{"no answer", []string{"P1_HTTP_ADDR=:" + hung}, []string{"--timeout", "300ms"}, 1, "deadline exceeded"},
		{"HTTP disabled", []string{"P1_HTTP_ADDR="}, nil, 1, "P1_HTTP_ADDR is empty"},
		{"port 0", []string{"P1_HTTP_ADDR=:0"}, nil, 1, `P1_HTTP_ADDR: ":0" is not host:port with a fixed port`},
		{"bad address", []string{"P1_HTTP_ADDR=9188"}, nil, 1, `P1_HTTP_ADDR: "9188" is not host:port`},
		// Docker reserves exit status 2 of a health check: bad usage is 1.
		{"bad flag", []string{"P1_HTTP_ADDR=:" + healthy}, []string{"--bogus"}, 1, "flag provided but not defined"},
		{"bad timeout", []string{"P1_HTTP_ADDR=:" + healthy}, []string{"--timeout", "-1s"}, 1, "--timeout -1s"},
		{"argument", []string{"P1_HTTP_ADDR=:" + healthy}, []string{"now"}, 1, `unexpected argument "now"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := runHealthcheckT(t, c.env, c.args...)
			if code != c.code || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d", code, out, errs, c.code)
			}
			if c.want == "" && errs != "" || c.want != "" && (!strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1) {
				t.Errorf("stderr %q, want one line with %q", errs, c.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestHealthzURL(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "http://127.0.0.1:9188/healthz"}, // DESIGN.md's default
		{[]string{"P1_HTTP_ADDR=:8080"}, "http://127.0.0.1:8080/healthz"},
		{[]string{"P1_HTTP_ADDR=[::]:8080"}, "http://127.0.0.1:8080/healthz"},
		{[]string{"P1_HTTP_ADDR=192.0.2.7:8080"}, "http://192.0.2.7:8080/healthz"},
		{[]string{"P1_HTTP_ADDR=[::1]:8080"}, "http://[::1]:8080/healthz"},
		{[]string{"P1_HTTP_ADDR=localhost:8080"}, "http://localhost:8080/healthz"},
	} {
		if got, err := healthzURL(c.env); err != nil || got != c.want {
			t.Errorf("%v: %q %v, want %q", c.env, got, err, c.want)
		}
	}
}
