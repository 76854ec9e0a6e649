package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/sim"
)

// startStoppableSim runs a simulated gateway that the test can stop early.
func startStoppableSim(t *testing.T, name string, profile sim.Profile, interval time.Duration, water bool) (addr string, stop func()) {
	t.Helper()
	// The meters live a minute per second, so that power, which the
	// simulated household changes by the minute, and the energy registers
	// move visibly between two page loads.
	t0 := time.Now()
	srv, err := sim.NewServer(sim.Config{
		Interval: interval,
		Meter:    sim.MeterConfig{Name: name, Profile: profile, SolarKWp: 4, Water: water},
		Now:      func() time.Time { return t0.Add(60 * time.Since(t0)) },
		LogSize:  -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv.Addr().String(), runSim(t, srv)
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

// TestStatusPage runs the daemon with three simulated gateways (a Belgian
// three-phase meter with gas and water, a Belgian single-phase one, a Dutch
// DSMR 5 one) and a real InfluxDB, checks /api/v1/status, /api/v1/history
// and /status.txt, then loads the page in headless Chromium: values appear
// and change, the page is laid out without overlapping text at desktop
// (1280x800) and phone (390x844) sizes, light and dark (screenshots in the
// test's artifact directory, kept with -artifacts), and a gateway whose
// simulator was stopped shows as disconnected.
func TestStatusPage(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	homeAddr, _ := startStoppableSim(t, "home", sim.ProfileBE3, 200*time.Millisecond, true)
	garageAddr, stopGarage := startStoppableSim(t, "garage", sim.ProfileBE1, 200*time.Millisecond, false)
	flatAddr, _ := startStoppableSim(t, "flat", sim.ProfileNL5, 200*time.Millisecond, false)
	addr, _ := startDaemon(t, []string{
		"P1_GATEWAYS=home=" + homeAddr + ",garage=" + garageAddr + ",flat=" + flatAddr,
		"P1_INFLUX_URL=" + srv.URL(),
		"P1_INFLUX_BUCKET=" + bucket,
		"P1_CYCLE=500ms",
		"P1_ROLLUP_INTERVAL=1s",
		"P1_IDLE_TIMEOUT=2s",
	})
	base := "http://" + addr
	names := []string{"home", "garage", "flat"}

	// The rollup's first values arrive once it has recovered (nothing) from
	// InfluxDB and seen a reading; gas once the gas meter sent a second
	// capture.
	waitFor(t, 30*time.Second, "every gateway connected with today's and this month's energy, home with gas", func() bool {
		gws := liveByName(apiLive(t, base))
		for _, n := range names {
			g := gws[n]
			if !g.Connected || g.Today == nil || g.Month == nil || g.Latest == nil {
				return false
			}
		}
		_, gas := gws["home"].Today.Values["gas_m3"]
		return gas
	})
	s := apiLive(t, base)
	if len(s.Gateways) != 3 || s.Gateways[0].Name != "home" || s.Gateways[1].Name != "garage" || s.EnergyAsOf == nil {
		t.Fatalf("/api/v1/status: %+v", s)
	}
	if s.Timezone != "Europe/Brussels" {
		t.Errorf("timezone %q, want P1_TIMEZONE's Europe/Brussels", s.Timezone)
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
		// A fresh bucket: nothing before this test's first reading, so both
		// periods count from it, not from midnight.
		if g.Today.Since == nil || !g.Today.Since.After(g.Today.Start) || time.Since(*g.Today.Since) > time.Minute ||
			g.Month.Since == nil || !g.Month.Since.Equal(*g.Today.Since) {
			t.Errorf("%s: today since %v, month since %v; want both the first reading, a moment ago", g.Name, g.Today.Since, g.Month.Since)
		}
	}
	wantCountry := map[string][3]string{
		"home":   {"be", "peak", "off-peak"},
		"garage": {"be", "peak", "off-peak"},
		"flat":   {"nl", "low", "normal"},
	}
	for _, g := range s.Gateways {
		w := wantCountry[g.Name]
		if g.Country != w[0] || g.CountryFrom != "telegram" || g.Tariffs["1"] != w[1] || g.Tariffs["2"] != w[2] {
			t.Errorf("%s: country %q from %q, tariffs %v; want %s from the telegram, 1 = %s, 2 = %s", g.Name, g.Country, g.CountryFrom, g.Tariffs, w[0], w[1], w[2])
		}
	}
	checkHistoryAPI(t, base)
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
	shots := t.ArtifactDir()
	t.Logf("screenshots in %s", shots)
	all := map[string]string{"home": "connected", "garage": "connected", "flat": "connected"}
	first := dumpPage(t, chromium, base+"/?test", desktop)
	checkLiveCards(t, "first load", first, all)
	time.Sleep(1500 * time.Millisecond)
	second := dumpPage(t, chromium, base+"/?test", desktop, "--screenshot="+filepath.Join(shots, "status-desktop.png"))
	checkLiveCards(t, "second load", second, all)
	checkRichCards(t, "desktop", second)
	checkLayout(t, "desktop", second, 3, 1280)
	for _, gw := range names {
		a, b := first.cards[gw], second.cards[gw]
		if a.fields["telegrams"] == b.fields["telegrams"] {
			t.Errorf("%s: telegram count did not change between loads: %s", gw, a.fields["telegrams"])
		}
		if a.fields["net"] == b.fields["net"] && a.fields["taken"] == b.fields["taken"] && a.fields["injected"] == b.fields["injected"] &&
			a.fields["today-taken"] == b.fields["today-taken"] {
			t.Errorf("%s: no live value changed between loads: %v", gw, b.fields)
		}
	}
	if first.cards["home"].phases != 3 || first.cards["garage"].phases != 1 || first.cards["flat"].phases != 3 {
		t.Errorf("phase rows: home %d, garage %d, flat %d; want 3, 1 and 3", first.cards["home"].phases, first.cards["garage"].phases, first.cards["flat"].phases)
	}
	phone := dumpFramed(t, chromium, base+"/?test", 390, 844, "--screenshot="+filepath.Join(shots, "status-phone.png"))
	checkLiveCards(t, "phone", phone, all)
	checkRichCards(t, "phone", phone)
	checkLayout(t, "phone", phone, 3, 390)
	// The whole page at phone width, to look at every card.
	long := dumpFramed(t, chromium, base+"/?test", 390, 3600, "--screenshot="+filepath.Join(shots, "status-phone-long.png"))
	checkLayout(t, "phone, long", long, 3, 390)
	dark := dumpFramed(t, chromium, base+"/?test", 390, 2600, "--force-dark-mode", "--screenshot="+filepath.Join(shots, "status-phone-dark.png"))
	checkLayout(t, "phone, dark", dark, 3, 390)

	stopGarage()
	waitFor(t, 15*time.Second, "garage disconnected", func() bool { return !liveByName(apiLive(t, base))["garage"].Connected })
	time.Sleep(1100 * time.Millisecond) // so that "last telegram" reads at least a second ago
	third := dumpPage(t, chromium, base+"/", desktop, "--screenshot="+filepath.Join(shots, "status-disconnected.png"))
	checkLiveCards(t, "after garage stopped", third, map[string]string{"home": "connected", "garage": "disconnected", "flat": "connected"})
	g := third.cards["garage"]
	if g.fields["state"] != "disconnected" || !regexp.MustCompile(`^\d+ s ago$`).MatchString(g.fields["age"]) ||
		!strings.HasPrefix(g.fields["direction"], "last known: ") || g.fields["error"] == "" {
		t.Errorf("garage card after its gateway stopped: %v", g.fields)
	}
	if shot := os.Getenv("P1_STATUS_SCREENSHOT"); shot != "" {
		dumpPage(t, chromium, base+"/", desktop, "--screenshot="+shot)
	}
}

// checkHistoryAPI checks /api/v1/history: home's minutes of net power and
// today's hours, and the answers to a missing or unknown gateway.
func checkHistoryAPI(t *testing.T, base string) {
	t.Helper()
	var h historyJSON
	fetch := func() {
		code, body := get(t, base+"/api/v1/history?gateway=home")
		h = historyJSON{}
		if err := json.Unmarshal([]byte(body), &h); code != 200 || err != nil {
			t.Fatalf("/api/v1/history?gateway=home: %d %v\n%s", code, err, body)
		}
	}
	// Today's hours begin with the second reading: the first is the
	// increase's start.
	waitFor(t, 10*time.Second, "history of today", func() bool { fetch(); return h.Today != nil })
	points := 0
	for _, v := range h.Power.NetW {
		if v != nil {
			points++
		}
	}
	if h.Gateway != "home" || h.Power.StepS != 60 || len(h.Power.NetW) != 360 || points == 0 || h.Since == nil {
		t.Errorf("history: gateway %q, step %d s, %d minutes of which %d with power, since %v; want home, 60, 360, some, set",
			h.Gateway, h.Power.StepS, len(h.Power.NetW), points, h.Since)
	}
	if h.Today == nil || len(h.Today.Hours) == 0 || h.Today.Since.Before(h.Today.Start) {
		t.Fatalf("history today: %+v", h.Today)
	}
	if last := h.Today.Hours[len(h.Today.Hours)-1]; last.TakenKWh+last.InjectedKWh <= 0 {
		t.Errorf("this hour has no energy: %+v", last)
	}
	if code, body := get(t, base+"/api/v1/history"); code != 400 || !strings.Contains(body, "gateway=NAME") {
		t.Errorf("/api/v1/history without gateway: %d %q, want 400 naming the parameter", code, body)
	}
	if code, body := get(t, base+"/api/v1/history?gateway=nobody"); code != 404 || !strings.Contains(body, `"nobody"`) {
		t.Errorf("/api/v1/history?gateway=nobody: %d %q, want 404 naming it", code, body)
	}
}

var (
	desktop = "--window-size=1280,800"
	gasRE   = regexp.MustCompile(`^\d+\.\d{3} m³$`)
	sinceRE = regexp.MustCompile(`^since \d\d:\d\d$`)
)

// checkRichCards checks what the page shows beyond the live values: gas and
// water, the capacity-tariff peak, tariff names, honest "since".
func checkRichCards(t *testing.T, when string, d pageDump) {
	t.Helper()
	home, flat := d.cards["home"], d.cards["flat"]
	// The page keeps each tariff's name and value together with no-break
	// spaces and hyphens.
	for _, c := range []cardDump{home, flat} {
		for k, v := range c.fields {
			c.fields[k] = strings.NewReplacer("\u00a0", " ", "\u2011", "-").Replace(v)
		}
	}
	if !gasRE.MatchString(home.fields["today-gas"]) || !gasRE.MatchString(home.fields["month-gas"]) {
		t.Errorf("%s: home gas today %q, this month %q; want volumes", when, home.fields["today-gas"], home.fields["month-gas"])
	}
	if got := home.meters; got["gas"] == "" || got["water"] == "" || !strings.HasSuffix(got["gas"], " m³") || !strings.HasSuffix(got["water"], " m³") {
		t.Errorf("%s: home's M-Bus meters %v; want gas and water readings", when, got)
	}
	if got := home.meterToday["water"]; !regexp.MustCompile(`^today since \d\d:\d\d \d+\.\d{3} m³$`).MatchString(got) {
		t.Errorf("%s: home's water today %q, want a volume since the daemon's first reading", when, got)
	}
	if got := home.meterToday["gas"]; got != "" {
		t.Errorf("%s: the gas box shows today %q; gas today is the rollup's, in the period boxes", when, got)
	}
	if !powerRE.MatchString(home.fields["peak"]) || home.fields["peak-at"] == "" || home.fields["peak-at"] == "–" {
		t.Errorf("%s: home capacity peak %q at %q", when, home.fields["peak"], home.fields["peak-at"])
	}
	if !strings.Contains(home.fields["today-taken-tariffs"], "peak ") || !strings.Contains(home.fields["today-taken-tariffs"], "off-peak ") {
		t.Errorf("%s: home tariffs %q, want Belgian peak/off-peak", when, home.fields["today-taken-tariffs"])
	}
	if !strings.HasPrefix(flat.fields["today-taken-tariffs"], "low ") || !strings.Contains(flat.fields["today-taken-tariffs"], "normal ") ||
		!regexp.MustCompile(`^(low|normal) \([12]\)$`).MatchString(flat.fields["tariff"]) {
		t.Errorf("%s: flat tariffs %q, tariff now %q; want Dutch low/normal", when, flat.fields["today-taken-tariffs"], flat.fields["tariff"])
	}
	if flat.fields["peak"] != "" && flat.fields["peak"] != "–" {
		t.Errorf("%s: the Dutch meter shows a capacity peak %q", when, flat.fields["peak"])
	}
	for _, name := range []string{"home", "garage", "flat"} {
		if f := d.cards[name].fields["today-since"]; !sinceRE.MatchString(f) {
			t.Errorf("%s: %s today %q, want since HH:MM (the bucket was empty before this test)", when, name, f)
		}
	}
}

// layoutReport is what the page writes into #test-report with ?test.
type layoutReport struct {
	Width       int      `json:"width"`
	ScrollWidth int      `json:"scroll_width"`
	Overlaps    []string `json:"overlaps"`
	Outside     []string `json:"outside"`
	Cards       map[string]struct {
		Width  int `json:"width"`
		Points int `json:"points"`
		Bars   int `json:"bars"`
	} `json:"cards"`
}

var reportRE = regexp.MustCompile(`<pre id="test-report">([^<]*)</pre>`)

// checkLayout checks the page's own report of its layout: no text on other
// text or outside its card, no sideways scrolling, charts drawn.
func checkLayout(t *testing.T, when string, d pageDump, cards, width int) {
	t.Helper()
	m := reportRE.FindStringSubmatch(d.dom)
	if m == nil {
		t.Fatalf("%s: no layout report in the page", when)
	}
	var r layoutReport
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &r); err != nil {
		t.Fatalf("%s: layout report: %v\n%s", when, err, m[1])
	}
	t.Logf("%s: page %d px wide, cards %+v", when, r.Width, r.Cards)
	if r.Width != width {
		t.Errorf("%s: the page was laid out %d px wide, want %d", when, r.Width, width)
	}
	if len(r.Overlaps) > 0 || len(r.Outside) > 0 || r.ScrollWidth > r.Width {
		t.Errorf("%s: overlapping text %q, text outside its card %q, page %d px wide scrolls to %d",
			when, r.Overlaps, r.Outside, r.Width, r.ScrollWidth)
	}
	if len(r.Cards) != cards {
		t.Errorf("%s: %d cards in the report, want %d", when, len(r.Cards), cards)
	}
	for name, c := range r.Cards {
		if c.Points == 0 || c.Bars == 0 {
			t.Errorf("%s: %s's charts have %d minutes of power and %d bars of energy; want some of each", when, name, c.Points, c.Bars)
		}
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
	meters map[string]string // M-Bus kind -> reading
	// meterToday maps an M-Bus kind to its box's "today" line, label and
	// value ("today since 00:48 0.015 m³"), where shown.
	meterToday map[string]string
}

var (
	templateRE   = regexp.MustCompile(`(?s)<template.*?</template>`)
	articleRE    = regexp.MustCompile(`(?s)<article ([^>]*)>(.*?)</article>`)
	attrRE       = regexp.MustCompile(`data-(gateway|state)="([^"]*)"`)
	fieldRE      = regexp.MustCompile(`data-f="([a-z-]+)"[^>]*>([^<]*)<`)
	rowRE        = regexp.MustCompile(`<tr><td>L\d</td>`)
	meterRE      = regexp.MustCompile(`(?s)data-kind="([a-z]+)".*?data-m="value"[^>]*>([^<]*)<`)
	meterTodayRE = regexp.MustCompile(`<div class="row[^"]*" data-m-row="today"><span data-m="today-label">([^<]*)</span><b data-m="today">([^<]*)<`)
	pollsRE      = regexp.MustCompile(`<body data-polls="(\d+)"`)
)

// dumpPage loads url in headless Chromium, lets its scripts run for a few
// seconds of virtual time (the page polls once a second), and parses the
// resulting DOM.
func dumpPage(t *testing.T, chromium, url, size string, extra ...string) pageDump {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", size,
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3500", "--dump-dom",
	}, extra...)
	cmd := exec.CommandContext(ctx, chromium, append(args, url)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, tail(stderr.String(), 2000))
	}
	t.Logf("chromium rendered the page in %v", time.Since(start).Round(time.Millisecond))
	return parseDump(string(out))
}

