package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/p1logger/p1logger/deploy/flux"
	"github.com/p1logger/p1logger/internal/influx"
	"github.com/p1logger/p1logger/rollup"
)

// billQuery is the Flux file whose bill p1logger report computes in Go (so
// that it is the same on every InfluxDB, Flux or not) and whose
// parameters hold the report's default prices.
const billQuery = "monthly-bill.flux"

// billParam is a price parameter of monthly-bill.flux that the report sets
// from a flag (the name with dashes) or from P1_REPORT_<NAME>; when neither
// is given, the file's own value applies.
type billParam struct {
	name string // in the query's option params
	kind byte   // 'f' float, 'b' bool, 's' string
	help string
}

var billParams = []billParam{
	{"tariff1", 's', "name of tariff 1 on the bill (Belgium: peak; Netherlands: off-peak)"},
	{"tariff2", 's', "name of tariff 2 on the bill"},
	{"price_taken_t1", 'f', "price of energy taken on tariff 1, EUR/kWh excl. VAT"},
	{"price_taken_t2", 'f', "price of energy taken on tariff 2, EUR/kWh excl. VAT"},
	{"price_injected_t1", 'f', "credit for energy injected on tariff 1, EUR/kWh"},
	{"price_injected_t2", 'f', "credit for energy injected on tariff 2, EUR/kWh"},
	{"fixed_per_month", 'f', "fixed costs, EUR per month excl. VAT"},
	{"capacity_eur_per_kw_year", 'f', "capacity tariff, EUR per kW per year excl. VAT (0 where there is none)"},
	{"capacity_min_kw", 'f', "minimum counted for each monthly peak, kW"},
	{"vat", 'f', "VAT rate, e.g. 0.06 (Belgium) or 0.21 (Netherlands)"},
	{"vat_on_injection", 'b', "whether the injection credit lowers the amount VAT is charged on"},
}

func (p billParam) flag() string { return strings.ReplaceAll(p.name, "_", "-") }
func (p billParam) env() string  { return "P1_REPORT_" + strings.ToUpper(p.name) }

// exitError is an error with the exit status it causes: 2 for bad usage
// (a flag or variable, named in the message), 1 for everything else.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{2, fmt.Errorf(format, args...)}
}

// reportOptions is a parsed command line.
type reportOptions struct {
	month   string // YYYY-MM; empty: last month
	gateway string // empty: every gateway with data
	country string // be, nl, lu, other; empty: the bill of monthly-bill.flux
	format  string
	timeout time.Duration
	params  map[string]any // bill parameters set by flag or environment
}

// runReport is "p1logger report": it prints the monthly bill of one or every
// gateway. Exit status 0 on success, 1 when InfluxDB fails or holds no data
// for the month, 2 on a bad flag or variable.
func runReport(args, environ []string, stdout, stderr io.Writer) int {
	err := report(context.Background(), args, environ, time.Now(), stdout)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, reportUsage())
		return 0
	}
	fmt.Fprintf(stderr, "p1logger report: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func report(ctx context.Context, args, environ []string, now time.Time, stdout io.Writer) error {
	opts, err := parseReportArgs(args, environ)
	if err != nil {
		return err
	}
	cfg, err := reportConfig(environ)
	if err != nil {
		return &exitError{2, err}
	}
	start, stop, label, err := reportMonth(opts.month, now, cfg.Location)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	client, err := newQueryClient(cfg, opts.timeout+time.Second)
	if err != nil {
		return &exitError{2, err}
	}
	where := fmt.Sprintf("InfluxDB at %s, bucket %s", redactURL(cfg.InfluxURL), cfg.InfluxBucket)

	// One question for the month's points of every gateway: the bill needs
	// the point at the month's start; the others say which gateways exist.
	points, err := client.Energy(ctx, "month", start, stop, "")
	if err != nil {
		return fmt.Errorf("%s: %s", where, oneLine(err.Error()))
	}
	energy := map[string]influx.Energy{}
	var have []string
	for _, e := range points {
		if e.At.Equal(start) {
			energy[e.Gateway] = e
			have = append(have, e.Gateway)
		}
	}
	sort.Strings(have)
	period := fmt.Sprintf("%s (%s to %s, %s)", label, start.Format(time.RFC3339), stop.Format(time.RFC3339), cfg.Location)
	gateways := have
	if opts.gateway != "" {
		gateways = []string{opts.gateway}
		if !contains(have, opts.gateway) {
			if len(have) == 0 {
				return fmt.Errorf("no data for gateway %q in %s: %s holds no p1_energy month point for that month", opts.gateway, period, where)
			}
			return fmt.Errorf("no data for gateway %q in %s; gateways with data: %s", opts.gateway, period, strings.Join(have, ", "))
		}
	}
	if len(gateways) == 0 {
		return fmt.Errorf("no data for %s: %s holds no p1_energy month point for that month (is p1logger writing there, and was it running then?)", period, where)
	}
	prices, err := billPrices(opts.params, opts.country)
	if err != nil {
		return err
	}
	peakStart, _ := rollup.Month(start.AddDate(0, -11, 0), cfg.Location)
	gw := opts.gateway // one gateway: ask for its peaks only
	peaks, err := client.Peaks(ctx, peakStart, stop, gw)
	if err != nil {
		return fmt.Errorf("%s: peaks: %s", where, oneLine(err.Error()))
	}
	byGateway := map[string][]float64{}
	for _, p := range peaks {
		byGateway[p.Gateway] = append(byGateway[p.Gateway], p.W)
	}

	out := reportJSON{Month: label, Timezone: cfg.Location.String(), Start: start, Stop: stop, Currency: "EUR"}
	for _, gw := range gateways {
		e, ok := energy[gw]
		lines := computeBill(prices, opts.country, gw, start, e.Fields, ok, byGateway[gw])
		b := gatewayBill{Gateway: gw, Lines: lines}
		for _, l := range lines {
			if l.Item == "total" {
				b.Total = l.Amount
			}
		}
		out.Bills = append(out.Bills, b)
	}
	switch opts.format {
	case "csv":
		return writeBillCSV(stdout, &out)
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(&out)
	}
	return writeBillTable(stdout, &out)
}

