package fluxcheck

import (
	"context"
	"testing"
	"time"

	"github.com/p1logger/p1logger/deploy/flux"
)

// billingNow is the present of the billing tests: March 2026, so that both
// February 2026 (a winter month) and October 2025 (the month summer time
// ends: it starts at +02:00 and stops at +01:00) are complete, with their
// full 12-month peak windows in the seed.
var billingNow = time.Date(2026, 3, 10, 12, 0, 0, 0, brussels)

func month(y int, m time.Month) (start, stop time.Time) {
	start = time.Date(y, m, 1, 0, 0, 0, 0, brussels)
	return start, start.AddDate(0, 1, 0)
}

// prices are the billing parameters of every bill test, set explicitly so
// that editing the examples at the top of monthly-bill.flux changes no test.
func prices(bucket string, start, stop time.Time) map[string]any {
	return map[string]any{
		"bucket":                   bucket,
		"gateway":                  "home",
		"start":                    start,
		"stop":                     stop,
		"tariff1":                  "peak",
		"tariff2":                  "off-peak",
		"price_taken_t1":           0.32,
		"price_taken_t2":           0.26,
		"price_injected_t1":        0.04,
		"price_injected_t2":        0.02,
		"fixed_per_month":          9.5,
		"capacity_eur_per_kw_year": 48.0,
		"capacity_min_kw":          2.5,
		"vat":                      0.06,
		"vat_on_injection":         false,
	}
}

type billLine struct {
	item     string
	quantity float64
	unit     string
	price    float64
	amount   float64
}

// The sums below are worked out by hand from dayEnergy and peakW;
// TestSeedSums checks them against the seed so that a changed seed is caught
// there and not mistaken for a broken query.
//
// February 2026 (28 days, m%3 = 2):
//
//	taken T1    Σ 5 + 0.25·(d%8)   = 140 + 0.25·94 = 163.5 kWh
//	taken T2    Σ 3 + 0.5·(d%5)    = 84 + 0.5·56   = 112 kWh
//	injected T1 Σ 0.75·(d%6)       = 0.75·70       = 52.5 kWh
//	injected T2 Σ 0.25·(d%4)       = 0.25·42       = 10.5 kWh
//	gas         Σ 2 + 0.25·(d%7)   = 56 + 0.25·84  = 77 m³
//	peaks Mar 2025 … Feb 2026, kW: 3.9 1.8 2.15 2.5 2.85 3.2 3.55 3.9 1.8 2.15 2.5 2.85
//	  average 33.15/12 = 2.7625; each at least 2.5: 35.25/12 = 2.9375
//
// October 2025 (31 days, m%3 = 1):
//
//	taken T1    Σ 4.5 + 0.25·(d%8) = 139.5 + 0.25·112 = 167.5 kWh
//	taken T2    Σ 3 + 0.5·(d%5)    = 93 + 0.5·61      = 123.5 kWh
//	injected T1 Σ 0.75·(d%6)       = 0.75·76          = 57 kWh
//	injected T2 Σ 0.25·(d%4)       = 0.25·48          = 12 kWh
//	peaks Nov 2024 … Oct 2025, kW: 2.5 2.85 3.2 3.55 3.9 1.8 2.15 2.5 2.85 3.2 3.55 3.9
//	  each at least 2.5: 37/12 = 3.0833…
var (
	feb2026 = energy{t1: 163.5, t2: 112, i1: 52.5, i2: 10.5, gas: 77}
	oct2025 = energy{t1: 167.5, t2: 123.5, i1: 57, i2: 12, gas: 0}
)

func TestSeedSums(t *testing.T) {
	home := gateways[0]
	for _, c := range []struct {
		y    int
		m    time.Month
		want energy
	}{{2026, time.February, feb2026}, {2025, time.October, oct2025}} {
		start, stop := month(c.y, c.m)
		var got energy
		for d := start; d.Before(stop); d = d.AddDate(0, 0, 1) {
			got = got.add(dayEnergy(home, d.Month(), d.Day()))
		}
		if c.want.gas == 0 {
			got.gas = 0 // not worked out by hand for October
		}
		if got != c.want {
			t.Errorf("%d-%02d: seed sums to %+v, the hand-worked values are %+v", c.y, c.m, got, c.want)
		}
	}
	var feb, oct float64
	for i := 0; i < 12; i++ {
		s, _ := month(2025, time.March+time.Month(i))
		feb += max(peakW(s.Year(), s.Month())/1000, 2.5)
		s, _ = month(2024, time.November+time.Month(i))
		oct += max(peakW(s.Year(), s.Month())/1000, 2.5)
	}
	if !near(feb/12, 2.9375) || !near(oct/12, 37.0/12) {
		t.Errorf("billed peak averages: got %v and %v, the hand-worked values are 2.9375 and %v", feb/12, oct/12, 37.0/12)
	}
}

