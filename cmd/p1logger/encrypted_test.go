package main

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/dlms"
	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/sim"
)

// lockedBuffer collects the daemon's log from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// encryptedSim is a simulated Smarty: p1sim's encryption (sim.Config.Wire
// with dlms.Seal and a growing frame counter), every tamperEvery-th frame
// with one ciphertext bit flipped on the way out.
type encryptedSim struct {
	*simGateway
	mu       sync.Mutex
	clean    []sim.Sent // sent whole, not tampered with
	tampered int
}

func startEncryptedSim(t *testing.T, name, keyHex string, tamperEvery int) *encryptedSim {
	t.Helper()
	k, err := dlms.ParseKey(keyHex, "")
	if err != nil {
		t.Fatal(err)
	}
	g := &encryptedSim{simGateway: &simGateway{}}
	var counter atomic.Uint32
	// Wire runs just before OnSend on the connection's goroutine, and the
	// daemon holds one connection: last says what Wire did to the frame
	// OnSend reports.
	var last atomic.Bool
	st := [8]byte{'S', 'A', 'G', '5', 0, 0, 0, 7}
	srv, err := sim.NewServer(sim.Config{
		Interval: 100 * time.Millisecond,
		Meter:    sim.MeterConfig{Name: name, Profile: sim.ProfileBE3, SolarKWp: 4},
		LogSize:  -1,
		Wire: func(frame []byte) []byte {
			n := counter.Add(1)
			out, err := dlms.Seal(nil, k, st, n, 0x30, frame)
			if err != nil {
				panic(err)
			}
			tamper := tamperEvery > 0 && n%uint32(tamperEvery) == 0
			if tamper {
				out[40] ^= 0x10
			}
			last.Store(tamper)
			return out
		},
		OnSend: func(s sim.Sent) {
			g.mu.Lock()
			defer g.mu.Unlock()
			switch {
			case last.Load():
				g.tampered++
			case !s.BadCRC && !s.Cut && s.Written == len(s.Frame):
				g.clean = append(g.clean, s)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	g.srv = srv
	runSim(t, srv)
	return g
}

// untampered returns the telegrams sent whole and not tampered with.
func (g *encryptedSim) untampered() []sim.Sent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]sim.Sent(nil), g.clean...)
}

// TestDaemonEncrypted: a simulated Smarty with its key in P1_KEYS_FILE →
// p1logger → a real InfluxDB 1.8: every point equals a telegram sent, none a
// tampered one, and the tampered frames are counted as CRC errors. A second
// meter whose key in the file is wrong writes nothing and says why in the
// log. No key appears in the log, /api, /metrics or the status pages.
func TestDaemonEncrypted(t *testing.T) {
	const key = "D491470F47126332B07D1923B3504188"
	const otherKey = "953E7F1725EA910F26E053813A639094"
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	lux := startEncryptedSim(t, "lux", key, 4)
	wrong := startEncryptedSim(t, "wrong", otherKey, 0)
	keys := writeFile(t, "keys", "# keys from Creos\nlux="+key+"\nwrong = "+key+"\n")
	var logs lockedBuffer
	addr, stop := startDaemonTo(t, []string{
		"P1_GATEWAYS=lux=" + lux.addr() + ",wrong=" + wrong.addr(),
		"P1_KEYS_FILE=" + keys,
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=300ms",
		"P1_ROLLUP_INTERVAL=1s",
		"P1_IDLE_TIMEOUT=2s",
	}, &logs)
	base := "http://" + addr
	waitFor(t, 10*time.Second, "readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	waitFor(t, 15*time.Second, "two tampered frames counted", func() bool {
		_, m := get(t, base+"/metrics")
		return metric(t, m, `p1logger_gateway_crc_errors_total{gateway="lux"}`) >= 2
	})
	time.Sleep(1500 * time.Millisecond) // one more health interval

	_, m := get(t, base+"/metrics")
	if v := metric(t, m, `p1logger_gateway_telegrams_total{gateway="lux"}`); v < 5 {
		t.Errorf("lux: %v telegrams", v)
	}
	if v := metric(t, m, `p1logger_gateway_telegrams_total{gateway="wrong"}`); v != 0 {
		t.Errorf("wrong key: %v telegrams accepted", v)
	}
	if v := metric(t, m, `p1logger_gateway_crc_errors_total{gateway="wrong"}`); v < 5 {
		t.Errorf("wrong key: %v CRC errors, want one per frame", v)
	}
	var pages []string
	for _, path := range []string{"/metrics", "/api/v1/gateways", "/api/v1/status", "/", "/status.txt"} {
		_, body := get(t, base+path)
		pages = append(pages, path+"\n"+body)
	}

	if err := stop(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	log := logs.String()
	if !strings.Contains(log, "gateway=wrong") || !strings.Contains(log, "encrypted frame") ||
		!strings.Contains(log, "authentication failed: the tag does not match the Smarty authentication key and the decrypted bytes are not a telegram with a valid CRC: wrong key") {
		t.Errorf("no clear log line for the wrong key:\n%s", log)
	}
	for _, text := range append(pages, log) {
		for _, k := range []string{key, otherKey} {
			for _, part := range []string{k[:12], strings.ToLower(k[:12]), k[16:28]} {
				if strings.Contains(text, part) {
					t.Errorf("a key appears in %.40q…", text)
				}
			}
		}
	}

	rows := byGateway(fluxRows(t, srv, bucket, "p1"))
	sent := lux.untampered()
	lux.mu.Lock()
	tampered := lux.tampered
	lux.mu.Unlock()
	t.Logf("lux: %d sent untampered, %d tampered, %d points; wrong: %d points", len(sent), tampered, len(rows["lux"]), len(rows["wrong"]))
	if len(rows["lux"]) < 3 {
		t.Fatalf("lux: %d points", len(rows["lux"]))
	}
	for _, r := range rows["lux"] {
		if matchRow(r, sent) < 0 {
			t.Errorf("lux: point %v equals no untampered telegram sent", r)
		}
	}
	if len(rows["wrong"]) != 0 {
		t.Errorf("wrong key: %d points written", len(rows["wrong"]))
	}
	health := byGateway(fluxRows(t, srv, bucket, "p1_gateway"))
	if h := health["lux"]; len(h) == 0 || h[len(h)-1]["crc_errors"].(int64) < 2 {
		t.Errorf("lux p1_gateway points: %v", h)
	}
}
