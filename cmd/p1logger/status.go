package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/p1logger/p1logger/ingest"
	"github.com/p1logger/p1logger/internal/history"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/rollup"
)

// statusHTML is the live status page: plain HTML, CSS and JavaScript, no
// build step and nothing loaded from elsewhere. It polls /api/v1/status.
//
//go:embed status.html
var statusHTML []byte

// initialMarker is replaced, when the page is served, by the status at that
// moment, so the page shows data before its first poll (and without
// JavaScript, the gateway names at least).
var initialMarker = []byte("/*INITIAL_STATUS*/null")

// energySource is where the status page gets today's and this month's
// energy; *rollup.Worker satisfies it.
type energySource interface {
	Current() []rollup.Energy
}

var _ energySource = (*rollup.Worker)(nil)

// observers tells every one of its Observers about each p1 point: the
// rollup worker and the page's history both follow the Batcher.
type observers []ingest.Observer

func (o observers) Observe(gateway string, at time.Time, t *parser.Telegram) {
	for _, x := range o {
		x.Observe(gateway, at, t)
	}
}

var (
	_ ingest.Observer = (*rollup.Worker)(nil)
	_ ingest.Observer = (*history.Store)(nil)
)

// web serves the status page at /, the former text status at /status.txt,
// and the page's data at /api/v1/status; any other path is not found.
func (s *status) web() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /status.txt", s.index)
	mux.HandleFunc("GET /api/v1/status", s.apiStatus)
	mux.HandleFunc("GET /api/v1/history", s.apiHistory)
	return mux
}

// page serves status.html with the current status inlined.
func (s *status) page(w http.ResponseWriter, r *http.Request) {
	js, err := json.Marshal(s.live(time.Now())) // escapes <, > and &: safe inside <script>
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:")
	w.Write(bytes.Replace(statusHTML, initialMarker, js, 1))
}

// apiStatus answers the page's poll: liveStatus as JSON.
func (s *status) apiStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.live(time.Now()))
}

// liveStatus is what /api/v1/status returns: the pipeline at a glance and,
// per gateway, the /api/v1/gateways entry plus the rollup's energy of the
// current local day and month.
type liveStatus struct {
	Now time.Time `json:"now"`
	// Timezone is P1_TIMEZONE, in which the page shows clock times; empty
	// when the host's zone has no IANA name (the browser's zone is used).
	Timezone   string        `json:"timezone,omitempty"`
	UptimeS    float64       `json:"uptime_s"`
	Influx     liveInflux    `json:"influxdb"`
	Gateways   []liveGateway `json:"gateways"`
	EnergyAsOf *time.Time    `json:"energy_as_of,omitempty"` // the last rollup
}

type liveInflux struct {
	Points        int64  `json:"points_written"`
	BufferedBytes int    `json:"buffered_bytes"`
	Failing       bool   `json:"failing"`
	LastError     string `json:"last_error,omitempty"`
	// BufferTimeLeftS is how long an outage the write buffer can still
	// absorb at the current rate; absent until the rate is known.
	BufferTimeLeftS *float64 `json:"buffer_time_left_s,omitempty"`
	BufferDurable   bool     `json:"buffer_durable"` // on disk (P1_SPOOL_DIR): survives restarts
	// DeliveryLagS is the age of the oldest point waiting for InfluxDB,
	// 0 while delivery keeps up (nothing older than two cycles waits).
	DeliveryLagS  float64 `json:"delivery_lag_s"`
	WaitingPoints int64   `json:"waiting_points"`
}

type liveGateway struct {
	gatewayJSON
	// Country is the meter's country as P1_COUNTRY sets it or its newest
	// telegram tells (parser.Country); empty when neither says.
	Country string `json:"country,omitempty"`
	// CountryFrom is "P1_COUNTRY" or "telegram", where Country came from.
	CountryFrom string `json:"country_from,omitempty"`
	// Tariffs names the tariff registers by the meter's number ("1", "2")
	// as the country calls them; TariffNote says so in a sentence.
	Tariffs    map[string]string `json:"tariff_names"`
	TariffNote string            `json:"tariff_note,omitempty"`
	Today      *liveEnergy       `json:"today,omitempty"`
	Month      *liveEnergy       `json:"month,omitempty"`
}

