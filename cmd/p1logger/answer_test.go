package main

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p1logger/p1logger/sim"
)

// bombInflux is an InfluxDB that takes writes and pings and answers every
// query with a gzip bomb: an annotated CSV of 32 GiB, 32 MB on the wire (one
// gzip member of 8 MiB of records, repeated). A real server cannot be made
// to answer so.
type bombInflux struct {
	*httptest.Server
	queries atomic.Int64
	sent    atomic.Int64 // compressed query-answer bytes written
}

func startBombInflux(t *testing.T) *bombInflux {
	t.Helper()
	const header = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string\r\n" +
		"#group,false,false,true,true,false,false,true,true,true,true\r\n" +
		"#default,_result,,,,,,,,,\r\n" +
		",result,table,_start,_stop,_time,_value,_field,_measurement,gateway,meter_id\r\n"
	line := []byte(",,0,2026-03-01T00:00:00Z,2026-04-01T00:00:00Z,2026-03-01T00:00:05Z,1234.5,taken_t1_kwh,p1,gw1,meter\r\n")
	gz := func(b []byte) []byte {
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		return zb.Bytes()
	}
	head := gz([]byte(header))
	member := gz(bytes.Repeat(line, (8<<20)/len(line)))
	b := &bombInflux{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ping", "/api/v2/write":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/api/v2/query":
		default:
			http.NotFound(w, r)
			return
		}
		b.queries.Add(1)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(head)
		for range 4096 {
			n, err := w.Write(member)
			b.sent.Add(int64(n))
			if err != nil {
				return // the client hung up
			}
		}
	}))
	t.Cleanup(func() {
		b.CloseClientConnections()
		b.Close()
	})
	return b
}

// wireBound is well under the bomb's 32 MB and well over what 64 MiB of
// records cost compressed plus loopback socket buffers: a client that read
// the whole answer (or kept the connection open) would be above it.
const wireBound = 12 << 20

// TestReportBoundedAnswer: p1logger report stops reading a huge answer at
// the limit and says so on one line.
func TestReportBoundedAnswer(t *testing.T) {
	b := startBombInflux(t)
	code, out, errs := runReportT(t, []string{"P1_INFLUX_URL=" + b.URL, "P1_TIMEZONE=Europe/Brussels"}, "--month", "2026-03")
	want := "influx answer exceeds 67108864 bytes"
	if code != 1 || out != "" || !strings.Contains(errs, want) || strings.Count(errs, "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, want)
	}
	if sent := b.sent.Load(); sent > wireBound {
		t.Errorf("the server sent %d compressed bytes before the report hung up, want under %d", sent, wireBound)
	}
}

// TestDaemonBoundedAnswer: the daemon's rollup recovery fails on a huge
// answer with the limit's error, and keeps running.
func TestDaemonBoundedAnswer(t *testing.T) {
	b := startBombInflux(t)
	g := startSim(t, "gw1", 200*time.Millisecond, sim.Faults{})
	base, logs, stop := startDaemonLogged(t, []string{
		"P1_GATEWAYS=gw1=" + g.addr(), "P1_INFLUX_URL=" + b.URL,
		"P1_CYCLE=200ms", "P1_ROLLUP_INTERVAL=500ms",
	})
	waitFor(t, 60*time.Second, "recovery failing on the answer's size", func() bool {
		return strings.Contains(logs.String(), "influx answer exceeds 67108864 bytes")
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz answered %d after the failed recovery, want 200", code)
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if n, sent := b.queries.Load(), b.sent.Load(); sent > n*wireBound {
		t.Errorf("the server sent %d compressed bytes for %d queries, want under %d each", sent, n, wireBound)
	}
}
