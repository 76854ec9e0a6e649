package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/deploy/flux"
	"github.com/p1logger/p1logger/internal/influxtest"
)

// brussels is the zone of the report tests: October 2025 starts at +02:00
// and ends at +01:00, March 2026 the other way round.
func brusselsLoc(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// reportSeed is what the rollup and the batcher would have written, plus
// decoys the report must not bill: neighbouring months, day points, peaks
// outside the 12-month window, and a month point at UTC midnight.
func reportSeed(loc *time.Location) []byte {
	var b bytes.Buffer
	at := func(y int, m time.Month) int64 { return time.Date(y, m, 1, 0, 0, 0, 0, loc).UnixNano() }
	month := func(gw string, ns int64, t1, t2, i1, i2 float64) {
		fmt.Fprintf(&b, "p1_energy,gateway=%s,period=month taken_kwh=%v,taken_t1_kwh=%v,taken_t2_kwh=%v,injected_kwh=%v,injected_t1_kwh=%v,injected_t2_kwh=%v %d\n",
			gw, t1+t2, t1, t2, i1+i2, i1, i2, ns)
	}
	// The billed months.
	month("home", at(2025, time.October), 201.25, 150.5, 80, 12.75)
	month("garage", at(2025, time.October), 10, 20, 0, 0)
	month("garage", at(2026, time.March), 98.5, 120.25, 0, 0)
	// Decoys.
	month("home", at(2025, time.September), 1000, 1000, 1000, 1000)
	month("home", at(2025, time.November), 2000, 2000, 2000, 2000)
	month("cottage", at(2025, time.November), 5, 5, 0, 0)
	month("garage", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano(), 3000, 3000, 0, 0)
	fmt.Fprintf(&b, "p1_energy,gateway=home,period=day taken_kwh=7,taken_t1_kwh=3,taken_t2_kwh=4 %d\n", at(2025, time.October))
	fmt.Fprintf(&b, "p1_energy,gateway=home,period=day taken_kwh=9,taken_t1_kwh=4,taken_t2_kwh=5 %d\n",
		time.Date(2025, 10, 26, 0, 0, 0, 0, loc).UnixNano())
	// Peaks of home, November 2024 to October 2025 (billed), and outside.
	peaks := []float64{3000, 2000, 4200, 3600, 2800, 2400, 3100, 2600, 2500, 5000, 3300, 2900}
	for i, w := range peaks {
		fmt.Fprintf(&b, "p1_peak,gateway=home peak_w=%v,peak_at=\"x\" %d\n", w, at(2024, time.November+time.Month(i)))
	}
	fmt.Fprintf(&b, "p1_peak,gateway=home peak_w=9000,peak_at=\"x\" %d\n", at(2024, time.October))
	fmt.Fprintf(&b, "p1_peak,gateway=home peak_w=9500,peak_at=\"x\" %d\n", at(2025, time.November))
	return b.Bytes()
}

// octPrices are the flags of the October 2025 tests.
var octPrices = []string{
	"--price-taken-t1", "0.30", "--price-taken-t2", "0.25",
	"--price-injected-t1", "0.05", "--price-injected-t2", "0.04",
	"--fixed-per-month", "10", "--capacity-eur-per-kw-year", "60", "--capacity-min-kw", "2.5",
	"--vat", "0.06", "--tariff1", "peak", "--tariff2", "off-peak", "--vat-on-injection=false",
}

func runReportT(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"report"}, args...), env, nil, &out, &errb)
	return code, out.String(), errb.String()
}

// TestReport bills seeded months in Europe/Brussels against a real InfluxDB
// 1.8. The numbers are worked out by hand; amounts are rounded to cents
// line by line, half away from zero, as monthly-bill.flux does.
func TestReport(t *testing.T) {
	for _, lang := range []string{"flux", "influxql", "auto"} {
		t.Run(lang, func(t *testing.T) { testReport(t, lang) })
	}
}

