package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/internal/mosquittotest"
	"github.com/p1logger/p1logger/sim"
)

// sentStore records what a message-based simulator sent.
type sentStore struct {
	mu   sync.Mutex
	sent []sim.Sent
}

func (s *sentStore) add(x sim.Sent) {
	s.mu.Lock()
	s.sent = append(s.sent, x)
	s.mu.Unlock()
}

func (s *sentStore) all() []sim.Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sim.Sent(nil), s.sent...)
}

// runFor runs f(ctx) until the test ends.
func runFor(t *testing.T, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("simulator: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("simulator did not stop")
		}
	})
}

// syncLog collects the daemon's log, to check that no secret is in it.
type syncLog struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sourceCase is one kind of source for TestSourcesEndToEnd.
type sourceCase struct {
	name    string
	kind    string // in /api/v1/gateways
	secret  string // must appear nowhere the daemon shows
	start   func(t *testing.T, store *sentStore) (address, shown string)
	restart func() // mid-run outage of the source, if the case has one
}

// TestSourcesEndToEnd runs each message-based kind from its emulation
// through the daemon into a real InfluxDB 1.8: every point written equals a
// telegram sent, the gateway shows its kind and its address without secrets,
// and no secret appears in the log, /api, /metrics or the status page.
func TestSourcesEndToEnd(t *testing.T) {
	srv := influxtest.Shared(t)
	dir := t.TempDir()
	secretFile := func(name, secret string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var broker *mosquittotest.Broker
	cases := []sourceCase{
		{name: "homewizard-v1", kind: "homewizard", start: func(t *testing.T, st *sentStore) (string, string) {
			h, err := sim.NewHomeWizard(sim.HomeWizardConfig{FeedConfig: sim.FeedConfig{Interval: 300 * time.Millisecond,
				Meter: sim.MeterConfig{Name: "hw1", Water: true}, OnSend: st.add}})
			if err != nil {
				t.Fatal(err)
			}
			runFor(t, h.Run)
			a := "homewizard://" + h.Addr().String()
			return a + "?interval=200ms", a
		}},
		{name: "homewizard-v2", kind: "homewizard", secret: "HWTOKEN-5f2c9a1e7b3d4c6a8e0f1a2b3c4d5e6f", start: func(t *testing.T, st *sentStore) (string, string) {
			const token = "HWTOKEN-5f2c9a1e7b3d4c6a8e0f1a2b3c4d5e6f"
			h, err := sim.NewHomeWizard(sim.HomeWizardConfig{API: 2, Token: token, FirstAfter: time.Second,
				FeedConfig: sim.FeedConfig{Interval: 300 * time.Millisecond, Meter: sim.MeterConfig{Name: "hw2"}, OnSend: st.add}})
			if err != nil {
				t.Fatal(err)
			}
			runFor(t, h.Run)
			a := "homewizards://" + h.Addr().String()
			return a + "?interval=200ms&token_file=" + secretFile("hwtoken", token) + "&cert_sha256=" + h.CertSHA256(), a
		}},
		{name: "mqtt-tasmota", kind: "mqtt", secret: "MQTTPW-9d8c7b6a5f4e", start: func(t *testing.T, st *sentStore) (string, string) {
			const pw = "MQTTPW-9d8c7b6a5f4e"
			broker = mosquittotest.Start(t, mosquittotest.Config{User: "p1", Password: pw})
			p, err := sim.NewMQTT(sim.MQTTConfig{Broker: broker.URL(), Topic: "tele/meter/RESULT", User: "p1", Password: pw, Tasmota: true, Split: 200,
				FeedConfig: sim.FeedConfig{Interval: 300 * time.Millisecond, Meter: sim.MeterConfig{Name: "mq", Water: true}, OnSend: st.add}})
			if err != nil {
				t.Fatal(err)
			}
			runFor(t, p.Run)
			a := "mqtt://p1@" + broker.Addr() + "/tele/meter/RESULT"
			return a + "?password_file=" + secretFile("mqttpw", pw), a
		}, restart: func() { broker.Restart(500 * time.Millisecond) }},
		{name: "websocket", kind: "websocket", start: func(t *testing.T, st *sentStore) (string, string) {
			w, err := sim.NewWebSocket(sim.WebSocketConfig{Split: 100,
				FeedConfig: sim.FeedConfig{Interval: 300 * time.Millisecond, Meter: sim.MeterConfig{Name: "ws"}, OnSend: st.add}})
			if err != nil {
				t.Fatal(err)
			}
			runFor(t, w.Run)
			return w.URL(), w.URL()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := srv.NewBucket(t)
			var store sentStore
			address, shown := tc.start(t, &store)
			logw := &syncLog{t: t}
			addr, stop := startDaemonTo(t, []string{
				"P1_GATEWAYS=meter=" + address,
				"P1_INFLUX_URL=" + srv.URL(),
				"P1_INFLUX_BUCKET=" + bucket,
				"P1_CYCLE=400ms",
				"P1_ROLLUP_INTERVAL=1s",
				"P1_IDLE_TIMEOUT=3s",
			}, logw)
			base := "http://" + addr
			telegrams := func() float64 {
				_, m := get(t, base+"/metrics")
				return metric(t, m, `p1logger_gateway_telegrams_total{gateway="meter"}`)
			}
			waitFor(t, 15*time.Second, "telegrams", func() bool { return telegrams() >= 4 })
			if tc.restart != nil {
				tc.restart()
				before := telegrams()
				waitFor(t, 20*time.Second, "telegrams after the restart", func() bool { return telegrams() >= before+4 })
				_, m := get(t, base+"/metrics")
				if v := metric(t, m, `p1logger_gateway_reconnects_total{gateway="meter"}`); v < 1 {
					t.Errorf("reconnects = %v after a broker restart, want at least 1", v)
				}
			}

			code, js := get(t, base+"/api/v1/gateways")
			var api struct {
				Gateways []struct {
					Name, Source, Address string
					Connected             bool
				} `json:"gateways"`
			}
			if err := json.Unmarshal([]byte(js), &api); code != 200 || err != nil || len(api.Gateways) != 1 {
				t.Fatalf("/api/v1/gateways: %d %v\n%s", code, err, js)
			}
			if g := api.Gateways[0]; g.Source != tc.kind || g.Address != shown || !g.Connected {
				t.Errorf("/api/v1/gateways: %+v; want source %q, address %q, connected", g, tc.kind, shown)
			}
			_, metrics := get(t, base+"/metrics")
			_, page := get(t, base+"/")
			_, status := get(t, base+"/api/v1/status")
			if err := stop(); err != nil {
				t.Fatalf("daemon: %v", err)
			}
			if tc.secret != "" {
				for what, text := range map[string]string{"log": logw.String(), "/api/v1/gateways": js, "/metrics": metrics,
					"status page": page, "/api/v1/status": status} {
					if strings.Contains(text, tc.secret) {
						t.Errorf("the secret appears in %s", what)
					}
				}
			}

			rows := byGateway(fluxRows(t, srv, bucket, "p1"))["meter"]
			sent := store.all()
			t.Logf("%d telegrams sent, %d points", len(sent), len(rows))
			if len(rows) < 3 {
				t.Fatalf("%d points, want at least 3", len(rows))
			}
			for _, r := range rows {
				if matchRow(r, sent) < 0 {
					t.Errorf("point %v equals no telegram sent", r)
				}
			}
		})
	}
}

// gatewayState returns the one gateway of /api/v1/gateways.
func gatewayState(t *testing.T, base string) map[string]any {
	t.Helper()
	_, js := get(t, base+"/api/v1/gateways")
	var api struct {
		Gateways []map[string]any `json:"gateways"`
	}
	if err := json.Unmarshal([]byte(js), &api); err != nil || len(api.Gateways) != 1 {
		t.Fatalf("/api/v1/gateways: %v\n%s", err, js)
	}
	return api.Gateways[0]
}

// TestWebSocketDongleFull: a dongle that already serves its clients closes
// p1logger's connection with 1008; the gateway shows the reason, is
// disconnected, and is redialled with backoff (not in a loop); once a place
// is free, readings arrive.
func TestWebSocketDongleFull(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	var store sentStore
	w, err := sim.NewWebSocket(sim.WebSocketConfig{MaxClients: 1,
		FeedConfig: sim.FeedConfig{Interval: 300 * time.Millisecond, Meter: sim.MeterConfig{Name: "full"}, OnSend: store.add}})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, w.Run)
	// Another app holds the only place.
	other, err := source.Parse(w.URL(), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oc, err := other.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := startDaemon(t, []string{
		"P1_GATEWAYS=meter=" + w.URL(),
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=400ms",
	})
	base := "http://" + addr
	waitFor(t, 10*time.Second, "a refusal", func() bool { return w.Refused() >= 2 })
	g := gatewayState(t, base)
	if msg, _ := g["last_error"].(string); !strings.Contains(msg, "1008") || !strings.Contains(msg, "as many clients as it allows") {
		t.Errorf("last_error = %q, want the 1008 explained", msg)
	}
	time.Sleep(2 * time.Second)
	// Backoff from 1 s doubling (±50%): a handful of attempts in ~3 s, not
	// hundreds.
	if n := w.Refused(); n > 6 {
		t.Errorf("%d refused connections within about 3 s: no backoff", n)
	}
	oc.Close()
	waitFor(t, 90*time.Second, "telegrams once a place is free", func() bool {
		_, m := get(t, base+"/metrics")
		return metric(t, m, `p1logger_gateway_telegrams_total{gateway="meter"}`) >= 3
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rows := byGateway(fluxRows(t, srv, bucket, "p1"))["meter"]
	if len(rows) == 0 {
		t.Fatal("no point once the dongle had a place")
	}
	for _, r := range rows {
		if matchRow(r, store.all()) < 0 {
			t.Errorf("point %v equals no telegram sent", r)
		}
	}
}

// TestHomeWizardNoCRC: old firmware's CRC-less telegrams from a DSMR 2.2
// meter are written; from a DSMR 5 meter they count as parse errors with the
// reason, and nothing is written.
func TestHomeWizardNoCRC(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	var old, dsmr5 sentStore
	start := func(name string, p sim.Profile, st *sentStore) string {
		h, err := sim.NewHomeWizard(sim.HomeWizardConfig{NoCRC: true,
			FeedConfig: sim.FeedConfig{Interval: 300 * time.Millisecond, Meter: sim.MeterConfig{Name: name, Profile: p}, OnSend: st.add}})
		if err != nil {
			t.Fatal(err)
		}
		runFor(t, h.Run)
		return "homewizard://" + h.Addr().String() + "?interval=200ms"
	}
	logw := &syncLog{t: t}
	addr, stop := startDaemonTo(t, []string{
		"P1_GATEWAYS=old=" + start("old", sim.ProfileNL22, &old) + ",new=" + start("new", sim.ProfileNL5, &dsmr5),
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=400ms",
	}, logw)
	base := "http://" + addr
	waitFor(t, 15*time.Second, "telegrams and parse errors", func() bool {
		_, m := get(t, base+"/metrics")
		return metric(t, m, `p1logger_gateway_telegrams_total{gateway="old"}`) >= 3 &&
			metric(t, m, `p1logger_gateway_parse_errors_total{gateway="new"}`) >= 3
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logw.String(), `requires a CRC after \"!\"; none was sent`) {
		t.Error("the log does not say that the DSMR 5 telegram lacks its CRC")
	}
	rows := byGateway(fluxRows(t, srv, bucket, "p1"))
	if len(rows["new"]) != 0 {
		t.Errorf("%d points from CRC-less DSMR 5 telegrams, want none", len(rows["new"]))
	}
	if len(rows["old"]) < 2 {
		t.Fatalf("%d points from the DSMR 2.2 meter, want at least 2", len(rows["old"]))
	}
	for _, r := range rows["old"] {
		if matchRow(r, old.all()) < 0 {
			t.Errorf("point %v equals no telegram sent", r)
		}
	}
}
