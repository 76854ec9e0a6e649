package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// country is what a country's bill does differently: the names of the
// tariffs its users know from their invoices, its VAT on electricity, and
// which lines it has. Prices stay the user's (flags, P1_REPORT_*).
type country struct {
	defaults map[string]any // over monthly-bill.flux's, under what is set
	capacity bool           // the Belgian capacity tariff line
	tariffs  bool           // taken and injected per tariff, or totals only
}

// countries are the values of --country / P1_REPORT_COUNTRY. "" is the bill
// of monthly-bill.flux, parameters as given.
var countries = map[string]*country{
	"": {capacity: true, tariffs: true},
	// Belgium: tariff 1 is the day ("heures pleines") register.
	"be": {defaults: map[string]any{"tariff1": "peak", "tariff2": "off-peak", "vat": 0.06}, capacity: true, tariffs: true},
	// The Netherlands: tariff 1 is "dal" (low), tariff 2 "normaal"; no
	// capacity tariff.
	"nl": {defaults: map[string]any{"tariff1": "low (dal)", "tariff2": "normal", "vat": 0.21}, tariffs: true},
	// Luxembourg and the rest: one price for all energy taken, one for
	// injected (the tariff 1 prices).
	"lu":    {defaults: map[string]any{"vat": 0.08}},
	"other": {},
}

// billPrices returns the bill parameters: set ones (flags, P1_REPORT_*)
// over the country's defaults over those that monthly-bill.flux holds, so
// that the report and the Flux file bill alike with nothing set.
func billPrices(set map[string]any, cc string) (map[string]any, error) {
	defaults := fluxDefaults(billQuery)
	out := make(map[string]any, len(billParams))
	for _, p := range billParams {
		if v, ok := set[p.name]; ok {
			out[p.name] = v
			continue
		}
		if v, ok := countries[cc].defaults[p.name]; ok {
			out[p.name] = v
			continue
		}
		d, ok := defaults[p.name]
		if !ok {
			return nil, fmt.Errorf("%s has no default for %s", billQuery, p.name)
		}
		v, err := billValue(p, strings.Trim(d, `"`))
		if err != nil {
			return nil, fmt.Errorf("%s: default %s %q %v", billQuery, p.name, d, err)
		}
		out[p.name] = v
	}
	return out, nil
}

// cents rounds to cents, half away from zero, as Flux's math.round does.
func cents(x float64) float64 { return math.Round(x*100) / 100 }

// computeBill is monthly-bill.flux in Go, line for line, so that the bill
// is the same whichever query language the server speaks: energy is the
// gateway's p1_energy month point (found false: none), peaksW its p1_peak
// values of the 12 months ending with this one. Amounts are rounded to
// cents line by line; the total is the sum of the rounded lines. Without
// a month point the bill is line 0, the reason, and a total of 0.
//
// cc is the country (see countries): without the capacity tariff, that
// line is left out and costs nothing; with totals only, energy is billed
// on taken_kwh and injected_kwh at the tariff 1 prices.
func computeBill(prices map[string]any, cc string, gateway string, start time.Time, energy map[string]float64, found bool, peaksW []float64) []billLine {
	rules := countries[cc]
	f := func(name string) float64 { v, _ := prices[name].(float64); return v }
	s := func(name string) string { v, _ := prices[name].(string); return v }
	e := func(name string) float64 {
		if !found {
			return 0
		}
		return energy[name]
	}
	minKW := f("capacity_min_kw")
	capacityKW := minKW
	if len(peaksW) > 0 {
		sum := 0.0
		for _, w := range peaksW {
			sum += math.Max(w/1000, minKW)
		}
		capacityKW = sum / float64(len(peaksW))
	}
	capacityPrice := f("capacity_eur_per_kw_year") / 12

	takenT1 := cents(e("taken_t1_kwh") * f("price_taken_t1"))
	takenT2 := cents(e("taken_t2_kwh") * f("price_taken_t2"))
	injectedT1 := 0 - cents(e("injected_t1_kwh")*f("price_injected_t1"))
	injectedT2 := 0 - cents(e("injected_t2_kwh")*f("price_injected_t2"))
	if !rules.tariffs {
		takenT1, takenT2 = cents(e("taken_kwh")*f("price_taken_t1")), 0
		injectedT1, injectedT2 = 0-cents(e("injected_kwh")*f("price_injected_t1")), 0
	}
	fixed := cents(f("fixed_per_month"))
	capacity := cents(capacityKW * capacityPrice)
	if !rules.capacity {
		capacity = 0
	}
	charges := takenT1 + takenT2 + fixed + capacity
	vatBase := charges
	if v, _ := prices["vat_on_injection"].(bool); v {
		vatBase = charges + injectedT1 + injectedT2
	}
	vat := cents(vatBase * f("vat"))
	total := 0.0
	if found {
		total = cents(charges + injectedT1 + injectedT2 + vat)
	}
	if !found {
		reason := fmt.Sprintf("no data: no p1_energy month point for gateway %q at %s (a month before p1logger ran, a misspelt gateway, or a start that is not the local start of the month)",
			gateway, start.UTC().Format(time.RFC3339Nano))
		return []billLine{
			{0, reason, 0, "month", 0, 0},
			{8, "total", 1, "month", total, total},
		}
	}
	t1, t2 := s("tariff1"), s("tariff2")
	var lines []billLine
	if rules.tariffs {
		lines = append(lines,
			billLine{1, "taken " + t1 + " (tariff 1)", e("taken_t1_kwh"), "kWh", f("price_taken_t1"), takenT1},
			billLine{2, "taken " + t2 + " (tariff 2)", e("taken_t2_kwh"), "kWh", f("price_taken_t2"), takenT2},
			billLine{3, "injected " + t1 + " (tariff 1)", e("injected_t1_kwh"), "kWh", f("price_injected_t1"), injectedT1},
			billLine{4, "injected " + t2 + " (tariff 2)", e("injected_t2_kwh"), "kWh", f("price_injected_t2"), injectedT2})
	} else {
		lines = append(lines,
			billLine{1, "taken", e("taken_kwh"), "kWh", f("price_taken_t1"), takenT1},
			billLine{3, "injected", e("injected_kwh"), "kWh", f("price_injected_t1"), injectedT1})
	}
	lines = append(lines, billLine{5, "fixed costs", 1, "month", f("fixed_per_month"), fixed})
	if rules.capacity {
		lines = append(lines, billLine{6, "capacity tariff (12-month average peak)", capacityKW, "kW", capacityPrice, capacity})
	}
	return append(lines,
		billLine{7, "VAT", vatBase, "EUR", f("vat"), vat},
		billLine{8, "total", 1, "month", total, total})
}
