package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/sim"
)

// TestRequireToken: with a token, every path but /healthz needs it, as a
// bearer token or as a basic-auth password; without one, everything is open.
func TestRequireToken(t *testing.T) {
	const token = "s3cret-Token"
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served "+r.URL.Path)
	})
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	creds := []struct {
		name, auth string
		granted    bool
	}{
		{"none", "", false},
		{"bearer", "Bearer " + token, true},
		{"bearer lower case", "bearer " + token, true},
		{"bearer wrong", "Bearer s3cret-Toke", false},
		{"bearer longer", "Bearer " + token + "x", false},
		{"bearer empty", "Bearer ", false},
		{"basic", basic("admin", token), true},
		{"basic no user", basic("", token), true},
		{"basic wrong password", basic("admin", "nope"), false},
		{"basic token as user", basic(token, ""), false},
		{"basic no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte(token)), false},
		{"basic not base64", "Basic %%%", false},
		{"influx scheme", "Token " + token, false},
		{"token alone", token, false},
	}
	paths := []string{"/", "/status.txt", "/api/v1/status", "/api/v1/gateways", "/metrics", "/readyz", "/debug/pprof/", "/nowhere", "/healthz/", "//healthz"}
	srv := httptest.NewServer(requireToken(token, inner))
	defer srv.Close()
	open := httptest.NewServer(requireToken("", inner))
	defer open.Close()
	do := func(base, path, auth string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
	}
	for _, path := range paths {
		for _, c := range creds {
			code, challenge, body := do(srv.URL, path, c.auth)
			if c.granted {
				if code != http.StatusOK || body != "served "+path {
					t.Errorf("%s with %s: %d %q, want 200 served", path, c.name, code, body)
				}
				continue
			}
			if code != http.StatusUnauthorized || !strings.HasPrefix(challenge, `Basic realm="p1logger"`) || strings.Contains(body, "served") {
				t.Errorf("%s with %s: %d, WWW-Authenticate %q, body %q; want 401 with a basic challenge", path, c.name, code, challenge, body)
			}
			if strings.Contains(body, token) {
				t.Errorf("%s with %s: the answer shows the token", path, c.name)
			}
		}
		// Without a token configured, nothing is asked.
		if code, _, body := do(open.URL, path, ""); code != http.StatusOK || body != "served "+path {
			t.Errorf("no token: %s: %d %q, want 200", path, code, body)
		}
	}
	// /healthz is open, with or without (even wrong) credentials.
	for _, c := range creds {
		if code, _, body := do(srv.URL, "/healthz", c.auth); code != http.StatusOK || body != "served /healthz" {
			t.Errorf("/healthz with %s: %d %q, want 200", c.name, code, body)
		}
	}
}

// serveGuarded runs serveHTTP on a loopback listener until the test ends.
func serveGuarded(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, h, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serveHTTP: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serveHTTP did not stop")
		}
	})
	return ln.Addr().String()
}

// TestHTTPConnLimit opens 5,000 keep-alive connections over loopback, each
// served one request and then left idle, as the attack of issue 11 did:
// the server keeps at most maxHTTPConns of them (goroutines stay bounded),
// every client still got its answer, and a new client is served.
func TestHTTPConnLimit(t *testing.T) {
	const n = 5000
	addr := serveGuarded(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	base := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	answered := 0
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: p1logger\r\n\r\n"); err != nil {
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			answered++
		}
	}
	if len(conns) != n {
		t.Fatalf("opened %d connections in 2 minutes, want %d", len(conns), n)
	}
	// Each new client made room by closing the longest idle one.
	if answered != n {
		t.Errorf("%d of %d clients got their answer, want all", answered, n)
	}
	// Server side, a connection costs a goroutine or two; the closed ones'
	// goroutines end shortly after.
	bound := base + 2*maxHTTPConns + 20
	waitFor(t, 10*time.Second, "the server's goroutines to drop under the bound", func() bool {
		return runtime.NumGoroutine() <= bound
	})
	// Client side: a connection the server still holds times out on Read,
	// one it closed reads EOF.
	// Each gets its own deadline: one shared deadline passes while the loop
	// is still running on a busy machine, and a Read past its deadline
	// times out without looking for the EOF. The closed ones answer at once,
	// so this takes about maxHTTPConns × 100 ms.
	stillOpen := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			stillOpen++
		}
	}
	if stillOpen > maxHTTPConns || stillOpen == 0 {
		t.Errorf("the server keeps %d of %d idle connections, want between 1 and %d", stillOpen, n, maxHTTPConns)
	}
	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("a new client after the flood: %d %q, want 200", code, body)
	}
}

