package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	protocol "github.com/influxdata/line-protocol"

	"github.com/p1logger/p1logger/parser"
)

// TestDecodeAgreesWithEncoder: for every telegram in testdata and hostile
// variants of them, what "p1logger decode" prints (Decode, then AppendJSON)
// holds, field by field, the values the encoder writes for the same bytes,
// read back with InfluxData's own line-protocol parser; a telegram decode
// does not print is not written either.
func TestDecodeAgreesWithEncoder(t *testing.T) {
	var files []string
	for _, dir := range []string{"telegrams", "bad", "sim"} {
		m, err := filepath.Glob(filepath.Join("..", "testdata", dir, "*.txt"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 50 {
		t.Fatalf("%d telegram files, want at least 50", len(files))
	}
	used, dropped, points := 0, 0, 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range hostileVariants(raw) {
			for i, fr := range splitFrames(v.raw) {
				name := fmt.Sprintf("%s %s telegram %d", filepath.Base(file), v.name, i+1)
				u, n := checkAgreement(t, name, fr)
				if u {
					used++
				} else {
					dropped++
				}
				points += n
			}
		}
	}
	t.Logf("%d telegrams used, %d dropped, %d points compared", used, dropped, points)
	if used < 100 || dropped < 50 {
		t.Errorf("%d used, %d dropped: the variants do not cover both sides", used, dropped)
	}
}

type variant struct {
	name string
	raw  []byte
}

var valueRE = regexp.MustCompile(`\n(1-0:[0-9.]+)\(([0-9])`)

// hostileVariants returns raw itself, with its first register value made
// unreadable (CRC recomputed: used without that line), with the CRC digits
// removed (only its shape vouches), behind binary garbage framed like a
// telegram, and with a breaker-only M-Bus channel and empty histories added.
func hostileVariants(raw []byte) []variant {
	vs := []variant{{"as captured", raw}}
	loc := valueRE.FindSubmatchIndex(raw)
	if loc != nil {
		bad := bytes.Clone(raw)
		bad[loc[4]] = 'x'
		vs = append(vs, variant{"bad first value", recrc(bad)})
	}
	if bang := bytes.LastIndex(raw, []byte("\n!")); bang >= 0 {
		nocrc := append(bytes.Clone(raw[:bang+2]), "\r\n"...)
		vs = append(vs, variant{"crc removed", nocrc})
		extra := append(bytes.Clone(raw[:bang+1]),
			"0-3:96.3.10(0)\r\n0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)()\r\n1-0:99.97.0(1)()()()\r\n1-0:32.7.0(1*kWh)\r\n!"...)
		vs = append(vs, variant{"extra lines", recrc(extra)})
	}
	garbage := append([]byte("/\x00\x9c\x01\n!\n/ABC5 x\r\n1-0:1.8.1(\x80*kWh)\r\n!\r\n"), raw...)
	vs = append(vs, variant{"behind garbage", garbage})
	return vs
}

// recrc recomputes the CRC of the telegram that ends raw's last "!" line.
func recrc(raw []byte) []byte {
	bang := bytes.LastIndex(raw, []byte("\n!"))
	start := bytes.LastIndexByte(raw[:bang], '/')
	body := raw[:bang+2]
	return fmt.Appendf(bytes.Clone(body), "%04X\r\n", parser.CRC16(body[start:]))
}

func splitFrames(raw []byte) [][]byte {
	var sp parser.Splitter
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), parser.MaxTelegramSize)
	sc.Split(sp.Split)
	var out [][]byte
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	return out
}