func testReport(t *testing.T, lang string) {
	loc := brusselsLoc(t)
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WriteLines(ctx, bucket, reportSeed(loc)); err != nil {
		t.Fatal(err)
	}
	// No P1_GATEWAYS: the report does not need it. Daemon-only variables
	// with values the daemon would refuse do not matter either.
	env := []string{"P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket, "P1_TIMEZONE=Europe/Brussels",
		"P1_CYCLE=bogus", "P1_HTTP_ADDR=nonsense", "P1_INFLUX_QUERY=" + lang}

	t.Run("table", func(t *testing.T) {
		// October 2025, home:
		//   taken T1    201.25 × 0.30 = 60.375  → 60.38
		//   taken T2    150.5  × 0.25 = 37.625  → 37.63
		//   injected T1 80     × 0.05 = 4.00
		//   injected T2 12.75  × 0.04 = 0.51
		//   capacity    peaks Nov 2024–Oct 2025, each at least 2.5 kW:
		//               3 2.5 4.2 3.6 2.8 2.5 3.1 2.6 2.5 5 3.3 2.9 = 38 / 12
		//               = 3.1667 kW × 60/12 EUR = 15.8333 → 15.83
		//   charges     60.38 + 37.63 + 10 + 15.83 = 123.84; VAT 6 % 7.4304 → 7.43
		//   total       123.84 − 4.00 − 0.51 + 7.43 = 126.76
		code, out, errs := runReportT(t, env, append([]string{"--month", "2025-10", "--gateway", "home"}, octPrices...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		want := `Electricity bill 2025-10, gateway home
2025-10-01 00:00 +02:00 to 2025-11-01 00:00 +01:00 (Europe/Brussels)

  item                                     quantity          price             amount
  taken peak (tariff 1)                     201.250  kWh    0.3000  EUR/kWh     60.38
  taken off-peak (tariff 2)                 150.500  kWh    0.2500  EUR/kWh     37.63
  injected peak (tariff 1)                   80.000  kWh    0.0500  EUR/kWh     -4.00
  injected off-peak (tariff 2)               12.750  kWh    0.0400  EUR/kWh     -0.51
  fixed costs                                     1  month   10.00  EUR/month   10.00
  capacity tariff (12-month average peak)     3.167  kW     5.0000  EUR/kW      15.83
  VAT                                        123.84  EUR       6 %               7.43
  -----------------------------------------------------------------------------------
  total (EUR, VAT included)                                                    126.76
`
		if out != want {
			t.Errorf("got\n%s\nwant\n%s", out, want)
		}
	})

	t.Run("csv, every gateway", func(t *testing.T) {
		// garage: 10 × 0.30 = 3.00, 20 × 0.25 = 5.00, no peaks: the minimum
		// 2.5 kW × 5 = 12.50; charges 30.50, VAT 1.83, total 32.33.
		code, out, errs := runReportT(t, env, append([]string{"--month", "2025-10", "--format", "csv"}, octPrices...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		want := `month,gateway,line,item,quantity,unit,price,amount
2025-10,garage,1,taken peak (tariff 1),10,kWh,0.3,3
2025-10,garage,2,taken off-peak (tariff 2),20,kWh,0.25,5
2025-10,garage,3,injected peak (tariff 1),0,kWh,0.05,0
2025-10,garage,4,injected off-peak (tariff 2),0,kWh,0.04,0
2025-10,garage,5,fixed costs,1,month,10,10
2025-10,garage,6,capacity tariff (12-month average peak),2.5,kW,5,12.5
2025-10,garage,7,VAT,30.5,EUR,0.06,1.83
2025-10,garage,8,total,1,month,32.33,32.33
2025-10,home,1,taken peak (tariff 1),201.25,kWh,0.3,60.38
2025-10,home,2,taken off-peak (tariff 2),150.5,kWh,0.25,37.63
2025-10,home,3,injected peak (tariff 1),80,kWh,0.05,-4
2025-10,home,4,injected off-peak (tariff 2),12.75,kWh,0.04,-0.51
2025-10,home,5,fixed costs,1,month,10,10
2025-10,home,6,capacity tariff (12-month average peak),3.1666666666666665,kW,5,15.83
2025-10,home,7,VAT,123.84,EUR,0.06,7.43
2025-10,home,8,total,1,month,126.76,126.76
`
		if out != want {
			t.Errorf("got\n%s\nwant\n%s", out, want)
		}
	})

	t.Run("json, prices from the environment", func(t *testing.T) {
		// March 2026, garage (summer time begins on the 29th), Dutch
		// names, prices from P1_REPORT_*, VAT from the flag over its
		// variable:
		//   98.5 × 0.28 = 27.58; 120.25 × 0.22 = 26.455 → 26.46;
		//   fixed 7.50; no capacity tariff; charges 61.54;
		//   VAT 21 % 12.9234 → 12.92; total 74.46.
		penv := append(env[:len(env):len(env)],
			"P1_REPORT_TARIFF1=off-peak", "P1_REPORT_TARIFF2=peak",
			"P1_REPORT_PRICE_TAKEN_T1=0.28", "P1_REPORT_PRICE_TAKEN_T2=0.22",
			"P1_REPORT_PRICE_INJECTED_T1=0.03", "P1_REPORT_PRICE_INJECTED_T2=0.02",
			"P1_REPORT_FIXED_PER_MONTH=7.5", "P1_REPORT_CAPACITY_EUR_PER_KW_YEAR=0",
			"P1_REPORT_CAPACITY_MIN_KW=2.5", "P1_REPORT_VAT=0.06", "P1_REPORT_VAT_ON_INJECTION=false")
		code, out, errs := runReportT(t, penv, "--month", "2026-03", "--format", "json", "--vat", "0.21")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var got reportJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
		if got.Month != "2026-03" || got.Timezone != "Europe/Brussels" || !got.Start.Equal(start) ||
			!got.Stop.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, loc)) || got.Stop.Sub(got.Start) != (31*24-1)*time.Hour ||
			len(got.Bills) != 1 || got.Bills[0].Gateway != "garage" || got.Bills[0].Total != 74.46 {
			t.Fatalf("got %+v", got)
		}
		want := []billLine{
			{1, "taken off-peak (tariff 1)", 98.5, "kWh", 0.28, 27.58},
			{2, "taken peak (tariff 2)", 120.25, "kWh", 0.22, 26.46},
			{3, "injected off-peak (tariff 1)", 0, "kWh", 0.03, 0},
			{4, "injected peak (tariff 2)", 0, "kWh", 0.02, 0},
			{5, "fixed costs", 1, "month", 7.5, 7.5},
			{6, "capacity tariff (12-month average peak)", 2.5, "kW", 0, 0},
			{7, "VAT", 61.54, "EUR", 0.21, 12.92},
			{8, "total", 1, "month", 74.46, 74.46},
		}
		if len(got.Bills[0].Lines) != len(want) {
			t.Fatalf("got lines %+v", got.Bills[0].Lines)
		}
		for i, w := range want {
			if g := got.Bills[0].Lines[i]; g != w {
				t.Errorf("line %d:\n got %+v\nwant %+v", i+1, g, w)
			}
		}
	})

	t.Run("no data", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--month", "2025-08"}, "no data for 2025-08 (2025-08-01T00:00:00+02:00 to 2025-09-01T00:00:00+02:00, Europe/Brussels)"},
			{[]string{"--month", "2025-10", "--gateway", "cottage"}, `no data for gateway "cottage" in 2025-10 (2025-10-01T00:00:00+02:00 to 2025-11-01T00:00:00+01:00, Europe/Brussels); gateways with data: garage, home`},
			{[]string{"--month", "2025-12", "--gateway", "home"}, `no data for gateway "home" in 2025-12`},
		} {
			code, out, errs := runReportT(t, env, c.args...)
			if code != 1 || out != "" || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and %q", c.args, code, out, errs, c.want)
			}
		}
	})
}

