package fluxcheck

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
)

const dashboardFile = "deploy/influxdb/p1logger-dashboard.json"

// resource is one object of an InfluxDB 2 template (influx apply).
type resource struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

type variableSpec struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Language string          `json:"language"`
	Query    string          `json:"query"`
	Values   json.RawMessage `json:"values"`
	Selected []string        `json:"selected"`
}

type chart struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	XPos    int    `json:"xPos"`
	YPos    int    `json:"yPos"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Geom    string `json:"geom"`
	Queries []struct {
		Query string `json:"query"`
	} `json:"queries"`
	Axes []struct {
		Name string `json:"name"`
	} `json:"axes"`
}

type dashboardSpec struct {
	Name   string  `json:"name"`
	Charts []chart `json:"charts"`
}

type template struct {
	variables map[string]variableSpec
	dashboard dashboardSpec
}

func loadTemplate(t *testing.T) template {
	t.Helper()
	var res []resource
	if err := json.Unmarshal([]byte(readRepoFile(t, dashboardFile)), &res); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	tmpl := template{variables: map[string]variableSpec{}}
	dashboards := 0
	for _, r := range res {
		if r.APIVersion != "influxdata.com/v2alpha1" {
			t.Errorf("%s: apiVersion %q, want influxdata.com/v2alpha1", r.Metadata.Name, r.APIVersion)
		}
		if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(r.Metadata.Name) {
			t.Errorf("metadata.name %q is not a lowercase DNS label, as influx apply wants", r.Metadata.Name)
		}
		switch r.Kind {
		case "Variable":
			var v variableSpec
			if err := json.Unmarshal(r.Spec, &v); err != nil {
				t.Fatalf("variable %s: %v", r.Metadata.Name, err)
			}
			tmpl.variables[v.Name] = v
		case "Dashboard":
			dashboards++
			if err := json.Unmarshal(r.Spec, &tmpl.dashboard); err != nil {
				t.Fatalf("dashboard %s: %v", r.Metadata.Name, err)
			}
		default:
			t.Errorf("%s: unexpected kind %q", r.Metadata.Name, r.Kind)
		}
	}
	if dashboards != 1 {
		t.Fatalf("%s holds %d dashboards, want 1", dashboardFile, dashboards)
	}
	return tmpl
}

// builtinVars are the variables InfluxDB's UI defines for every query.
var builtinVars = []string{"timeRangeStart", "timeRangeStop", "windowPeriod"}

// notOnFlux065 are constructs that DESIGN.md lists as missing in InfluxDB
// 1.8: a query using one fails there, but a test seeing the failure would
// only say "undefined identifier", so name them.
var notOnFlux065 = []string{`import "timezone"`, `option location`, `import "array"`, "findRecord(", "findColumn("}

func TestDashboardTemplate(t *testing.T) {
	tmpl := loadTemplate(t)
	for _, name := range []string{"bucket", "gateway", "country"} {
		if _, ok := tmpl.variables[name]; !ok {
			t.Errorf("no variable %q", name)
		}
	}
	for name, v := range tmpl.variables {
		switch v.Type {
		case "query":
			if v.Language != "flux" || v.Query == "" {
				t.Errorf("variable %s: query variable needs language flux and a query", name)
			}
		case "map":
			var m map[string]string
			if err := json.Unmarshal(v.Values, &m); err != nil || len(m) == 0 {
				t.Errorf("variable %s: map variable needs values: %v", name, err)
			}
			for _, s := range v.Selected {
				if _, ok := m[s]; !ok {
					t.Errorf("variable %s: selected %q is not a key of its values", name, s)
				}
			}
		default:
			t.Errorf("variable %s: unexpected type %q", name, v.Type)
		}
	}
	if country := tmpl.variables["country"]; country.Type == "map" {
		var m map[string]string
		_ = json.Unmarshal(country.Values, &m)
		var got []string
		for _, code := range m {
			got = append(got, code)
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"BE", "NL"}) {
			t.Errorf("variable country: values %v, want BE and NL (the queries test for them)", got)
		}
	}

	known := append(slices.Clone(builtinVars), "bucket", "gateway", "country")
	varRef := regexp.MustCompile(`\bv\.([A-Za-z_][A-Za-z0-9_]*)`)
	var grid [64][12]string
	measurements := map[string]bool{}
	for _, c := range tmpl.dashboard.Charts {
		if c.Width <= 0 || c.Height <= 0 || c.XPos < 0 || c.YPos < 0 || c.XPos+c.Width > 12 || c.YPos+c.Height > len(grid) {
			t.Errorf("cell %q: position %d,%d size %dx%d is outside the 12-column grid", c.Name, c.XPos, c.YPos, c.Width, c.Height)
			continue
		}
		for y := c.YPos; y < c.YPos+c.Height; y++ {
			for x := c.XPos; x < c.XPos+c.Width; x++ {
				if grid[y][x] != "" {
					t.Errorf("cells %q and %q overlap at %d,%d", grid[y][x], c.Name, x, y)
				}
				grid[y][x] = c.Name
			}
		}
		switch c.Kind {
		case "Xy":
			if !slices.Contains([]string{"line", "step", "stacked", "monotoneX", "bar"}, c.Geom) {
				t.Errorf("cell %q: geom %q is not one influx apply accepts", c.Name, c.Geom)
			}
			var axes []string
			for _, a := range c.Axes {
				axes = append(axes, a.Name)
			}
			if !slices.Contains(axes, "x") || !slices.Contains(axes, "y") {
				t.Errorf("cell %q: an Xy cell needs axes x and y, has %v", c.Name, axes)
			}
		case "Single_Stat", "Table":
		default:
			t.Errorf("cell %q: unexpected kind %q", c.Name, c.Kind)
		}
		if len(c.Queries) != 1 {
			t.Errorf("cell %q: %d queries, want 1", c.Name, len(c.Queries))
		}
		for _, q := range c.Queries {
			for _, m := range varRef.FindAllStringSubmatch(q.Query, -1) {
				if !slices.Contains(known, m[1]) {
					t.Errorf("cell %q: v.%s is not a template or built-in variable", c.Name, m[1])
				}
			}
			for _, m := range regexp.MustCompile(`_measurement == "([a-z0-9_]+)"`).FindAllStringSubmatch(q.Query, -1) {
				measurements[m[1]] = true
			}
		}
	}
	for _, m := range []string{"p1", "p1_mbus", "p1_energy", "p1_peak", "p1_gateway"} {
		if !measurements[m] {
			t.Errorf("no cell shows measurement %s", m)
		}
	}
}

func TestQueriesAvoidWhatFlux065Lacks(t *testing.T) {
	queries := map[string]string{}
	tmpl := loadTemplate(t)
	for _, c := range tmpl.dashboard.Charts {
		for _, q := range c.Queries {
			queries["cell "+c.Name] = q.Query
		}
	}
	for name, v := range tmpl.variables {
		queries["variable "+name] = v.Query
	}
	for _, f := range []string{"monthly-bill.flux", "daily-energy.flux", "monthly-peaks.flux"} {
		queries[f] = readRepoFile(t, "deploy/flux/"+f)
	}
	for name, q := range queries {
		for _, bad := range notOnFlux065 {
			if strings.Contains(q, bad) {
				t.Errorf("%s uses %s, which InfluxDB 1.8 (Flux 0.65) lacks", name, bad)
			}
		}
	}
}

// withVars returns query with the dashboard variables defined as InfluxDB's
// UI defines them: a record v, after the imports.
func withVars(query string, vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fields := make([]string, len(keys))
	for i, k := range keys {
		fields[i] = k + ": " + vars[k]
	}
	def := "v = {" + strings.Join(fields, ", ") + "}\n"

	lines := strings.SplitAfter(query, "\n")
	at := 0
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "import ") {
			at = i + 1
		}
	}
	return strings.Join(lines[:at], "") + def + strings.Join(lines[at:], "")
}

func TestDashboardQueries(t *testing.T) {
	tmpl := loadTemplate(t)
	now := time.Now().In(brussels)
	srv, bucket := seeded(t, now)
	vars := func(country string) map[string]string {
		return map[string]string{
			"bucket":         fmt.Sprintf("%q", bucket),
			"gateway":        `"home"`,
			"country":        fmt.Sprintf("%q", country),
			"timeRangeStart": "-6h",
			"timeRangeStop":  "now()",
			"windowPeriod":   "1m",
		}
	}

	for _, c := range tmpl.dashboard.Charts {
		for _, country := range []string{"BE", "NL"} {
			q := c.Queries[0].Query
			if country == "NL" && !strings.Contains(q, "v.country") {
				continue
			}
			t.Run(c.Name+"/"+country, func(t *testing.T) {
				rows := run(t, srv, withVars(q, vars(country)))
				if check := cellChecks[c.Name]; check != nil {
					check(t, rows, now, country)
				}
			})
		}
	}

	t.Run("variable bucket", func(t *testing.T) {
		rows := run(t, srv, withVars(tmpl.variables["bucket"].Query, vars("BE")))
		if !slices.ContainsFunc(rows, func(r influxtest.Row) bool { return r["_value"] == bucket }) {
			t.Errorf("bucket %s not among %v", bucket, rows)
		}
	})
	t.Run("variable gateway", func(t *testing.T) {
		rows := run(t, srv, withVars(tmpl.variables["gateway"].Query, vars("BE")))
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprint(r["_value"]))
		}
		if !slices.Equal(got, []string{"garage", "home"}) {
			t.Errorf("got gateways %v, want [garage home]", got)
		}
	})
}

// cellChecks check the values of the cells where a wrong query could still
// return rows: the seed says exactly what they must show.
var cellChecks = map[string]func(t *testing.T, rows []influxtest.Row, now time.Time, country string){
	"Net power now": func(t *testing.T, rows []influxtest.Row, _ time.Time, _ string) {
		// The newest p1 point is number 179: 179 % 3 != 0, so taking
		// 300 + 9·150 W and injecting nothing.
		if len(rows) != 1 || !near(rows[0]["_value"], 1650) {
			t.Errorf("got %v, want one row of 1650 W", rows)
		}
	},
	"Power: taken (+) and injected (-)": func(t *testing.T, rows []influxtest.Row, _ time.Time, _ string) {
		for _, r := range rows {
			v, _ := r["_value"].(float64)
			if (r["_field"] == "power_injected_w" && v > 0) || (r["_field"] == "power_taken_w" && v < 0) {
				t.Errorf("%s drawn on the wrong side of the axis: %v", r["_field"], r)
			}
		}
	},
	"Today and this month": func(t *testing.T, rows []influxtest.Row, now time.Time, country string) {
		home := gateways[0]
		today := dayEnergy(home, now.Month(), now.Day())
		var month energy
		for d := 1; d <= now.Day(); d++ {
			month = month.add(dayEnergy(home, now.Month(), d))
		}
		t1, t2 := "peak", "off-peak"
		if country == "NL" {
			t1, t2 = t2, t1
		}
		want := []struct {
			register     string
			today, month float64
		}{
			{"taken " + t1 + " (tariff 1), kWh", today.t1, month.t1},
			{"taken " + t2 + " (tariff 2), kWh", today.t2, month.t2},
			{"taken total, kWh", today.t1 + today.t2, month.t1 + month.t2},
			{"injected " + t1 + " (tariff 1), kWh", today.i1, month.i1},
			{"injected " + t2 + " (tariff 2), kWh", today.i2, month.i2},
			{"injected total, kWh", today.i1 + today.i2, month.i1 + month.i2},
			{"gas, m³", today.gas, month.gas},
		}
		if len(rows) != len(want) {
			t.Fatalf("got %d rows, want %d: %v", len(rows), len(want), rows)
		}
		for i, w := range want {
			if r := rows[i]; r["register"] != w.register || !near(r["today"], w.today) || !near(r["month"], w.month) {
				t.Errorf("row %d: got %v, want %+v", i, r, w)
			}
		}
	},
	"Gateways": func(t *testing.T, rows []influxtest.Row, _ time.Time, _ string) {
		if len(rows) != 2 {
			t.Fatalf("got %d rows, want one per gateway: %v", len(rows), rows)
		}
		for i, want := range []struct{ gateway, state string }{{"garage", "DISCONNECTED"}, {"home", "connected"}} {
			r := rows[i]
			if r["gateway"] != want.gateway || r["state"] != want.state || r["telegrams"] != int64(10800) ||
				r["crc_errors"] != int64(2) || r["parse_errors"] != int64(0) || r["reconnects"] != int64(1) {
				t.Errorf("row %d: got %v, want %s %s with 10800 telegrams, 2 CRC errors, 0 parse errors, 1 reconnect", i, r, want.gateway, want.state)
			}
		}
	},
	"Energy per month, last 13 months: taken per tariff (+) and injected (-)": func(t *testing.T, rows []influxtest.Row, _ time.Time, _ string) {
		if len(rows) != 3*13 {
			t.Errorf("got %d rows, want 13 months of 3 fields", len(rows))
		}
	},
	"Capacity tariff": func(t *testing.T, rows []influxtest.Row, now time.Time, _ string) {
		var sum, billed float64
		for i := 0; i < 12; i++ {
			ms := time.Date(now.Year(), now.Month()-time.Month(i), 1, 0, 0, 0, 0, brussels)
			kw := peakW(ms.Year(), ms.Month()) / 1000
			sum += kw
			billed += max(kw, 2.5)
		}
		want := []float64{peakW(now.Year(), now.Month()) / 1000, sum / 12, billed / 12}
		if len(rows) != len(want) {
			t.Fatalf("got %d rows, want %d: %v", len(rows), len(want), rows)
		}
		for i, w := range want {
			if !near(rows[i]["kw"], w) {
				t.Errorf("row %d: got %v, want %v kW", i, rows[i], w)
			}
		}
	},
	"Gas meter": func(t *testing.T, rows []influxtest.Row, _ time.Time, _ string) {
		if len(rows) != 1 || !near(rows[0]["_value"], gasReading(47)) {
			t.Errorf("got %v, want the newest reading %v m³", rows, gasReading(47))
		}
	},
}