// checkAgreement decodes fr as decode does and encodes it as the Batcher
// does, and compares. It reports whether the telegram was used and how many
// points it compared.
func checkAgreement(t *testing.T, name string, fr []byte) (bool, int) {
	t.Helper()
	var tg parser.Telegram
	use, _ := Decode(&tg, fr, brussels)
	if !use {
		// The Batcher returns before encoding such a telegram (and the
		// Reader never stores it); decode prints nothing for it.
		return false, 0
	}
	var js map[string]any
	d := json.NewDecoder(bytes.NewReader(tg.AppendJSON(nil)))
	d.UseNumber()
	if err := d.Decode(&js); err != nil {
		t.Fatalf("%s: JSON: %v", name, err)
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	e := encoder{loc: brussels}
	var w writtenState
	e.p1("gw", &tg, at)
	e.mbus("gw", &tg, &w)
	e.peaks("gw", &tg, &w)
	metrics, err := protocol.NewParser(protocol.NewMetricHandler()).Parse(e.b.Buf)
	if err != nil {
		t.Fatalf("%s: line protocol does not parse: %v\n%s", name, err, e.b.Buf)
	}
	wrote := map[string]bool{}
	for _, m := range metrics {
		tags := map[string]string{}
		for _, tag := range m.TagList() {
			tags[tag.Key] = tag.Value
		}
		if tags["gateway"] != "gw" {
			t.Errorf("%s: %s gateway tag %q", name, m.Name(), tags["gateway"])
		}
		switch m.Name() {
		case "p1":
			if !m.Time().Equal(at) {
				t.Errorf("%s: p1 time %s, want the receive time", name, m.Time())
			}
			sameString(t, name, "p1 meter_id", tags["meter_id"], js["meter_id"])
			for _, f := range m.FieldList() {
				wrote[f.Key] = true
				sameNumber(t, name, "p1 "+f.Key, f.Value, js[f.Key])
			}
		case "p1_mbus":
			dev := findMBus(js, tags["channel"])
			if dev == nil {
				t.Errorf("%s: p1_mbus channel %s not in decode's mbus", name, tags["channel"])
				continue
			}
			sameString(t, name, "mbus kind", tags["kind"], dev["kind"])
			sameString(t, name, "mbus unit", tags["unit"], dev["unit"])
			sameString(t, name, "mbus meter_id", tags["meter_id"], dev["meter_id"])
			sameTime(t, name, "mbus time", m.Time(), dev["time"])
			v := field(m, "value")
			sameNumber(t, name, "mbus value", v, dev["value"])
			dev["written"] = true
		case "p1_peak":
			v := field(m, "peak_w")
			pat := field(m, "peak_at")
			if !peakInJSON(js, m.Time(), pat, v) {
				t.Errorf("%s: p1_peak %s at %v = %v not in decode's peaks or demand_max_month", name, m.Time(), pat, v)
			}
		default:
			t.Errorf("%s: unexpected measurement %s", name, m.Name())
		}
	}
	// Nothing decode prints as a written value is missing from the lines.
	for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
		if _, ok := js[f.Name()]; ok && !wrote[f.Name()] {
			t.Errorf("%s: decode prints %s = %v, the p1 line has no such field", name, f.Name(), js[f.Name()])
		}
	}
	for _, d := range js["mbus"].([]any) {
		dev := d.(map[string]any)
		if dev["value"] != nil && dev["time"] != nil && dev["written"] == nil {
			t.Errorf("%s: decode prints M-Bus channel %v with a reading, no p1_mbus point", name, dev["channel"])
		}
	}
	return true, len(metrics)
}

func sameNumber(t *testing.T, name, what string, lp any, js any) {
	t.Helper()
	n, ok := js.(json.Number)
	if !ok {
		t.Errorf("%s: %s = %v written, decode prints %v", name, what, lp, js)
		return
	}
	switch v := lp.(type) {
	case int64:
		if got, err := strconv.ParseInt(n.String(), 10, 64); err != nil || got != v {
			t.Errorf("%s: %s = %d written, decode prints %s", name, what, v, n)
		}
	case float64:
		if got, err := strconv.ParseFloat(n.String(), 64); err != nil || got != v {
			t.Errorf("%s: %s = %v written, decode prints %s", name, what, v, n)
		}
	default:
		t.Errorf("%s: %s has type %T", name, what, lp)
	}
}