// TestReportEqualsFluxFile: the bill p1logger report computes in Go, asked
// in either language, is line for line the one deploy/flux/monthly-bill.flux
// computes on the same data, with its default prices and with others.
func TestReportEqualsFluxFile(t *testing.T) {
	loc := brusselsLoc(t)
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.WriteLines(ctx, bucket, reportSeed(loc)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		month, gateway string
		prices         []string
	}{
		{"2025-10", "home", nil},
		{"2025-10", "home", octPrices},
		{"2025-10", "garage", octPrices},
		{"2026-03", "garage", []string{"--vat", "0.21", "--vat-on-injection=true", "--capacity-eur-per-kw-year", "0"}},
	} {
		start, stop, _, err := reportMonth(c.month, time.Time{}, loc)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := parseReportArgs(c.prices, nil)
		if err != nil {
			t.Fatal(err)
		}
		params := map[string]any{"bucket": bucket, "gateway": c.gateway, "start": start, "stop": stop}
		for k, v := range opts.params {
			params[k] = v
		}
		src, err := flux.Query(billQuery, params)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := srv.Flux(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		var want []billLine
		for _, r := range rows {
			l := billLine{Line: r["line"].(int64), Item: r["item"].(string), Unit: r["unit"].(string)}
			l.Quantity, l.Price, l.Amount = r["quantity"].(float64), r["price"].(float64), r["amount"].(float64)
			want = append(want, l)
		}
		if len(want) != 8 {
			t.Fatalf("%s %s: %s gave %d lines: %v", c.month, c.gateway, billQuery, len(want), rows)
		}
		for _, lang := range []string{"flux", "influxql"} {
			env := []string{"P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket, "P1_TIMEZONE=Europe/Brussels", "P1_INFLUX_QUERY=" + lang}
			code, out, errs := runReportT(t, env, append([]string{"--month", c.month, "--gateway", c.gateway, "--format", "json"}, c.prices...)...)
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", lang, code, errs)
			}
			var got reportJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Bills) != 1 || fmt.Sprint(got.Bills[0].Lines) != fmt.Sprint(want) || got.Bills[0].Total != want[7].Amount {
				t.Errorf("%s %s %v, %s:\nreport %+v\nflux   %+v", c.month, c.gateway, c.prices, lang, got.Bills, want)
			}
		}
	}
}

func TestReportInfluxUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	code, out, errs := runReportT(t, []string{"P1_INFLUX_URL=" + url, "P1_TIMEZONE=Europe/Brussels"}, "--month", "2026-02")
	if code != 1 || out != "" || !strings.Contains(errs, "InfluxDB at "+url+", bucket p1: ") ||
		!strings.Contains(errs, "connection refused") || strings.Count(errs, "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestReportUsageErrors(t *testing.T) {
	env := []string{"P1_INFLUX_URL=http://127.0.0.1:1", "P1_TIMEZONE=Europe/Brussels"}
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--month", "2026-13"}, `--month: "2026-13" is not a month; want YYYY-MM`},
		{nil, []string{"--month", "2026-2"}, `--month: "2026-2" is not a month`},
		{nil, []string{"--month", "Feb"}, `--month: "Feb" is not a month`},
		{nil, []string{"--format", "xml"}, `--format: "xml" is not a format; want table, csv or json`},
		{nil, []string{"--vat", "21"}, `--vat: "21" is not a rate; want a fraction such as 0.06`},
		{nil, []string{"--price-taken-t1", "0,32"}, `--price-taken-t1: "0,32" is not a number`},
		{nil, []string{"--vat-on-injection=maybe"}, `--vat-on-injection: "maybe" is not a boolean`},
		{nil, []string{"--fixed-per-month", "-1"}, `--fixed-per-month: "-1" is negative`},
		{nil, []string{"--tariff1", `pe"ak`}, `--tariff1: "pe\"ak" is not a usable name`},
		{nil, []string{"--gateway", ""}, `--gateway: "" is not a gateway name`},
		{nil, []string{"--timeout", "0s"}, `--timeout: 0s is not a positive duration`},
		{nil, []string{"--price"}, `flag provided but not defined: -price`},
		{nil, []string{"2026-02"}, `unexpected argument "2026-02"`},
		{[]string{"P1_REPORT_VAT=six"}, nil, `P1_REPORT_VAT: "six" is not a number`},
		{[]string{"P1_TIMEZONE=Mars/Olympus"}, nil, `P1_TIMEZONE: "Mars/Olympus" is not a known time zone`},
		{[]string{"P1_INFLUX_URL=localhost:8086"}, nil, `P1_INFLUX_URL: "localhost:8086" is not an http(s) URL`},
	} {
		code, out, errs := runReportT(t, append(env[:len(env):len(env)], c.env...), c.args...)
		if code != 2 || out != "" || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want 2 and %q", c.env, c.args, code, out, errs, c.want)
		}
	}
	code, out, _ := runReportT(t, env, "-h")
	if code != 0 || !strings.Contains(out, "--price-taken-t1 NUMBER") || !strings.Contains(out, "env P1_REPORT_PRICE_TAKEN_T1; default 0.32") {
		t.Errorf("-h: exit %d\n%s", code, out)
	}
}

// TestReportParamsCoverQuery: every parameter of monthly-bill.flux, except
// those the report computes, has a flag, so a parameter added to the query
// cannot silently be left at its example value.
func TestReportParamsCoverQuery(t *testing.T) {
	defaults := fluxDefaults(billQuery)
	if len(defaults) == 0 {
		t.Fatal("no parameters read from " + billQuery)
	}
	for name := range defaults {
		switch name {
		case "bucket", "gateway", "start", "stop":
			continue
		}
		found := false
		for _, p := range billParams {
			found = found || p.name == name
		}
		if !found {
			t.Errorf("%s parameter %s has no flag", billQuery, name)
		}
	}
	for _, p := range billParams {
		if _, ok := defaults[p.name]; !ok {
			t.Errorf("flag --%s sets %s, which %s does not have", p.flag(), p.name, billQuery)
		}
	}
}

