package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/sim"
)

// TestStartWithoutInflux: p1logger with P1_SPOOL_DIR is stopped, InfluxDB
// is stopped too, and p1logger started again: /api/v1/status shows today's
// and this month's totals from the rollup's state file, as they were at the
// stop, while InfluxDB is still down (without the file they stay empty for
// the whole outage: recovery needs InfluxDB).
func TestStartWithoutInflux(t *testing.T) {
	srv := influxtest.New(t)
	bucket := srv.NewBucket(t)
	addr, stopSim := startStoppableSim(t, "home", sim.ProfileBE3, 200*time.Millisecond, false)
	dir := t.TempDir()
	env := []string{
		"P1_GATEWAYS=home=" + addr,
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_SPOOL_DIR=" + dir,
		"P1_CYCLE=500ms",
		"P1_ROLLUP_INTERVAL=1s",
		"P1_IDLE_TIMEOUT=2s",
	}
	base, _, stop := startDaemonLogged(t, env)
	waitFor(t, 30*time.Second, "today's and this month's energy", func() bool {
		g := liveByName(apiLive(t, base))["home"]
		return g.Today != nil && g.Month != nil && g.Today.Values["taken_kwh"] > 0
	})
	// No more readings: what the restarted daemon shows can only come
	// from the state file.
	stopSim()
	time.Sleep(time.Second)
	last := liveByName(apiLive(t, base))["home"]
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "rollup.state")); err != nil || fi.Size() == 0 {
		t.Fatalf("state file after the stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	base, logs, stop := startDaemonLogged(t, env)
	defer stop()
	waitFor(t, 10*time.Second, "totals from the state file", func() bool {
		g := liveByName(apiLive(t, base))["home"]
		return g.Today != nil && g.Month != nil
	})
	g := liveByName(apiLive(t, base))["home"]
	for _, f := range []string{"taken_kwh", "injected_kwh", "taken_t1_kwh", "taken_t2_kwh"} {
		// The stop's last rollup may have taken a reading more than the
		// page showed before it; never fewer.
		if g.Today.Values[f] < last.Today.Values[f] || g.Month.Values[f] < last.Month.Values[f] {
			t.Errorf("%s after the restart: today %v month %v, before it %v %v", f,
				g.Today.Values[f], g.Month.Values[f], last.Today.Values[f], last.Month.Values[f])
		}
	}
	if !g.Today.Start.Equal(last.Today.Start) || !g.Month.Start.Equal(last.Month.Start) {
		t.Errorf("periods %v %v, before %v %v", g.Today.Start, g.Month.Start, last.Today.Start, last.Month.Start)
	}
	if !strings.Contains(logs.String(), "local rollup state read") || !strings.Contains(logs.String(), "clean_stop=true") {
		t.Errorf("the log does not say the state of a clean stop was read")
	}
	if strings.Contains(logs.String(), "recovery from InfluxDB failed") {
		t.Errorf("the start tried to recover from InfluxDB although the state covers it")
	}
}
