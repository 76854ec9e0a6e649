package main

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/internal/serialtest"
	"github.com/p1logger/p1logger/sim"
)

// TestDaemonSerial: a USB P1 cable (a real pseudo-terminal behind a
// by-id-like symlink, its setting detected) → the daemon → a real InfluxDB
// 1.8: every p1 point equals a telegram the meter sent, and the gateway
// shows as a serial source in /api/v1/gateways.
func TestDaemonSerial(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	dev := serialtest.New(t)
	meter, err := sim.NewMeter(sim.MeterConfig{Name: "usb", Water: true, SolarKWp: 4})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sent []sim.Sent
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 600 {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				s := meter.Render(now)
				mu.Lock()
				sent = append(sent, s)
				mu.Unlock()
				dev.Write(s.Frame)
			}
		}
	}()
	defer func() { close(stop); <-done }()

	addr, stopDaemon := startDaemon(t, []string{
		"P1_GATEWAYS=usb=serial://" + dev.Path,
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=300ms",
		"P1_ROLLUP_INTERVAL=1s",
		"P1_IDLE_TIMEOUT=2s",
	})
	base := "http://" + addr
	var api struct {
		Gateways []struct {
			Name      string `json:"name"`
			Source    string `json:"source"`
			Address   string `json:"address"`
			Connected bool   `json:"connected"`
			Telegrams int64  `json:"telegrams"`
		} `json:"gateways"`
	}
	waitFor(t, 15*time.Second, "20 telegrams", func() bool {
		_, js := get(t, base+"/api/v1/gateways")
		return json.Unmarshal([]byte(js), &api) == nil && len(api.Gateways) == 1 && api.Gateways[0].Telegrams >= 20
	})
	if g := api.Gateways[0]; g.Name != "usb" || g.Source != "serial" || g.Address != "serial://"+dev.Path || !g.Connected {
		t.Errorf("/api/v1/gateways: %+v", g)
	}
	time.Sleep(time.Second)
	if err := stopDaemon(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	mu.Lock()
	all := append([]sim.Sent(nil), sent...)
	mu.Unlock()
	rows := byGateway(fluxRows(t, srv, bucket, "p1"))["usb"]
	if len(rows) < 5 {
		t.Fatalf("%d p1 points, want one per 300 ms cycle", len(rows))
	}
	for _, r := range rows {
		if matchRow(r, all) < 0 {
			t.Errorf("point %v equals no telegram sent", r)
		}
	}
	if got := byGateway(fluxRows(t, srv, bucket, "p1_mbus"))["usb"]; len(got) == 0 {
		t.Error("no p1_mbus point")
	}
	health := byGateway(fluxRows(t, srv, bucket, "p1_gateway"))["usb"]
	if len(health) == 0 || health[len(health)-1]["telegrams"].(int64) < 20 {
		t.Errorf("p1_gateway points: %v", health)
	}
}