// parseReportArgs parses the flags, with the bill parameters defaulting to
// their P1_REPORT_* variables.
func parseReportArgs(args, environ []string) (*reportOptions, error) {
	opts := &reportOptions{params: map[string]any{}}
	fs := flag.NewFlagSet("p1logger report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.month, "month", "", "")
	fs.StringVar(&opts.gateway, "gateway", "", "")
	fs.StringVar(&opts.country, "country", "", "")
	fs.StringVar(&opts.format, "format", "table", "")
	fs.DurationVar(&opts.timeout, "timeout", time.Minute, "")
	raw := map[string]*string{}
	for _, p := range billParams {
		raw[p.name] = fs.String(p.flag(), "", "")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageErr("%v (p1logger report -h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErr("unexpected argument %q; want only flags, e.g. --month 2026-02", fs.Arg(0))
	}
	switch opts.format {
	case "table", "csv", "json":
	default:
		return nil, usageErr("--format: %q is not a format; want table, csv or json", opts.format)
	}
	if opts.timeout <= 0 {
		return nil, usageErr("--timeout: %s is not a positive duration", opts.timeout)
	}
	if strings.TrimSpace(opts.gateway) != opts.gateway || (opts.gateway == "" && flagSet(fs, "gateway")) {
		return nil, usageErr("--gateway: %q is not a gateway name", opts.gateway)
	}
	envs := envMap(environ)
	if !flagSet(fs, "country") {
		opts.country = envs["P1_REPORT_COUNTRY"]
	}
	if c := strings.ToLower(strings.TrimSpace(opts.country)); countries[c] == nil {
		src := "--country"
		if !flagSet(fs, "country") {
			src = "P1_REPORT_COUNTRY"
		}
		return nil, usageErr("%s: %q is not a country the report knows; want be, nl, lu or other (or nothing: the bill of %s)", src, opts.country, billQuery)
	} else {
		opts.country = c
	}
	for _, p := range billParams {
		val, src := *raw[p.name], "--"+p.flag()
		if !flagSet(fs, p.flag()) {
			v, ok := envs[p.env()]
			if !ok {
				continue // the query's own value
			}
			val, src = v, p.env()
		}
		v, err := billValue(p, val)
		if err != nil {
			return nil, usageErr("%s: %q %v", src, val, err)
		}
		opts.params[p.name] = v
	}
	return opts, nil
}

// billValue parses a bill parameter; its errors complete a sentence that
// starts with the quoted value.
func billValue(p billParam, s string) (any, error) {
	s = strings.TrimSpace(s)
	switch p.kind {
	case 'b':
		v, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errors.New("is not a boolean; want true or false")
		}
		return v, nil
	case 's':
		if s == "" || strings.Contains(s, "${") || strings.ContainsAny(s, "\"\\\n") {
			return nil, errors.New("is not a usable name; want text without quotes, backslashes or ${")
		}
		return s, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, errors.New("is not a number; want e.g. 0.25 (a decimal point, no unit)")
	}
	switch p.name {
	case "vat":
		if v < 0 || v >= 1 {
			return nil, errors.New("is not a rate; want a fraction such as 0.06 or 0.21, not a percentage")
		}
	case "capacity_min_kw", "capacity_eur_per_kw_year", "fixed_per_month":
		if v < 0 {
			return nil, errors.New("is negative; want 0 or more")
		}
	}
	return v, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// reportConfig validates the P1_INFLUX_* and P1_TIMEZONE variables as the
// daemon does, with the same messages. The variables only the daemon uses
// are left out, so the report runs without P1_GATEWAYS, and a container's
// daemon settings cannot stop it.
func reportConfig(environ []string) (*config, error) {
	env := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "P1_GATEWAYS", "P1_GATEWAYS_FILE", "P1_HTTP_ADDR", "P1_HTTP_TOKEN", "P1_HTTP_TOKEN_FILE", "P1_SPOOL_DIR",
			"P1_CYCLE", "P1_ROLLUP_INTERVAL", "P1_IDLE_TIMEOUT", "P1_LOG_LEVEL", "P1_LOG_FORMAT":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "P1_GATEWAYS=report=127.0.0.1:1", "P1_HTTP_ADDR=")
	return loadConfig(env)
}

var monthRE = regexp.MustCompile(`^(\d{4})-(\d{2})$`)

// reportMonth returns the local month of loc named by month (YYYY-MM), or
// the month before now's when month is empty: the instants of its start,
// where the rollup stamps the month's p1_energy point, and of the next
// month's start.
func reportMonth(month string, now time.Time, loc *time.Location) (start, stop time.Time, label string, err error) {
	var t time.Time
	if month == "" {
		this, _ := rollup.Month(now, loc)
		t = this.Add(-time.Nanosecond)
	} else {
		m := monthRE.FindStringSubmatch(month)
		if m == nil {
			return start, stop, "", usageErr("--month: %q is not a month; want YYYY-MM, e.g. 2026-02", month)
		}
		y, _ := strconv.Atoi(m[1])
		mo, _ := strconv.Atoi(m[2])
		if mo < 1 || mo > 12 || y < 1970 {
			return start, stop, "", usageErr("--month: %q is not a month; want YYYY-MM, e.g. 2026-02", month)
		}
		t = time.Date(y, time.Month(mo), 15, 12, 0, 0, 0, loc)
	}
	start, stop = rollup.Month(t, loc)
	return start, stop, start.Format("2006-01"), nil
}

// billLine is one line of the bill as monthly-bill.flux returns it.
type billLine struct {
	Line     int64   `json:"line"`
	Item     string  `json:"item"`
	Quantity float64 `json:"quantity"`
	Unit     string  `json:"unit"`
	Price    float64 `json:"price"`
	Amount   float64 `json:"amount"`
}

type gatewayBill struct {
	Gateway string     `json:"gateway"`
	Lines   []billLine `json:"lines"`
	Total   float64    `json:"total"`
}

// reportJSON is the report as --format json prints it.
type reportJSON struct {
	Month    string        `json:"month"`
	Timezone string        `json:"timezone"`
	Start    time.Time     `json:"start"`
	Stop     time.Time     `json:"stop"`
	Currency string        `json:"currency"`
	Bills    []gatewayBill `json:"bills"`
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeBillTable prints each gateway's bill as an aligned table.
func writeBillTable(w io.Writer, r *reportJSON) error {
	var b strings.Builder
	for i, bill := range r.Bills {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Electricity bill %s, gateway %s\n", r.Month, bill.Gateway)
		fmt.Fprintf(&b, "%s to %s (%s)\n\n", r.Start.Format("2006-01-02 15:04 -07:00"), r.Stop.Format("2006-01-02 15:04 -07:00"), r.Timezone)
		rows := [][]string{{"item", "quantity", "", "price", "", "amount"}}
		var total string
		for _, l := range bill.Lines {
			if l.Item == "total" {
				total = money(l.Amount)
				continue
			}
			q, qu, p, pu := fmtQuantity(l.Quantity, l.Unit), l.Unit, "", ""
			switch l.Unit {
			case "EUR": // VAT: quantity is the base, price the rate
				q, qu, p, pu = money(l.Quantity), "EUR", strconv.FormatFloat(l.Price*100, 'f', -1, 64)+" %", ""
			case "kW":
				p, pu = strconv.FormatFloat(l.Price, 'f', 4, 64), "EUR/kW"
			case "month":
				p, pu = money(l.Price), "EUR/month"
			default:
				p, pu = strconv.FormatFloat(l.Price, 'f', 4, 64), "EUR/"+l.Unit
			}
			rows = append(rows, []string{l.Item, q, qu, p, pu, money(l.Amount)})
		}
		widths := make([]int, 6)
		for _, row := range rows {
			for j, c := range row {
				widths[j] = max(widths[j], len([]rune(c)))
			}
		}
		right := []bool{false, true, false, true, false, true}
		line := func(cells []string) {
			var parts []string
			for j, c := range cells {
				pad := strings.Repeat(" ", widths[j]-len([]rune(c)))
				if right[j] {
					parts = append(parts, pad+c)
				} else {
					parts = append(parts, c+pad)
				}
			}
			b.WriteString(strings.TrimRight("  "+strings.Join(parts, "  "), " ") + "\n")
		}
		for _, row := range rows {
			line(row)
		}
		width := 2*len(widths) + 0
		for _, wd := range widths {
			width += wd
		}
		b.WriteString("  " + strings.Repeat("-", width-2) + "\n")
		line([]string{"total (EUR, VAT included)", "", "", "", "", total})
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func fmtQuantity(v float64, unit string) string {
	if unit == "month" && v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// writeBillCSV prints one row per bill line, numbers unrounded.
func writeBillCSV(w io.Writer, r *reportJSON) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"month", "gateway", "line", "item", "quantity", "unit", "price", "amount"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, bill := range r.Bills {
		for _, l := range bill.Lines {
			cw.Write([]string{r.Month, bill.Gateway, strconv.FormatInt(l.Line, 10), l.Item, f(l.Quantity), l.Unit, f(l.Price), f(l.Amount)})
		}
	}
	cw.Flush()
	return cw.Error()
}

// reportUsage documents the flags, with the defaults that monthly-bill.flux
// itself holds.
func reportUsage() string {
	defaults := fluxDefaults(billQuery)
	var b strings.Builder
	b.WriteString(`usage: p1logger report [--month YYYY-MM] [--gateway NAME] [--format table|csv|json] [price flags]

Computes the monthly bill of deploy/flux/monthly-bill.flux from the
p1_energy month points and p1_peak points in the InfluxDB of P1_INFLUX_URL,
P1_INFLUX_TOKEN(_FILE), P1_INFLUX_ORG and P1_INFLUX_BUCKET, for a month of
P1_TIMEZONE, and prints it. It reads with Flux or InfluxQL (P1_INFLUX_QUERY,
default auto), so it works on InfluxDB 1.8, 2.x, Cloud and 3; the bill is
the same either way. P1_GATEWAYS is not needed. Exit status: 0 printed, 1 InfluxDB failed or has no data for the
month, 2 bad flag or variable.

  --month YYYY-MM    the month to bill (default: last month in P1_TIMEZONE)
  --gateway NAME     one gateway (default: every gateway with data that month)
  --format FORMAT    table (default), csv or json
  --country CC       the rules of the bill (env P1_REPORT_COUNTRY): be (tariff 1
                     peak, tariff 2 off-peak, capacity tariff, VAT 6 %), nl
                     (tariff 1 low/dal, tariff 2 normal, no capacity tariff,
                     VAT 21 %), lu or other (totals only, at the tariff 1
                     prices; VAT 8 % in lu); default: the bill of
                     monthly-bill.flux as its parameters say
  --timeout D        give up after D (default 1m)

Prices and names: each flag below can also be set by its variable; the
default is the value in monthly-bill.flux.

`)
	for _, p := range billParams {
		d := defaults[p.name]
		if d == "" {
			d = "?"
		}
		fmt.Fprintf(&b, "  --%s %s\n        %s\n        (env %s; default %s)\n", p.flag(), kindName(p.kind), p.help, p.env(), d)
	}
	return b.String()
}

func kindName(k byte) string {
	switch k {
	case 'b':
		return "BOOL"
	case 's':
		return "NAME"
	}
	return "NUMBER"
}

var fluxParamLine = regexp.MustCompile(`(?m)^\s*([A-Za-z_][A-Za-z0-9_]*):\s*(.+?),\s*$`)

// fluxDefaults reads the "name: value," lines of the query's option params.
func fluxDefaults(name string) map[string]string {
	src, err := flux.Files.ReadFile(name)
	if err != nil {
		return nil
	}
	s := string(src)
	i := strings.Index(s, "option params = {")
	if i < 0 {
		return nil
	}
	s = s[i:]
	if j := strings.Index(s, "\n}"); j >= 0 {
		s = s[:j]
	}
	out := map[string]string{}
	for _, m := range fluxParamLine.FindAllStringSubmatch(s, -1) {
		out[m[1]] = m[2]
	}
	return out
}
