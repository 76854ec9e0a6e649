package main

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/sim"
)

// startStoppableSim runs a simulated gateway that the test can stop early.
func startStoppableSim(t *testing.T, name string, profile sim.Profile, interval time.Duration) (addr string, stop func()) {
	t.Helper()
	// The meters live a minute per second, so that power, which the
	// simulated household changes by the minute, and the energy registers
	// move visibly between two page loads.
	t0 := time.Now()
	srv, err := sim.NewServer(sim.Config{
		Interval: interval,
		Meter:    sim.MeterConfig{Name: name, Profile: profile, SolarKWp: 4},
		Now:      func() time.Time { return t0.Add(60 * time.Since(t0)) },
		LogSize:  -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("sim server did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return srv.Addr().String(), stop
}

// apiLive fetches /api/v1/status.
func apiLive(t *testing.T, base string) liveStatus {
	t.Helper()
	code, body := get(t, base+"/api/v1/status")
	var s liveStatus
	if err := json.Unmarshal([]byte(body), &s); code != 200 || err != nil {
		t.Fatalf("/api/v1/status: %d %v\n%s", code, err, body)
	}
	return s
}

func liveByName(s liveStatus) map[string]liveGateway {
	m := map[string]liveGateway{}
	for _, g := range s.Gateways {
		m[g.Name] = g
	}
	return m
}

// TestStatusPage runs the daemon with two simulated gateways and a real
// InfluxDB, checks /api/v1/status and /status.txt, then loads the page in
// headless Chromium at three moments: values appear, they change, and a
// gateway whose simulator was stopped shows as disconnected.
func TestStatusPage(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	homeAddr, _ := startStoppableSim(t, "home", sim.ProfileBE3, 200*time.Millisecond)
	garageAddr, stopGarage := startStoppableSim(t, "garage", sim.ProfileBE1, 200*time.Millisecond)
	addr, _ := startDaemon(t, []string{
		"P1_GATEWAYS=home=" + homeAddr + ",garage=" + garageAddr,
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=500ms",
		"P1_ROLLUP_INTERVAL=1s",
		"P1_IDLE_TIMEOUT=2s",
	})
	base := "http://" + addr

	// The rollup's first values arrive once it has recovered (nothing) from
	// InfluxDB and seen a reading.
	waitFor(t, 30*time.Second, "both gateways connected with today's and this month's energy", func() bool {
		gws := liveByName(apiLive(t, base))
		for _, n := range []string{"home", "garage"} {
			g := gws[n]
			if !g.Connected || g.Today == nil || g.Month == nil || g.Latest == nil {
				return false
			}
		}
		return true
	})
	s := apiLive(t, base)
	if len(s.Gateways) != 2 || s.Gateways[0].Name != "home" || s.Gateways[1].Name != "garage" || s.EnergyAsOf == nil {
		t.Fatalf("/api/v1/status: %+v", s)
	}
	for _, g := range s.Gateways {
		if _, ok := g.Today.Values["taken_kwh"]; !ok {
			t.Errorf("%s: today has no taken_kwh: %v", g.Name, g.Today.Values)
		}
		if y, m, d := g.Today.Start.Date(); !g.Today.Start.Equal(time.Date(y, m, d, 0, 0, 0, 0, g.Today.Start.Location())) ||
			g.Today.Start.In(brusselsLoc(t)).Hour() != 0 {
			t.Errorf("%s: today starts at %v, want local midnight in Brussels", g.Name, g.Today.Start)
		}
		if g.Month.Start.In(brusselsLoc(t)).Day() != 1 {
			t.Errorf("%s: month starts at %v", g.Name, g.Month.Start)
		}
	}
	if code, body := get(t, base+"/status.txt"); code != 200 || !strings.Contains(body, "garage") || !strings.Contains(body, "connected") {
		t.Errorf("/status.txt: %d\n%s", code, body)
	}
	code, page := get(t, base+"/")
	if code != 200 || !strings.Contains(page, `"name":"garage"`) || strings.Contains(page, "/*INITIAL_STATUS*/") {
		t.Errorf("/: %d, want the page with its initial status inlined", code)
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Errorf("/nope: %d, want 404", code)
	}

	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); skipping the browser part")
	}
	first := dumpPage(t, chromium, base)
	checkLiveCards(t, "first load", first, map[string]string{"home": "connected", "garage": "connected"})
	time.Sleep(1500 * time.Millisecond)
	second := dumpPage(t, chromium, base)
	checkLiveCards(t, "second load", second, map[string]string{"home": "connected", "garage": "connected"})
	for _, gw := range []string{"home", "garage"} {
		a, b := first.cards[gw], second.cards[gw]
		if a.fields["telegrams"] == b.fields["telegrams"] {
			t.Errorf("%s: telegram count did not change between loads: %s", gw, a.fields["telegrams"])
		}
		if a.fields["net"] == b.fields["net"] && a.fields["taken"] == b.fields["taken"] && a.fields["injected"] == b.fields["injected"] &&
			a.fields["today-taken"] == b.fields["today-taken"] {
			t.Errorf("%s: no live value changed between loads: %v", gw, b.fields)
		}
	}
	if first.cards["home"].phases != 3 || first.cards["garage"].phases != 1 {
		t.Errorf("phase rows: home %d, garage %d; want 3 and 1", first.cards["home"].phases, first.cards["garage"].phases)
	}

	stopGarage()
	waitFor(t, 15*time.Second, "garage disconnected", func() bool { return !liveByName(apiLive(t, base))["garage"].Connected })
	time.Sleep(1100 * time.Millisecond) // so that "last telegram" reads at least a second ago
	third := dumpPage(t, chromium, base, "--screenshot="+filepath.Join(t.TempDir(), "status.png"))
	checkLiveCards(t, "after garage stopped", third, map[string]string{"home": "connected", "garage": "disconnected"})
	g := third.cards["garage"]
	if g.fields["state"] != "disconnected" || !regexp.MustCompile(`^\d+ s ago$`).MatchString(g.fields["age"]) ||
		!strings.HasPrefix(g.fields["direction"], "last known: ") || g.fields["error"] == "" {
		t.Errorf("garage card after its gateway stopped: %v", g.fields)
	}
	if shot := os.Getenv("P1_STATUS_SCREENSHOT"); shot != "" {
		dumpPage(t, chromium, base, "--screenshot="+shot)
	}
}

// chromiumPath returns the Chromium binary, or "" when none is installed.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// pageDump is a page as headless Chromium rendered it.
type pageDump struct {
	dom   string
	polls int
	cards map[string]cardDump
}

type cardDump struct {
	state  string
	fields map[string]string // data-f name -> text
	phases int
}

var (
	templateRE = regexp.MustCompile(`(?s)<template.*?</template>`)
	articleRE  = regexp.MustCompile(`(?s)<article ([^>]*)>(.*?)</article>`)
	attrRE     = regexp.MustCompile(`data-(gateway|state)="([^"]*)"`)
	fieldRE    = regexp.MustCompile(`data-f="([a-z-]+)"[^>]*>([^<]*)<`)
	rowRE      = regexp.MustCompile(`<tr><td>L\d</td>`)
	pollsRE    = regexp.MustCompile(`<body data-polls="(\d+)"`)
)

// dumpPage loads url in headless Chromium, lets its scripts run for a few
// seconds of virtual time (the page polls once a second), and parses the
// resulting DOM.
func dumpPage(t *testing.T, chromium, url string, extra ...string) pageDump {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3500", "--dump-dom",
	}, extra...)
	cmd := exec.CommandContext(ctx, chromium, append(args, url+"/")...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, tail(stderr.String(), 2000))
	}
	t.Logf("chromium rendered the page in %v", time.Since(start).Round(time.Millisecond))
	d := pageDump{dom: string(out), cards: map[string]cardDump{}}
	if m := pollsRE.FindStringSubmatch(d.dom); m != nil {
		d.polls, _ = strconv.Atoi(m[1])
	}
	for _, m := range articleRE.FindAllStringSubmatch(templateRE.ReplaceAllString(d.dom, ""), -1) {
		c := cardDump{fields: map[string]string{}}
		var name string
		for _, a := range attrRE.FindAllStringSubmatch(m[1], -1) {
			if a[1] == "gateway" {
				name = html.UnescapeString(a[2])
			} else {
				c.state = a[2]
			}
		}
		for _, f := range fieldRE.FindAllStringSubmatch(m[2], -1) {
			c.fields[f[1]] = html.UnescapeString(f[2])
		}
		c.phases = len(rowRE.FindAllString(m[2], -1))
		d.cards[name] = c
	}
	return d
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var (
	powerRE  = regexp.MustCompile(`^[+-]?\d+(\.\d+)? k?W$`)
	energyRE = regexp.MustCompile(`^\d+\.\d+ kWh$`)
)