// TestHTTPSlowHeader: a connection that never finishes its request header
// is closed (ReadHeaderTimeout), rather than held like the idle ones.
func TestHTTPSlowHeader(t *testing.T) {
	t.Parallel()
	addr := serveGuarded(t, http.NotFoundHandler())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: p1")
	c.SetReadDeadline(time.Now().Add(3 * httpReadHeaderTimeout))
	_, err = io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a request header unfinished for %s is still open, want it closed after %s", 3*httpReadHeaderTimeout, httpReadHeaderTimeout)
	}
}

func TestAllInterfaces(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{":9188", true}, {"0.0.0.0:9188", true}, {"[::]:9188", true},
		{"127.0.0.1:9188", false}, {"[::1]:9188", false}, {"192.168.1.5:9188", false}, {"localhost:9188", false},
	} {
		if got := allInterfaces(tt.addr); got != tt.want {
			t.Errorf("allInterfaces(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// getAuth is get with an Authorization header.
func getAuth(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonHTTPToken runs the daemon with P1_HTTP_TOKEN_FILE and an
// InfluxDB URL holding a password: the pages need the token (Prometheus's
// bearer, a browser's basic auth), /healthz and p1logger healthcheck do
// not, and the password shows in no log line and no page.
func TestDaemonHTTPToken(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	g := startSim(t, "home", 200*time.Millisecond, sim.Faults{})
	const token, password = "scrape-Token-1", "influxPassw0rd"
	influxURL := strings.Replace(srv.URL(), "http://", "http://admin:"+password+"@", 1)
	base, logs, stop := startDaemonLogged(t, []string{
		"P1_GATEWAYS=home=" + g.addr(),
		"P1_INFLUX_URL=" + influxURL,
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_HTTP_TOKEN_FILE=" + writeFile(t, "http-token", token+"\n"),
		"P1_CYCLE=200ms", "P1_ROLLUP_INTERVAL=500ms",
	})
	bearer := "Bearer " + token
	waitFor(t, 10*time.Second, "readyz 200", func() bool { code, _ := getAuth(t, base+"/readyz", bearer); return code == 200 })
	basicAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("me:"+token))
	var pages []string
	for _, path := range []string{"/", "/status.txt", "/api/v1/status", "/api/v1/gateways", "/metrics", "/readyz"} {
		if code, _ := getAuth(t, base+path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
		if code, _ := getAuth(t, base+path, "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
		code, body := getAuth(t, base+path, bearer)
		if code != http.StatusOK {
			t.Errorf("%s with the bearer token: %d, want 200", path, code)
		}
		pages = append(pages, body)
		if code, _ := getAuth(t, base+path, basicAuth); code != http.StatusOK {
			t.Errorf("%s with basic auth: %d, want 200", path, code)
		}
	}
	if code, body := getAuth(t, base+"/healthz", ""); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz without the token: %d %q, want 200 ok", code, body)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if code, _, errs := runHealthcheckT(t, []string{"P1_HTTP_ADDR=127.0.0.1:" + port, "P1_HTTP_TOKEN=" + token}); code != 0 {
		t.Errorf("p1logger healthcheck: exit %d, %s", code, errs)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, p := range append(pages, logs.String()) {
		if strings.Contains(p, password) {
			t.Errorf("the InfluxDB password shows in page or log %d:\n%s", i, p)
		}
	}
	if !strings.Contains(logs.String(), "influx_url=http://admin:xxxxx@127.0.0.1:") {
		t.Errorf("the start line does not show the redacted URL:\n%s", logs)
	}
	if strings.Contains(logs.String(), "without P1_HTTP_TOKEN") {
		t.Errorf("warned about an open page with a token and a loopback address")
	}
}

// TestDaemonOpenWarning: listening on all interfaces without a token is
// allowed (the default), with a warning at start.
func TestDaemonOpenWarning(t *testing.T) {
	srv := influxtest.Shared(t)
	_, logs, stop := startDaemonLogged(t, []string{
		"P1_GATEWAYS=home=127.0.0.1:1", "P1_INFLUX_URL=" + srv.URL(), "P1_HTTP_ADDR=:0",
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"the status page listens on all interfaces without P1_HTTP_TOKEN") {
		t.Errorf("no warning about the open page:\n%s", logs)
	}
}