// parseDump reads the cards and the poll count out of a rendered page.
func parseDump(dom string) pageDump {
	d := pageDump{dom: dom, cards: map[string]cardDump{}}
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
		c.meters, c.meterToday = map[string]string{}, map[string]string{}
		for _, mm := range meterRE.FindAllStringSubmatch(m[2], -1) {
			c.meters[mm[1]] = html.UnescapeString(mm[2])
		}
		// One chunk per M-Bus box: its kind, then its fields.
		for _, chunk := range strings.Split(m[2], `data-kind="`)[1:] {
			kind, _, _ := strings.Cut(chunk, `"`)
			if tm := meterTodayRE.FindStringSubmatch(chunk); tm != nil && !strings.Contains(tm[0], "hide") {
				c.meterToday[kind] = html.UnescapeString(tm[1] + " " + tm[2])
			}
		}
		d.cards[name] = c
	}
	return d
}

// dumpFramed loads url in a w×h frame of a page of its own and returns the
// frame's DOM as dumpPage does: headless Chromium's window is at least 500
// px wide, so a phone's 390 px viewport takes a frame. The page under test
// hands its DOM to the frame's parent (status.html's report, with ?test).
// The parent is served over HTTP on loopback: under a file:// parent the
// virtual time budget does not run the frame's timers.
func dumpFramed(t *testing.T, chromium, url string, w, h int, extra ...string) pageDump {
	t.Helper()
	doc := fmt.Sprintf(`<!doctype html><html><body style="margin:0;background:#888">`+
		`<iframe src="%s" width="%d" height="%d" style="border:0;display:block"></iframe>`+
		`<pre id="frame-dom" style="display:none"></pre>`+
		`<script>addEventListener("message", e => { document.getElementById("frame-dom").textContent = e.data; });</script>`+
		`</body></html>`, html.EscapeString(url), w, h)
	wrapper := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(rw, doc)
	}))
	defer wrapper.Close()
	outer := dumpPage(t, chromium, wrapper.URL+"/", fmt.Sprintf("--window-size=%d,%d", max(w, 500), h+160), extra...)
	m := frameRE.FindStringSubmatch(outer.dom)
	if m == nil || m[1] == "" {
		t.Fatalf("the framed page handed over no DOM\n%s", tail(outer.dom, 2000))
	}
	return parseDump(html.UnescapeString(m[1]))
}