// checkLiveCards checks that the page polled and shows one filled card per
// gateway in the given states.
func checkLiveCards(t *testing.T, when string, d pageDump, states map[string]string) {
	t.Helper()
	if d.polls < 2 {
		t.Errorf("%s: the page polled %d times in 3.5 s of virtual time; want at least 2", when, d.polls)
	}
	if len(d.cards) != len(states) {
		t.Fatalf("%s: %d cards, want %d\n%s", when, len(d.cards), len(states), tail(d.dom, 4000))
	}
	for name, state := range states {
		c, ok := d.cards[name]
		if !ok {
			t.Errorf("%s: no card for %s", when, name)
			continue
		}
		if c.state != state || c.fields["state"] != state {
			t.Errorf("%s: %s is %q (pill %q), want %q", when, name, c.state, c.fields["state"], state)
		}
		for _, f := range []string{"net", "taken", "injected"} {
			if !powerRE.MatchString(c.fields[f]) {
				t.Errorf("%s: %s %s = %q, want a power", when, name, f, c.fields[f])
			}
		}
		for _, f := range []string{"today-taken", "today-injected", "month-taken", "month-injected"} {
			if !energyRE.MatchString(c.fields[f]) {
				t.Errorf("%s: %s %s = %q, want an energy", when, name, f, c.fields[f])
			}
		}
		if n, err := strconv.Atoi(c.fields["telegrams"]); err != nil || n == 0 {
			t.Errorf("%s: %s telegrams = %q", when, name, c.fields["telegrams"])
		}
	}
}

// TestStatusPageSelfContained: the page loads nothing from elsewhere.
func TestStatusPageSelfContained(t *testing.T) {
	page := string(statusHTML)
	for _, bad := range []string{"http://", "https://", "src=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("status.html contains %q: the page must not load external resources", bad)
		}
	}
	if !bytes.Contains(statusHTML, initialMarker) {
		t.Error("status.html lost its initial-status marker")
	}
}