// liveEnergy is one p1_energy point as the rollup last computed it.
type liveEnergy struct {
	Start  time.Time          `json:"start"`
	Values map[string]float64 `json:"values"` // p1_energy fields
	// Since is set when the values count from a reading after Start
	// (rollup.Energy.Since): the page says "since HH:MM", not midnight.
	Since *time.Time `json:"since,omitempty"`
}

// tariffNames returns the names of tariff registers 1 and 2 in country, and
// a sentence saying what they are (DESIGN.md: fields keep the meter's
// numbering, pages label them per country).
// The maps are shared by every gateway's answer and never written.
func tariffNames(country string) (names map[string]string, note string) {
	switch country {
	case "be":
		return beTariffs, "Belgium: tariff 1 is the peak register (day, heures pleines, dagtarief), tariff 2 off-peak (night and weekend, heures creuses, nachttarief)"
	case "nl":
		return nlTariffs, "Netherlands: tariff 1 is the low register (dal, nights and weekends), tariff 2 the normal one (normaal)"
	}
	return plainTariffs, ""
}

var (
	beTariffs    = map[string]string{"1": "peak", "2": "off-peak"}
	nlTariffs    = map[string]string{"1": "low", "2": "normal"}
	plainTariffs = map[string]string{"1": "tariff 1", "2": "tariff 2"}
)

func (s *status) live(now time.Time) liveStatus {
	out := liveStatus{Now: now, UptimeS: now.Sub(s.started).Seconds(), Gateways: make([]liveGateway, 0, len(s.gateways))}
	if s.loc != nil && s.loc.String() != "Local" {
		out.Timezone = s.loc.String()
	}
	if s.writer != nil {
		ws := s.writer.Stats()
		out.Influx = liveInflux{Points: ws.Points, BufferedBytes: ws.BufferedBytes, Failing: ws.Failing,
			BufferDurable: ws.Buffer.Durable, WaitingPoints: ws.Buffer.Points}
		if ws.Failing {
			out.Influx.LastError = ws.LastError
		}
		if left, ok := ws.Buffer.TimeLeft(); ok {
			sec := left.Seconds()
			out.Influx.BufferTimeLeftS = &sec
		}
		out.Influx.DeliveryLagS = deliveryLag(ws.Buffer.Oldest, now, s.cycle)
	}
	energy := map[string]*liveGateway{}
	for _, g := range s.gateways {
		j, country := newGatewayJSON(g, now)
		lg := liveGateway{gatewayJSON: j, Country: country}
		switch {
		case s.country != "":
			lg.Country, lg.CountryFrom = s.country, "P1_COUNTRY"
		case country != "":
			lg.CountryFrom = "telegram"
		}
		lg.Tariffs, lg.TariffNote = tariffNames(lg.Country)
		out.Gateways = append(out.Gateways, lg)
	}
	for i := range out.Gateways {
		energy[out.Gateways[i].Name] = &out.Gateways[i]
	}
	if s.energy != nil {
		for _, e := range s.energy.Current() {
			lg := energy[e.Gateway]
			if lg == nil {
				continue
			}
			le := &liveEnergy{Start: e.Start, Values: e.Values}
			if !e.Since.IsZero() {
				le.Since = &e.Since
			}
			if e.Period == "day" {
				lg.Today = le
			} else {
				lg.Month = le
			}
			if at := e.At; out.EnergyAsOf == nil || at.After(*out.EnergyAsOf) {
				out.EnergyAsOf = &at
			}
		}
	}
	return out
}