func TestReportMonth(t *testing.T) {
	loc := brusselsLoc(t)
	for _, c := range []struct {
		month string
		now   time.Time
		want  string // start/stop
	}{
		// Last month, by the local calendar: 00:30 on 1 March in Brussels
		// is still 28 February in UTC.
		{"", time.Date(2026, 2, 28, 23, 30, 0, 0, time.UTC), "2026-02-01T00:00:00+01:00/2026-03-01T00:00:00+01:00"},
		{"", time.Date(2026, 2, 28, 22, 30, 0, 0, time.UTC), "2026-01-01T00:00:00+01:00/2026-02-01T00:00:00+01:00"},
		{"", time.Date(2026, 1, 10, 12, 0, 0, 0, loc), "2025-12-01T00:00:00+01:00/2026-01-01T00:00:00+01:00"},
		{"2026-03", time.Time{}, "2026-03-01T00:00:00+01:00/2026-04-01T00:00:00+02:00"},
		{"2025-10", time.Time{}, "2025-10-01T00:00:00+02:00/2025-11-01T00:00:00+01:00"},
	} {
		start, stop, _, err := reportMonth(c.month, c.now, loc)
		if got := start.Format(time.RFC3339) + "/" + stop.Format(time.RFC3339); err != nil || got != c.want {
			t.Errorf("reportMonth(%q, %v): %s %v, want %s", c.month, c.now, got, err, c.want)
		}
	}
}

// TestReportCountry: a Dutch meter gets a Dutch bill (tariff 1 is "dal",
// low; no capacity tariff; VAT 21 %), a Luxembourg one totals only, in
// either language; prices are monthly-bill.flux's defaults (0.32, 0.26,
// 0.04, 0.03 EUR/kWh, 9.50 EUR a month).
func TestReportCountry(t *testing.T) {
	loc := brusselsLoc(t)
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at := time.Date(2025, 10, 1, 0, 0, 0, 0, loc).UnixNano()
	seed := fmt.Sprintf("p1_energy,gateway=thuis,period=month taken_kwh=330.5,taken_t1_kwh=120.5,taken_t2_kwh=210,injected_kwh=75,injected_t1_kwh=30,injected_t2_kwh=45 %d\n", at) +
		fmt.Sprintf("p1_energy,gateway=doheem,period=month taken_kwh=300,taken_t1_kwh=300,taken_t2_kwh=0,injected_kwh=0,injected_t1_kwh=0,injected_t2_kwh=0 %d\n", at)
	if err := srv.WriteLines(ctx, bucket, []byte(seed)); err != nil {
		t.Fatal(err)
	}
	type line struct{ item, amount string }
	for _, tc := range []struct {
		gateway string
		env     []string
		args    []string
		want    []line
	}{
		// taken 120.5 × 0.32 = 38.56, 210 × 0.26 = 54.60; injected 30 ×
		// 0.04 = 1.20, 45 × 0.03 = 1.35; charges 38.56 + 54.60 + 9.50 =
		// 102.66; VAT 21 % 21.5586 → 21.56; total 121.67.
		{"thuis", nil, []string{"--country", "nl"}, []line{
			{"taken low (dal) (tariff 1)", "38.56"}, {"taken normal (tariff 2)", "54.60"},
			{"injected low (dal) (tariff 1)", "-1.20"}, {"injected normal (tariff 2)", "-1.35"},
			{"fixed costs", "9.50"}, {"VAT", "21.56"}, {"total", "121.67"}}},
		// taken 300 × 0.32 = 96.00; charges 105.50; VAT 8 % 8.44; total 113.94.
		{"doheem", []string{"P1_REPORT_COUNTRY=lu"}, nil, []line{
			{"taken", "96.00"}, {"injected", "0.00"}, {"fixed costs", "9.50"}, {"VAT", "8.44"}, {"total", "113.94"}}},
	} {
		for _, lang := range []string{"flux", "influxql"} {
			env := append([]string{"P1_INFLUX_URL=" + srv.URL(), "P1_INFLUX_BUCKET=" + bucket, "P1_TIMEZONE=Europe/Brussels", "P1_INFLUX_QUERY=" + lang}, tc.env...)
			code, out, errs := runReportT(t, env, append([]string{"--month", "2025-10", "--gateway", tc.gateway, "--format", "json"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("%s %s: exit %d: %s", tc.gateway, lang, code, errs)
			}
			var got reportJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			var lines []line
			for _, l := range got.Bills[0].Lines {
				lines = append(lines, line{l.Item, money(l.Amount)})
			}
			if fmt.Sprint(lines) != fmt.Sprint(tc.want) {
				t.Errorf("%s %s:\n got %v\nwant %v", tc.gateway, lang, lines, tc.want)
			}
		}
	}
	code, _, errs := runReportT(t, []string{"P1_INFLUX_URL=" + srv.URL(), "P1_REPORT_COUNTRY=fr"}, "--month", "2025-10")
	if code != 2 || !strings.Contains(errs, `P1_REPORT_COUNTRY: "fr" is not a country the report knows; want be, nl, lu or other`) {
		t.Errorf("P1_REPORT_COUNTRY=fr: exit %d, %s", code, errs)
	}
}