// sameString compares a tag with a JSON string; an omitted tag matches null
// or "".
func sameString(t *testing.T, name, what, tag string, js any) {
	t.Helper()
	s, _ := js.(string)
	if tag != s {
		t.Errorf("%s: %s tag %q, decode prints %q", name, what, tag, s)
	}
}

func sameTime(t *testing.T, name, what string, tm time.Time, js any) {
	t.Helper()
	s, _ := js.(string)
	want, err := time.Parse(time.RFC3339, s)
	if err != nil || !tm.Equal(want) {
		t.Errorf("%s: %s %s written, decode prints %v", name, what, tm, js)
	}
}

func findMBus(js map[string]any, channel string) map[string]any {
	for _, d := range js["mbus"].([]any) {
		dev := d.(map[string]any)
		if toText(dev["channel"]) == channel {
			return dev
		}
	}
	return nil
}

// peakInJSON reports whether decode prints a peak of month, at, value: in
// "peaks", or as this month's demand_max_month_w and _at.
func peakInJSON(js map[string]any, month time.Time, at, value any) bool {
	atText, _ := at.(string)
	atTime, err := time.Parse(time.RFC3339, atText)
	if err != nil {
		return false
	}
	same := func(m, a, v any) bool {
		mt, err1 := time.Parse(time.RFC3339, toText(m))
		pt, err2 := time.Parse(time.RFC3339, toText(a))
		f, err3 := strconv.ParseFloat(toText(v), 64)
		return err1 == nil && err2 == nil && err3 == nil && mt.Equal(month) && pt.Equal(atTime) && f == value
	}
	if ps, ok := js["peaks"].([]any); ok {
		for _, p := range ps {
			pk := p.(map[string]any)
			if same(pk["month"], pk["at"], pk["peak_w"]) {
				return true
			}
		}
	}
	// This month's peak: its month is the local month of its time.
	dat, err := time.Parse(time.RFC3339, toText(js["demand_max_month_at"]))
	if err != nil {
		return false
	}
	dat = dat.In(brussels)
	cur := time.Date(dat.Year(), dat.Month(), 1, 0, 0, 0, 0, brussels)
	return same(cur.Format(time.RFC3339), js["demand_max_month_at"], js["demand_max_month_w"])
}

func toText(v any) string {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case string:
		return x
	}
	return strings.TrimSpace(fmt.Sprint(v))
}