// deliveryLag is how far behind delivery is at now when the oldest point
// waiting was appended at oldest: 0 while nothing older than two cycles
// waits (a batch is in flight every cycle).
func deliveryLag(oldest, now time.Time, cycle time.Duration) float64 {
	if oldest.IsZero() {
		return 0
	}
	lag := now.Sub(oldest)
	if lag < 2*cycle || lag <= 0 {
		return 0
	}
	return lag.Seconds()
}

// newGatewayJSON is g's entry of /api/v1/gateways at now, and the country
// its newest telegram tells (parser.Country; "" when none or it does not say).
func newGatewayJSON(g *ingest.Gateway, now time.Time) (gatewayJSON, string) {
	st := g.Stats()
	j := gatewayJSON{
		Name: st.Name, Address: st.Addr, Source: st.Kind, Connected: st.Connected, LastError: st.LastError,
		Telegrams: st.Telegrams, CRCErrors: st.CRCErrors, ParseErrors: st.ParseErrors,
		DroppedTelegrams: st.Dropped, Reconnects: st.Reconnects, SkippedBytes: st.SkippedBytes,
	}
	if !st.Since.IsZero() {
		j.Since = &st.Since
	}
	if !st.LastTelegram.IsZero() {
		age := now.Sub(st.LastTelegram).Seconds()
		j.LastTelegram, j.LastTelegramAgeS = &st.LastTelegram, &age
	}
	var country string
	g.ReadLatest(func(t *parser.Telegram, _ time.Time) {
		j.Latest, country = t.AppendJSON(nil), parser.Country(t)
	})
	return j, country
}

// historyJSON is what /api/v1/history answers for one gateway.
type historyJSON struct {
	Gateway string `json:"gateway"`
	// Since is the first reading the daemon saw: nothing before it is
	// known (history is kept in memory and starts with the daemon).
	Since *time.Time `json:"since,omitempty"`
	Power struct {
		Start time.Time `json:"start"`
		StepS int       `json:"step_s"`
		NetW  []*int32  `json:"net_w"` // mean net power per step; null where no reading came
	} `json:"power"`
	Today *historyDay `json:"today,omitempty"`
}

type historyDay struct {
	Start time.Time     `json:"start"` // local midnight
	Since time.Time     `json:"since"` // the first reading counted; later than start after a start during the day
	Hours []historyHour `json:"hours"`
}

type historyHour struct {
	Start       time.Time `json:"start"`
	TakenKWh    float64   `json:"taken_kwh"`
	InjectedKWh float64   `json:"injected_kwh"`
	GasM3       float64   `json:"gas_m3"`
	WaterM3     float64   `json:"water_m3"`
	Heat        float64   `json:"heat"` // in the heat meter's unit (latest.mbus[].unit, GJ on DSMR)
}

// apiHistory answers /api/v1/history?gateway=NAME: the gateway's net power
// per minute over the last hours and today's energy per hour, from the
// daemon's memory (internal/history). 400 without a gateway, 404 for one
// that is not configured.
func (s *status) apiHistory(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("gateway")
	if name == "" {
		http.Error(w, "want ?gateway=NAME, one of the configured gateways", http.StatusBadRequest)
		return
	}
	var h history.Series
	ok := false
	if s.history != nil {
		h, ok = s.history.Get(name, time.Now())
	}
	if !ok {
		http.Error(w, "no gateway named "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	out := historyJSON{Gateway: name}
	if !h.Since.IsZero() {
		out.Since = &h.Since
	}
	out.Power.Start, out.Power.StepS, out.Power.NetW = h.Power.Start, 60, h.Power.NetW
	if len(h.Today) > 0 {
		d := &historyDay{Start: h.Today[0].Start, Since: h.TodaySince, Hours: make([]historyHour, len(h.Today))}
		for i, hr := range h.Today {
			d.Hours[i] = historyHour{Start: hr.Start, TakenKWh: hr.TakenKWh, InjectedKWh: hr.InjectedKWh,
				GasM3: hr.GasM3, WaterM3: hr.WaterM3, Heat: hr.Heat}
		}
		out.Today = d
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}
