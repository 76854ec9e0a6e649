package main

import (
	"net"
	"net/http"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/p1logger/p1logger/internal/answerlimit"
)

// newQueryClient returns the InfluxDB client that p1logger reads with
// (rollup recovery, p1logger report). Every answer goes through
// answerlimit.Transport with maxAnswer: the library reads a QueryRaw answer
// whole, so an unbounded answer is unbounded memory. The transport's other
// settings are the library's own defaults; timeout bounds one request.
func newQueryClient(url, token string, timeout time.Duration, maxAnswer int64) influxdb2.Client {
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
	}
	hc := &http.Client{Timeout: timeout, Transport: answerlimit.Transport(base, maxAnswer)}
	return influxdb2.NewClientWithOptions(url, token, influxdb2.DefaultOptions().SetHTTPClient(hc))
}
