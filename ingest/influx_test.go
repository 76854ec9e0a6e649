package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/p1logger/p1logger/ingest/spool"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/parser"
)

func TestMain(m *testing.M) { os.Exit(influxtest.Main(m)) }

func fluxRows(t *testing.T, srv *influxtest.Server, bucket, measurement string) []influxtest.Row {
	t.Helper()
	q := fmt.Sprintf(`from(bucket: %q) |> range(start: 2000-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %q)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`, bucket, measurement)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := srv.Flux(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestHTTPSinkInflux writes plain and gzip bodies to a real InfluxDB 1.8 and
// reads them back; a bad line and a missing database give the WriteErrors
// the Writer classifies.
func TestHTTPSinkInflux(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	for _, gzipMin := range []int{-1, 1} {
		sink, err := NewHTTPSink(InfluxConfig{URL: srv.URL(), Token: srv.Token(), Bucket: bucket, GzipMin: gzipMin})
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("sinktest,gz=%v v=1234.567 1700000000000000000\n", gzipMin > 0)
		if err := sink.Send(ctx, []byte(line)); err != nil {
			t.Fatalf("gzip %v: %v", gzipMin > 0, err)
		}
		if err := sink.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
	rows := fluxRows(t, srv, bucket, "sinktest")
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2: %v", len(rows), rows)
	}
	for _, r := range rows {
		if r["v"] != 1234.567 {
			t.Errorf("v = %v, want exactly 1234.567", r["v"])
		}
	}

	sink, _ := NewHTTPSink(InfluxConfig{URL: srv.URL(), Bucket: bucket})
	err := sink.Send(ctx, []byte("sinktest v=notanumber 1\n"))
	var we *WriteError
	if !errors.As(err, &we) || we.Status != 400 || we.Message == "" || Classify(err) != Drop {
		t.Errorf("bad line: got %v, want a 400 WriteError with the server's message, classified Drop", err)
	}
	sink, _ = NewHTTPSink(InfluxConfig{URL: srv.URL(), Bucket: "nosuchdb/autogen"})
	err = sink.Send(ctx, []byte("sinktest v=1 1\n"))
	if !errors.As(err, &we) || Classify(err) != Retry {
		t.Errorf("missing database: got %v, want a WriteError classified Retry", err)
	}
	t.Logf("missing database answer: %v", err)
}

// sentTelegram is one good telegram a test gateway wrote, decoded.
type sentTelegram struct {
	t *parser.Telegram
}

func decodeSent(t *testing.T, frames [][]byte) []sentTelegram {
	var out []sentTelegram
	for _, f := range frames {
		out = append(out, sentTelegram{t: mustParse(t, f)})
	}
	return out
}

// checkP1Row compares every field of an InfluxDB p1 row with the sent
// telegram carrying the same taken_t1_kwh, and returns that telegram.
func checkP1Row(t *testing.T, gw string, row influxtest.Row, sent []sentTelegram) *parser.Telegram {
	t.Helper()
	var match *parser.Telegram
	for _, s := range sent {
		if d, _ := s.t.Get(parser.TakenT1); d.Float64() == row["taken_t1_kwh"] {
			match = s.t
			break
		}
	}
	if match == nil {
		t.Errorf("%s: point at %v with taken_t1_kwh=%v matches no telegram that was sent", gw, row["_time"], row["taken_t1_kwh"])
		return nil
	}
	if row["meter_id"] != string(match.MeterID) {
		t.Errorf("%s: meter_id %v, want %q", gw, row["meter_id"], match.MeterID)
	}
	fields := 0
	for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
		d, ok := match.Get(f)
		got, present := row[f.Name()]
		if !ok {
			if present && got != nil {
				t.Errorf("%s: field %s = %v, but the telegram has none", gw, f.Name(), got)
			}
			continue
		}
		fields++
		var want any = d.Float64()
		if f.IsInteger() {
			want = d.Int
		}
		if got != want {
			t.Errorf("%s: field %s = %v (%T), want %v (%T)", gw, f.Name(), got, got, want, want)
		}
	}
	if fields < 20 {
		t.Errorf("%s: only %d fields compared", gw, fields)
	}
	return match
}

// TestPipelineInflux runs the whole pipeline — real TCP gateways, Readers,
// Batcher, Writer, HTTPSink — into a real InfluxDB 1.8, with one clean and
// one faulty gateway (garbage, cut frames, bad CRCs, disconnects), and reads
// every point back with Flux.
func TestPipelineInflux(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	start := time.Now()

	clean := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		for i := 0; i < 1000; i++ {
			f := belgian(i, time.Now())
			gw.record(f) // before the write: the reader may store it at once
			if _, err := c.Write(f); err != nil {
				return
			}
			time.Sleep(70 * time.Millisecond)
		}
	})
	faulty := startGateway(t, func(gw *gateway, c net.Conn, n int) {
		r := rand.New(rand.NewPCG(uint64(n), 3))
		// Seven frames per connection, then a hang-up.
		for i := range 7 {
			seq := 5000 + n*7 + i
			f := belgian(seq, time.Now())
			var err error
			switch r.IntN(4) {
			case 0:
				gw.record(f)
				_, err = c.Write(f)
			case 1:
				c.Write(noise(r, 50))
				_, err = c.Write(badCRC(f))
			case 2:
				_, err = c.Write(f[:1+r.IntN(len(f)-10)])
			case 3:
				_, err = c.Write(badCRC(f))
			}
			if err != nil {
				return
			}
			time.Sleep(60 * time.Millisecond)
		}
	})

	gws := []*Gateway{tcpGateway("clean", clean.addr()), tcpGateway("faulty", faulty.addr())}
	sink, err := NewHTTPSink(InfluxConfig{URL: srv.URL(), Token: srv.Token(), Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger(t)
	w := NewWriter(WriterConfig{Logger: log}, spool.NewMemBuffer(8<<20, 1<<20, log), sink)
	bt := NewBatcher(BatcherConfig{Cycle: 250 * time.Millisecond, HealthInterval: 500 * time.Millisecond,
		Location: brussels, Logger: log}, gws, w, nil)
	stopWriter := runInBackground(t, w.Run)
	stopBatcher := runInBackground(t, bt.Run)
	var stopReaders []func()
	for _, g := range gws {
		stopReaders = append(stopReaders, runInBackground(t, fastReader(t, g, 2*time.Second).Run))
	}
	time.Sleep(3 * time.Second)
	for _, s := range stopReaders {
		s()
	}
	stopBatcher()
	stopWriter()
	if s := w.Stats(); s.Points == 0 || s.WriteErrors != 0 || s.BufferedBytes != 0 {
		t.Fatalf("writer stats %+v", s)
	}

	rows := fluxRows(t, srv, bucket, "p1")
	byGW := map[string][]influxtest.Row{}
	for _, r := range rows {
		byGW[r["gateway"].(string)] = append(byGW[r["gateway"].(string)], r)
	}
	cleanSent := decodeSent(t, clean.sentFrames())
	faultySent := decodeSent(t, faulty.sentFrames())
	cycles := bt.Stats().Cycles
	t.Logf("%d cycles; clean sent %d, faulty sent %d good; points: clean %d, faulty %d",
		cycles, len(cleanSent), len(faultySent), len(byGW["clean"]), len(byGW["faulty"]))

	// Clean: one point per cycle (the final flush may add one, the first
	// cycle may precede the first telegram), each equal to a sent telegram.
	if n := int64(len(byGW["clean"])); n < cycles-2 || n > cycles+1 {
		t.Errorf("clean gateway has %d points for %d cycles", n, cycles)
	}
	seen := map[any]bool{}
	for _, r := range byGW["clean"] {
		checkP1Row(t, "clean", r, cleanSent)
		if seen[r["taken_t1_kwh"]] {
			t.Errorf("clean: telegram with taken_t1_kwh=%v written twice", r["taken_t1_kwh"])
		}
		seen[r["taken_t1_kwh"]] = true
		if at := r["_time"].(time.Time); at.Before(start) || at.After(time.Now()) {
			t.Errorf("clean: point time %v outside the test", at)
		}
	}
	// Faulty: every point equals a good telegram; none carries a value of a
	// corrupted one (badCRC turns taken_t1 into 900301.x).
	if len(byGW["faulty"]) == 0 {
		t.Error("faulty gateway: no point at all")
	}
	for _, r := range byGW["faulty"] {
		if v, _ := r["taken_t1_kwh"].(float64); v >= 900000 {
			t.Errorf("faulty: a corrupted telegram reached InfluxDB: %v", r)
		}
		checkP1Row(t, "faulty", r, faultySent)
	}

	// p1_mbus: each point is a capture that was sent, gas and water.
	mbus := fluxRows(t, srv, bucket, "p1_mbus")
	kinds := map[string]int{}
	for _, r := range mbus {
		kinds[r["kind"].(string)]++
		found := false
		for _, s := range append(cleanSent, faultySent...) {
			for _, m := range s.t.MBus {
				if m.Time.Equal(r["_time"].(time.Time)) && m.Value.Float64() == r["value"] &&
					string(m.ID) == r["meter_id"] && fmt.Sprint(m.Channel) == r["channel"] {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("p1_mbus point %v matches no capture that was sent", r)
		}
	}
	if kinds["gas"] < 2 || kinds["water"] != 2 { // water: one old capture per gateway
		t.Errorf("p1_mbus kinds %v, want several gas captures and one water per gateway", kinds)
	}

	// p1_peak: the three history months and the current one, per gateway.
	peaks := fluxRows(t, srv, bucket, "p1_peak")
	months := map[string][]string{}
	for _, r := range peaks {
		gw := r["gateway"].(string)
		months[gw] = append(months[gw], r["_time"].(time.Time).In(brussels).Format("2006-01"))
		if _, err := time.Parse(time.RFC3339, r["peak_at"].(string)); err != nil {
			t.Errorf("peak_at %v: %v", r["peak_at"], err)
		}
	}
	now := time.Now().In(brussels).Format("2006-01")
	for _, gw := range []string{"clean", "faulty"} {
		sort.Strings(months[gw])
		if got, want := fmt.Sprint(months[gw]), fmt.Sprint([]string{"2023-08", "2023-09", "2023-10", now}); got != want {
			t.Errorf("%s: peak months %s, want %s", gw, got, want)
		}
	}

	// p1_gateway: the faulty gateway's errors and reconnects are visible.
	health := fluxRows(t, srv, bucket, "p1_gateway")
	last := map[string]influxtest.Row{}
	cleanUp := false
	for _, r := range health {
		gw := r["gateway"].(string)
		last[gw] = r
		if gw == "clean" {
			cleanUp = cleanUp || r["connected"] == true
			if r["crc_errors"].(int64) != 0 || r["parse_errors"].(int64) != 0 {
				t.Errorf("clean gateway health %v", r)
			}
		}
	}
	if r := last["faulty"]; r == nil || r["crc_errors"].(int64) == 0 || r["parse_errors"].(int64) == 0 || r["reconnects"].(int64) == 0 {
		t.Errorf("faulty gateway health %v, want crc and parse errors and reconnects", r)
	}
	// The last point may fall between the readers' stop and the Batcher's.
	if r := last["clean"]; r == nil || r["telegrams"].(int64) == 0 || !cleanUp {
		t.Errorf("clean gateway health %v, want telegrams and a connected point", r)
	}
}

// TestHTTPSinkGzipDefault: by default bodies of 4 KiB and more are
// compressed, except for an InfluxDB on this machine.
func TestHTTPSinkGzipDefault(t *testing.T) {
	for _, c := range []struct {
		url  string
		want int
	}{
		{"http://127.0.0.1:8086", -1},
		{"http://127.3.4.5:8086", -1},
		{"http://[::1]:8086", -1},
		{"http://[::ffff:127.0.0.1]:8086", -1},
		{"http://localhost:8086", -1},
		{"http://LocalHost.:8086", -1},
		{"http://influx.localhost", -1},
		{"http://influxdb:8086", 4096},
		{"https://eu-central-1-1.aws.cloud2.influxdata.com", 4096},
		{"http://192.168.1.10:8086", 4096},
		{"http://[fe80::1]:8086", 4096},
		{"http://localhost.example.com:8086", 4096},
	} {
		s, err := NewHTTPSink(InfluxConfig{URL: c.url, Bucket: "b"})
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if s.gzipMin != c.want {
			t.Errorf("%s: gzipMin %d, want %d", c.url, s.gzipMin, c.want)
		}
	}
	// An explicit GzipMin wins, loopback or not.
	if s, _ := NewHTTPSink(InfluxConfig{URL: "http://127.0.0.1:8086", Bucket: "b", GzipMin: 100}); s.gzipMin != 100 {
		t.Errorf("explicit GzipMin 100 on loopback: %d", s.gzipMin)
	}

	// On the wire: a 10 KB batch to a loopback server goes uncompressed.
	var enc atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc.Store(fmt.Sprintf("%s|%d", r.Header.Get("Content-Encoding"), r.ContentLength))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s, err := NewHTTPSink(InfluxConfig{URL: srv.URL, Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	batch := bytes.Repeat([]byte("m v=1 1700000000000000000\n"), 400)
	if err := s.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if got, want := enc.Load(), fmt.Sprintf("|%d", len(batch)); got != want {
		t.Errorf("encoding|length %q, want %q", got, want)
	}
}