func field(m protocol.Metric, key string) any {
	for _, f := range m.FieldList() {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// TestDecodeAgreesOnHostileLines: CRC-valid telegrams built around lines
// at and past the parser's bounds, in odd forms and repeated, agree between
// decode and the encoder as the corpus does (see TestDecodeAgreesWithEncoder).
func TestDecodeAgreesOnHostileLines(t *testing.T) {
	peaks := func(n int) string {
		s := fmt.Sprintf("0-0:98.1.0(%d)(1-0:1.6.0)(1-0:1.6.0)", n)
		for i := 0; i < n; i++ {
			m := time.Date(2023, time.Month(i%12+2), 1, 0, 0, 0, 0, time.UTC)
			s += m.Format("(060102150405W)") + m.AddDate(0, 0, -3).Format("(060102150405W)") + fmt.Sprintf("(%02d.%03d*kW)", i, i)
		}
		return s
	}
	cases := [][]string{
		{"1-0:1.8.1(99999999.999999999*kWh)", "1-0:1.8.2(99999999.999999999*kWh)", "1-0:1.8.3(99999999.999999999*kWh)", "1-0:1.8.4(99999999.999999999*kWh)"},
		{"1-0:1.8.1(100000000*kWh)", "1-0:1.8.2(000001.000*kWh)"},
		{"1-0:1.8.1(99999999999.999999*Wh)", "1-0:2.8.1(99999999999.9999999*Wh)", "1-0:2.8.2(1*Wh)"},
		{"1-0:1.8.1(-0.000*kWh)", "1-0:1.8.2(+1.5*KWH)", "1-0:2.8.1(.5*kwh)", "1-0:2.8.2(1e3*kWh)", "1-0:2.8.3(1 000*kWh)"},
		{"1-0:1.7.0(9999.999*kW)", "1-0:2.7.0(10000*kW)", "1-0:21.7.0(-0.0009*kW)", "1-0:22.7.0(1.2345*kW)"},
		{"1-0:31.7.0(1500*mA)", "1-0:51.7.0(0.5*mA)", "1-0:71.7.0(99999999*mA)", "1-0:32.7.0(0.230*kV)"},
		{"0-0:96.14.0(0002.5)", "0-0:96.7.21(00004.000)", "0-0:96.3.10(1.0)", "0-0:96.7.9(-0)"},
		// The same register twice: the last line that decodes is kept,
		// and a bad copy keeps the totals from being derived.
		{"1-0:1.8.1(000001.000*kWh)", "1-0:1.8.1(000002.000*kWh)", "1-0:1.7.0(1*kW)", "1-0:1.7.0(2*kW)", "1-0:2.7.0(0.5*kW)"},
		{"1-0:1.8.1(x)", "1-0:1.8.1(000003.000*kWh)", "1-0:1.8.2(000001.000*kWh)"},
		{"1-0:1.8.1(000003.000*kWh)", "1-0:1.8.1(x)", "1-0:1.8.2(000001.000*kWh)"},
		{"0-1:24.1.0(003)", "0-1:24.2.1(230101000000W)(00001.000*m3)", "0-1:24.2.1(230101010000W)(00002.000*m3)", "0-1:24.2.1(230101020000W)(x*m3)"},
		{"0-0:24.2.1(230101000000W)(00001.000*m3)", "0-5:24.2.1(230101000000W)(00001.000*m3)", "0-9:24.2.1(230101000000W)(1*m3)", "0-99:24.2.1(230101000000W)(1*m3)", "0-4:96.3.10(1)"},
		{"0-1:24.2.1(230101000000W)(00001.000*m\" ,=3)", "0-1:96.1.0(2241222C3D20)", "0-0:96.1.1(a b,c=d\"e)"},
		{"0-0:96.1.1(A\x01\xffB)", "0-1:96.1.0(\xc3\x28)", "0-2:24.2.1(230101000000W)(00001.000*m\t3)", "0-0:96.1.0(4142)"},
		{"0-0:96.13.0(0A0D09)", "0-0:96.13.0(00FF1B5B)", "1-0:1.8.1(000001.000*kWh)"},
		{"1-0:99.97.0(1)(0-0:96.7.19)(230101000000W)(999999999999999999*s)", "1-0:99.97.0(99999999999999999999)(0-0:96.7.19)", "1-0:1.8.1(1*kWh)"},
		{peaks(0), "1-0:1.6.0(230101000000W)(01.000*kW)"},
		{peaks(1), "1-0:1.6.0(230105101500W)(02.500*kW)"},
		{peaks(13), "1-0:1.6.0(230105101500W)(02.500*kW)"},
		{peaks(2)[:len(peaks(2))-12], "1-0:1.8.1(1*kWh)"},
		{"0-0:98.1.0(99999999999999999999)(1-0:1.6.0)(1-0:1.6.0)()", "0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)()()", "1-0:1.8.1(1*kWh)"},
	}
	for i, lines := range cases {
		body := "/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n" + strings.Join(lines, "\r\n") + "\r\n!"
		fr := recrc([]byte(body))
		u, _ := checkAgreement(t, fmt.Sprintf("case %d %q", i, lines), fr)
		if !u {
			t.Errorf("case %d: telegram with a good CRC not used", i)
		}
	}
}