func TestMonthlyBill(t *testing.T) {
	srv, bucket := seeded(t, billingNow)
	febStart, febStop := month(2026, time.February)
	octStart, octStop := month(2025, time.October)

	cases := []struct {
		name   string
		start  time.Time
		stop   time.Time
		params map[string]any
		want   []billLine
	}{
		{
			// charges 52.32 + 29.12 + 9.5 + 11.75 = 102.69; VAT 6% of that
			// 6.1614 → 6.16; total 102.69 − 2.10 − 0.21 + 6.16 = 106.54.
			name: "February 2026", start: febStart, stop: febStop,
			want: []billLine{
				{"taken peak (tariff 1)", 163.5, "kWh", 0.32, 52.32},
				{"taken off-peak (tariff 2)", 112, "kWh", 0.26, 29.12},
				{"injected peak (tariff 1)", 52.5, "kWh", 0.04, -2.10},
				{"injected off-peak (tariff 2)", 10.5, "kWh", 0.02, -0.21},
				{"fixed costs", 1, "month", 9.5, 9.5},
				{"capacity tariff (12-month average peak)", 2.9375, "kW", 4, 11.75},
				{"VAT", 102.69, "EUR", 0.06, 6.16},
				{"total", 1, "month", 106.54, 106.54},
			},
		},
		{
			// VAT on the charges less the injection credit: 102.69 − 2.31 =
			// 100.38; 6% → 6.0228 → 6.02; total 100.38 + 6.02 = 106.40.
			name: "February 2026, VAT after injection", start: febStart, stop: febStop,
			params: map[string]any{"vat_on_injection": true},
			want: []billLine{
				{"taken peak (tariff 1)", 163.5, "kWh", 0.32, 52.32},
				{"taken off-peak (tariff 2)", 112, "kWh", 0.26, 29.12},
				{"injected peak (tariff 1)", 52.5, "kWh", 0.04, -2.10},
				{"injected off-peak (tariff 2)", 10.5, "kWh", 0.02, -0.21},
				{"fixed costs", 1, "month", 9.5, 9.5},
				{"capacity tariff (12-month average peak)", 2.9375, "kW", 4, 11.75},
				{"VAT", 100.38, "EUR", 0.06, 6.02},
				{"total", 1, "month", 106.40, 106.40},
			},
		},
		{
			// Dutch names, no capacity tariff, 21% VAT: charges 52.32 + 29.12
			// + 9.5 = 90.94; VAT 19.0974 → 19.10; total 90.94 − 2.31 + 19.10
			// = 107.73.
			name: "February 2026, Netherlands", start: febStart, stop: febStop,
			params: map[string]any{"tariff1": "off-peak", "tariff2": "peak", "capacity_eur_per_kw_year": 0.0, "vat": 0.21},
			want: []billLine{
				{"taken off-peak (tariff 1)", 163.5, "kWh", 0.32, 52.32},
				{"taken peak (tariff 2)", 112, "kWh", 0.26, 29.12},
				{"injected off-peak (tariff 1)", 52.5, "kWh", 0.04, -2.10},
				{"injected peak (tariff 2)", 10.5, "kWh", 0.02, -0.21},
				{"fixed costs", 1, "month", 9.5, 9.5},
				{"capacity tariff (12-month average peak)", 2.9375, "kW", 0, 0},
				{"VAT", 90.94, "EUR", 0.21, 19.10},
				{"total", 1, "month", 107.73, 107.73},
			},
		},
		{
			// 167.5 × 0.32 = 53.60; 123.5 × 0.26 = 32.11; 57 × 0.04 = 2.28;
			// 12 × 0.02 = 0.24; capacity 37/12 × 4 = 12.333 → 12.33;
			// charges 53.60 + 32.11 + 9.5 + 12.33 = 107.54; VAT 6.4524 →
			// 6.45; total 107.54 − 2.52 + 6.45 = 111.47.
			name: "October 2025 (summer time ends)", start: octStart, stop: octStop,
			want: []billLine{
				{"taken peak (tariff 1)", 167.5, "kWh", 0.32, 53.60},
				{"taken off-peak (tariff 2)", 123.5, "kWh", 0.26, 32.11},
				{"injected peak (tariff 1)", 57, "kWh", 0.04, -2.28},
				{"injected off-peak (tariff 2)", 12, "kWh", 0.02, -0.24},
				{"fixed costs", 1, "month", 9.5, 9.5},
				{"capacity tariff (12-month average peak)", 37.0 / 12, "kW", 4, 12.33},
				{"VAT", 107.54, "EUR", 0.06, 6.45},
				{"total", 1, "month", 111.47, 111.47},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params := prices(bucket, c.start, c.stop)
			for k, v := range c.params {
				params[k] = v
			}
			q, err := flux.Query("monthly-bill.flux", params)
			if err != nil {
				t.Fatal(err)
			}
			rows := run(t, srv, q)
			if len(rows) != len(c.want) {
				t.Fatalf("got %d lines, want %d: %v", len(rows), len(c.want), rows)
			}
			for i, w := range c.want {
				r := rows[i]
				if r["line"] != int64(i+1) || r["item"] != w.item || r["unit"] != w.unit || r["gateway"] != "home" ||
					!near(r["quantity"], w.quantity) || !near(r["price"], w.price) || !near(r["amount"], w.amount) {
					t.Errorf("line %d:\n got %v\nwant %+v", i+1, r, w)
				}
			}
		})
	}

	// A month without the gateway's p1_energy month point is a bill of
	// zero that says why, not an error (tableFind's "no table found" was).
	janStart, janStop := month(2019, time.January)
	for _, c := range []struct {
		name        string
		gateway     string
		start, stop time.Time
	}{
		// A caller that passes UTC midnights instead of the local month
		// start would bill the wrong month's point.
		{"UTC month start", "home", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"month before any data", "home", janStart, janStop},
		{"misspelt gateway", "hmoe", febStart, febStop},
	} {
		t.Run(c.name, func(t *testing.T) {
			params := prices(bucket, c.start, c.stop)
			params["gateway"] = c.gateway
			q, err := flux.Query("monthly-bill.flux", params)
			if err != nil {
				t.Fatal(err)
			}
			rows := run(t, srv, q)
			reason := `no data: no p1_energy month point for gateway "` + c.gateway + `" at ` + c.start.UTC().Format("2006-01-02T15:04:05.000000000Z") +
				" (a month before p1logger ran, a misspelt gateway, or a start that is not the local start of the month)"
			want := []struct {
				line int64
				item string
				unit string
				qty  float64
			}{{0, reason, "month", 0}, {8, "total", "month", 1}}
			if len(rows) != len(want) {
				t.Fatalf("got %d lines, want %d: %v", len(rows), len(want), rows)
			}
			for i, w := range want {
				r := rows[i]
				if r["line"] != w.line || r["item"] != w.item || r["unit"] != w.unit || r["gateway"] != c.gateway ||
					!near(r["quantity"], w.qty) || !near(r["price"], 0) || !near(r["amount"], 0) {
					t.Errorf("line %d:\n got %v\nwant %+v, price and amount 0", i, r, w)
				}
			}
		})
	}
}