var frameRE = regexp.MustCompile(`(?s)<pre id="frame-dom"[^>]*>(.*?)</pre>`)

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

// TestStatusPageFields renders the page from a status the simulators do not
// produce: the write buffer's outage capacity and delivery lag (present and
// absent), a gateway's source kind, a heat meter, a Dutch meter's whole
// amperes, a country set by P1_COUNTRY. The page is served with that status
// inlined, as the daemon serves it; its polls find nothing and it keeps
// showing the inlined status.
func TestStatusPageFields(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); skipping the browser test")
	}
	const gateways = `"gateways":[
	{"name":"north","address":"serial:///dev/ttyUSB0","source":"serial","connected":true,"last_telegram_age_s":0.4,
	 "telegrams":12,"crc_errors":0,"parse_errors":0,"dropped_telegrams":0,"reconnects":0,"skipped_bytes":0,
	 "country":"nl","country_from":"P1_COUNTRY","tariff_names":{"1":"low","2":"normal"},
	 "latest":{"power_taken_w":1234,"power_injected_w":0,"power_net_w":1234,"voltage_l1_v":229.0,"current_l1_a":1,
	   "power_taken_l1_w":1234,"tariff":2,"mbus":[{"channel":1,"kind":"heat","meter_id":"H1","value":12.345,"unit":"GJ","time":"2026-03-02T09:00:00+01:00"}]},
	 "today":{"start":"2026-03-01T23:00:00Z","since":"2026-03-02T07:05:00Z","values":{"taken_kwh":1.5,"taken_t1_kwh":0.5,"taken_t2_kwh":1.0,"injected_kwh":0}},
	 "month":{"start":"2026-02-28T23:00:00Z","values":{"taken_kwh":40.25,"injected_kwh":0}}},
	{"name":"south","address":"10.0.0.9:8088","connected":true,"last_telegram_age_s":0.4,
	 "telegrams":12,"crc_errors":0,"parse_errors":0,"dropped_telegrams":0,"reconnects":0,"skipped_bytes":0,
	 "tariff_names":{"1":"tariff 1","2":"tariff 2"},
	 "latest":{"power_taken_w":0,"power_injected_w":300,"power_net_w":-300,"current_l1_a":0.27,"voltage_l1_v":231.4,"tariff":1}}]`
	for _, tc := range []struct {
		name, influx, want string
	}{
		{"buffer known", `{"points_written":5,"buffered_bytes":0,"failing":false,"buffer_time_left_s":45600,"delivery_lag_s":180}`,
			"buffer holds 12 h 40 min more · delivery 3 min behind"},
		{"caught up", `{"points_written":5,"buffered_bytes":0,"failing":false,"buffer_time_left_s":59,"delivery_lag_s":0}`,
			"buffer holds 59 s more · delivery up to date"},
		{"older daemon", `{"points_written":5,"buffered_bytes":0,"failing":false}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := `{"now":"2026-03-02T09:30:00Z","timezone":"Europe/Brussels","uptime_s":10,"influxdb":` + tc.influx + `,` + gateways + `}`
			if !json.Valid([]byte(st)) {
				t.Fatalf("test status is not JSON: %s", st)
			}
			page := bytes.Replace(statusHTML, initialMarker, []byte(st), 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write(page)
			}))
			defer srv.Close()
			d := dumpPage(t, chromium, srv.URL+"/?test", desktop)
			if m := regexp.MustCompile(`<span id="buffer">([^<]*)</span>`).FindStringSubmatch(d.dom); m == nil || html.UnescapeString(m[1]) != tc.want {
				t.Errorf("buffer line %q, want %q", m, tc.want)
			}
			north, south := d.cards["north"], d.cards["south"]
			checks := []struct{ what, got, want string }{
				{"north source", north.fields["source"], "source: serial"},
				{"north country", north.fields["country"], "NL (P1_COUNTRY)"},
				{"north tariff now", north.fields["tariff"], "normal (2)"},
				{"north today since", north.fields["today-since"], "since 08:05"},
				{"north month since", north.fields["month-since"], ""},
				{"north heat", north.meters["heat"], "12.345 GJ"},
				{"south source", south.fields["source"], ""},
				{"south country", south.fields["country"], ""},
				{"south tariff now", south.fields["tariff"], "tariff 1 (1)"},
				{"south net", south.fields["net"], "-300 W"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
				}
			}
			if !strings.Contains(d.dom, "<td>1 A</td>") || !strings.Contains(d.dom, "<td>0.3 A</td>") {
				t.Errorf("currents: want the Dutch meter's whole 1 A as \"1 A\" and 0.27 A as \"0.3 A\"")
			}
			if tar := strings.NewReplacer("\u00a0", " ", "\u2011", "-").Replace(north.fields["today-taken-tariffs"]); tar != "low 0.500 kWh · normal 1.000 kWh" {
				t.Errorf("north today's tariffs %q", tar)
			}
			checkLayoutOnly(t, tc.name, d, 1280)
		})
	}
}

// checkLayoutOnly is checkLayout without the charts (a status without history).
func checkLayoutOnly(t *testing.T, when string, d pageDump, width int) {
	t.Helper()
	m := reportRE.FindStringSubmatch(d.dom)
	if m == nil {
		t.Fatalf("%s: no layout report in the page", when)
	}
	var r layoutReport
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &r); err != nil {
		t.Fatalf("%s: layout report: %v", when, err)
	}
	if r.Width != width || len(r.Overlaps) > 0 || len(r.Outside) > 0 || r.ScrollWidth > r.Width {
		t.Errorf("%s: %+v", when, r)
	}
}
