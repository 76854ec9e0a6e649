package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const healthcheckUsage = `usage: p1logger healthcheck [--timeout 3s]

Asks the running daemon's /healthz, on the port of P1_HTTP_ADDR (default
:9188) at 127.0.0.1, or at the host P1_HTTP_ADDR names. Exits 0 when it
answers 200, else 1 with the reason on one line. Meant for a container
HEALTHCHECK: the image has no curl.
`

// runHealthcheck is "p1logger healthcheck". It exits 0 or 1 only, also on
// a bad flag: Docker reserves exit status 2 of a health check.
func runHealthcheck(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("p1logger healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stdout, healthcheckUsage)
			return 0
		}
		fmt.Fprintf(stderr, "p1logger healthcheck: %v\n", err)
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "p1logger healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 1
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "p1logger healthcheck: --timeout %s: want a positive duration\n", *timeout)
		return 1
	}
	url, err := healthzURL(environ)
	if err != nil {
		fmt.Fprintf(stderr, "p1logger healthcheck: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "p1logger healthcheck: %v\n", err)
		return 1
	}
	// No proxy: the daemon is local, and HTTP_PROXY in a container's
	// environment must not send the check elsewhere.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "p1logger healthcheck: GET %s: %v\n", url, oneLine(err.Error()))
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "p1logger healthcheck: GET %s: %s %s\n", url, resp.Status, oneLine(string(body)))
		return 1
	}
	return 0
}

// healthzURL is the daemon's /healthz as P1_HTTP_ADDR in environ places it.
func healthzURL(environ []string) (string, error) {
	addr, set := ":9188", false
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "P1_HTTP_ADDR="); ok {
			addr, set = v, true
		}
	}
	if set && addr == "" {
		return "", fmt.Errorf("P1_HTTP_ADDR is empty: the daemon serves no HTTP, so there is no /healthz to check")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !validPort(port, false) {
		return "", fmt.Errorf("P1_HTTP_ADDR: %q is not host:port with a fixed port; want e.g. :9188", addr)
	}
	// A wildcard listen address is reached on loopback; a specific one
	// only on itself.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// oneLine keeps a reason on one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