// TestQueriesWithoutData runs every query of deploy/flux for a month and a
// gateway without data: each answers (empty where there is nothing to
// show), none fails.
func TestQueriesWithoutData(t *testing.T) {
	srv, bucket := seeded(t, billingNow)
	janStart, janStop := month(2019, time.January)
	febStart, febStop := month(2026, time.February)
	for _, name := range []string{"daily-energy.flux", "monthly-peaks.flux", "monthly-bill.flux"} {
		for _, c := range []struct {
			gateway     string
			start, stop time.Time
		}{{"home", janStart, janStop}, {"hmoe", febStart, febStop}} {
			params := map[string]any{"bucket": bucket, "gateway": c.gateway, "start": c.start, "stop": c.stop}
			switch name {
			case "monthly-peaks.flux":
				params["capacity_min_kw"] = 2.5
			case "monthly-bill.flux":
				params = prices(bucket, c.start, c.stop)
				params["gateway"] = c.gateway
			}
			q, err := flux.Query(name, params)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			rows, err := srv.Flux(ctx, q)
			cancel()
			if err != nil {
				t.Errorf("%s, gateway %s, %s: %v", name, c.gateway, c.start.Format("2006-01"), err)
			}
			if name != "monthly-bill.flux" && len(rows) != 0 {
				t.Errorf("%s, gateway %s, %s: %d rows, want none: %v", name, c.gateway, c.start.Format("2006-01"), len(rows), rows)
			}
		}
	}
}

