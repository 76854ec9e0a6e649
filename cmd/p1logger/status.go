package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
	"time"

	"github.com/p1logger/p1logger/ingest"
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

// web serves the status page at /, the former text status at /status.txt,
// and the page's data at /api/v1/status; any other path is not found.
func (s *status) web() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /status.txt", s.index)
	mux.HandleFunc("GET /api/v1/status", s.apiStatus)
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
	Now        time.Time     `json:"now"`
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
}

type liveGateway struct {
	gatewayJSON
	Today *liveEnergy `json:"today,omitempty"`
	Month *liveEnergy `json:"month,omitempty"`
}

// liveEnergy is one p1_energy point as the rollup last computed it.
type liveEnergy struct {
	Start  time.Time          `json:"start"`
	Values map[string]float64 `json:"values"` // p1_energy fields
}

func (s *status) live(now time.Time) liveStatus {
	out := liveStatus{Now: now, UptimeS: now.Sub(s.started).Seconds(), Gateways: make([]liveGateway, 0, len(s.gateways))}
	if s.writer != nil {
		ws := s.writer.Stats()
		out.Influx = liveInflux{Points: ws.Points, BufferedBytes: ws.BufferedBytes, Failing: ws.Failing}
		if ws.Failing {
			out.Influx.LastError = ws.LastError
		}
	}
	energy := map[string]*liveGateway{}
	for _, g := range s.gateways {
		out.Gateways = append(out.Gateways, liveGateway{gatewayJSON: newGatewayJSON(g, now)})
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

// newGatewayJSON is g's entry of /api/v1/gateways at now.
func newGatewayJSON(g *ingest.Gateway, now time.Time) gatewayJSON {
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
	if latest, _, ok := g.AppendLatestJSON(nil); ok {
		j.Latest = latest
	}
	return j
}