func TestDailyEnergy(t *testing.T) {
	srv, bucket := seeded(t, billingNow)
	home := gateways[0]
	for _, c := range []struct {
		y    int
		m    time.Month
		days int
		sum  energy
	}{{2026, time.February, 28, feb2026}, {2025, time.October, 31, oct2025}} {
		start, stop := month(c.y, c.m)
		t.Run(start.Format("2006-01"), func(t *testing.T) {
			q, err := flux.Query("daily-energy.flux", map[string]any{"bucket": bucket, "gateway": "home", "start": start, "stop": stop})
			if err != nil {
				t.Fatal(err)
			}
			rows := run(t, srv, q)
			days := byResult(rows, "days")
			if len(days) != c.days {
				t.Fatalf("got %d days, want %d", len(days), c.days)
			}
			for i, r := range days {
				day := start.AddDate(0, 0, i)
				w := dayEnergy(home, day.Month(), day.Day())
				if tm, _ := r["_time"].(time.Time); !tm.Equal(day) {
					t.Errorf("day %d: _time %v, want local midnight %v", i+1, r["_time"], day)
				}
				if r["gateway"] != "home" || !near(r["taken_t1_kwh"], w.t1) || !near(r["taken_t2_kwh"], w.t2) ||
					!near(r["taken_kwh"], w.t1+w.t2) || !near(r["injected_t1_kwh"], w.i1) ||
					!near(r["injected_t2_kwh"], w.i2) || !near(r["injected_kwh"], w.i1+w.i2) || !near(r["gas_m3"], w.gas) {
					t.Errorf("day %s: got %v, want %+v", day.Format("2006-01-02"), r, w)
				}
			}
			total := byResult(rows, "total")
			if len(total) != 1 {
				t.Fatalf("got %d total rows, want 1: %v", len(total), total)
			}
			s := c.sum
			r := total[0]
			if !near(r["taken_t1_kwh"], s.t1) || !near(r["taken_t2_kwh"], s.t2) || !near(r["taken_kwh"], s.t1+s.t2) ||
				!near(r["injected_t1_kwh"], s.i1) || !near(r["injected_t2_kwh"], s.i2) || !near(r["injected_kwh"], s.i1+s.i2) {
				t.Errorf("total: got %v, want %+v", r, s)
			}
			if s.gas != 0 && !near(r["gas_m3"], s.gas) {
				t.Errorf("total gas_m3: got %v, want %v", r["gas_m3"], s.gas)
			}
		})
	}
}

func TestMonthlyPeaks(t *testing.T) {
	srv, bucket := seeded(t, billingNow)
	start, stop := month(2026, time.February)
	q, err := flux.Query("monthly-peaks.flux", map[string]any{"bucket": bucket, "gateway": "home", "start": start, "stop": stop, "capacity_min_kw": 2.5})
	if err != nil {
		t.Fatal(err)
	}
	rows := run(t, srv, q)

	// March 2025 to February 2026; see the table above TestSeedSums.
	wantKW := []float64{3.9, 1.8, 2.15, 2.5, 2.85, 3.2, 3.55, 3.9, 1.8, 2.15, 2.5, 2.85}
	peaks := byResult(rows, "peaks")
	if len(peaks) != len(wantKW) {
		t.Fatalf("got %d months, want %d: %v", len(peaks), len(wantKW), peaks)
	}
	for i, r := range peaks {
		ms, _ := month(2025, time.March+time.Month(i))
		if tm, _ := r["_time"].(time.Time); !tm.Equal(ms) {
			t.Errorf("month %d: _time %v, want the local month start %v", i+1, r["_time"], ms)
		}
		if !near(r["peak_kw"], wantKW[i]) || !near(r["billed_kw"], max(wantKW[i], 2.5)) ||
			r["peak_at"] != peakAt(ms.Year(), ms.Month(), brussels) || r["gateway"] != "home" {
			t.Errorf("month %s: got %v, want peak %v kW at %s", ms.Format("2006-01"), r, wantKW[i], peakAt(ms.Year(), ms.Month(), brussels))
		}
	}
	avg := byResult(rows, "average")
	if len(avg) != 1 {
		t.Fatalf("got %d average rows, want 1: %v", len(avg), avg)
	}
	if r := avg[0]; r["months"] != int64(12) || !near(r["average_kw"], 2.7625) || !near(r["billed_average_kw"], 2.9375) {
		t.Errorf("average: got %v, want 12 months, 2.7625 kW, billed 2.9375 kW", r)
	}
}
