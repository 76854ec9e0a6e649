package parser

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCountryCaptures: every real capture is recognised as the country it
// was recorded in, or as none where its lines do not say.
func TestCountryCaptures(t *testing.T) {
	want := map[string]string{
		"at-sagemcom-t210dr-wh-units.txt":                    "",
		"be-emucs-1.7.0-1ph-gas-hdrS.txt":                    "be",
		"be-emucs-1.7.0-1ph-gas-textmsg.txt":                 "be",
		"be-emucs-1.7.0-1ph-gas.txt":                         "be",
		"be-emucs-1.7.0-3ph-gas-disconnected-hdr0xab.txt":    "be",
		"be-emucs-1.7.1-3ph-nombus-peak-hdr0xab.txt":         "be",
		"be-emucs-2.1.1-spec-1ph-gas-water-badcrc.txt":       "be",
		"be-emucs-2.1.1-spec-3ph-gas-water-badcrc.txt":       "be",
		"be-emucs-3ph-2gas-hdr0xab.txt":                      "be",
		"be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt":     "be",
		"be-fluvius-emucs-1.7.1-3ph-gas-water-spec.txt":      "be",
		"be-fluvius-emucs-1.7.1-peak13-trimmed.txt":          "be",
		"de-easymeter-q3d-a1004-nocrc.txt":                   "",
		"de-easymeter-q3d-b1024-nocrc.txt":                   "",
		"hu-eon-sagemcom-3ph-billing.txt":                    "",
		"ie-iskra-mie5t-3ph-hdr0x02.txt":                     "",
		"lt-eso-3ph-textmsg-negative.txt":                    "",
		"at-sagemcom-t210d-steiermark-decrypted.txt":         "",
		"lu-smarty-anon-nophase.txt":                         "lu",
		"lu-smarty-nexxtlab-decrypted.txt":                   "lu",
		"lu-smarty-openhab-long-decrypted-badcrc.txt":        "lu",
		"lu-smarty-spec-example-4mbus-badcrc.txt":            "lu",
		"nl-dsmr22-iskra-mt382-1004-fixture.txt":             "nl",
		"nl-dsmr22-kamstrup-ka6u-export-gas.txt":             "nl",
		"nl-dsmr22-kamstrup-zabf-gas-ch2.txt":                "nl",
		"nl-dsmr22-kamstrup-zabf-noblankline.txt":            "nl",
		"nl-dsmr22-landisgyr-xmx-gas.txt":                    "nl",
		"nl-dsmr30-spec-iskra-mt382-1000-textmsg.txt":        "nl",
		"nl-dsmr40-kaifa-1ph-gas.txt":                        "nl",
		"nl-dsmr40-landisgyr-e350-3ph-gas-lowercase-dst.txt": "nl",
		"nl-dsmr40-landisgyr-e350-noclock-nogas.txt":         "nl",
		"nl-dsmr42-kaifa-1ph-gas-ch2.txt":                    "nl",
		"nl-dsmr42-kaifa-1ph-nogas.txt":                      "nl",
		"nl-dsmr42-kaifa-3ph-export-gas.txt":                 "nl",
		"nl-dsmr42-kaifa-3ph-gas-pfl3.txt":                   "nl",
		"nl-dsmr42-kaifa-3ph-gas-pfl7.txt":                   "nl",
		"nl-dsmr42-landisgyr-e350-1ph-gas-ch2.txt":           "nl",
		"nl-dsmr42-landisgyr-e350-3ph-clockunset.txt":        "nl",
		"nl-dsmr422-spec-example-typos-badcrc.txt":           "nl",
		"nl-dsmr50-iskra-am550-3ph-export-gas.txt":           "nl",
		"nl-dsmr50-iskra-am550-3ph-gas-ch2-emptych1.txt":     "nl",
		"nl-dsmr50-iskra-am550-3ph-nogas.txt":                "nl",
		"nl-dsmr50-iskra-am550e-1ph-gas-pfl6.txt":            "nl",
		"nl-dsmr50-iskra-mt382-2mbus-emptych2.txt":           "nl",
		"nl-dsmr50-landisgyr-e360-3ph-gas-heat-pfl10.txt":    "nl",
		"nl-dsmr50-landisgyr-e360-3ph-gas.txt":               "nl",
		"nl-dsmr50-mcs-zeroed-emptyvalues.txt":               "nl",
		"nl-dsmr50-sagemcom-t211-3ph-export.txt":             "nl",
		"nl-dsmr50-spec-example-textmsg-badcrc.txt":          "nl",
		"nl-dsmr50-warmtelink-heat-crc-unpadded.txt":         "", // a heat meter: no tariffs to name
		"se-kamstrup-kam5-3ph.txt":                           "",
		"se-landisgyr-e360-3ph-b.txt":                        "",
	}
	files, err := filepath.Glob("../testdata/telegrams/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d captures, %d in the table: add the new ones", len(files), len(want))
	}
	for _, file := range files {
		name := filepath.Base(file)
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: not in the table", name)
			continue
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var sp Splitter
		frames := splitAll(&sp, raw)
		if len(frames) == 0 {
			t.Fatalf("%s: no telegram", name)
		}
		fr := frames[0]
		if strings.Contains(name, "badcrc") {
			fr = withCRC(fr) // the specifications' examples: their lines are what counts here
		}
		tg, err := Parse(fr, brussels)
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Fatalf("%s: %v", name, err)
		}
		if got := Country(tg); got != w {
			t.Errorf("%s: Country = %q, want %q", name, got, w)
		}
	}
}

// TestCountryRules: each rule on its own, on minimal telegrams.
func TestCountryRules(t *testing.T) {
	tests := []struct {
		name  string
		lines string // between the header line and the end line
		want  string
	}{
		{"nothing", "/XYZ5 meter\r\n\r\n1-0:1.8.0(000001.000*kWh)\r\n", ""},
		{"lux header", "/Lux5\\253694471_M\r\n\r\n1-3:0.2.8(42)\r\n0-0:96.14.0(0001)\r\n", "lu"},
		{"lux header wins over demand", "/LUX5 x\r\n\r\n1-0:1.6.0(200101000000W)(01.000*kW)\r\n", "lu"},
		{"month peak", "/XYZ5 meter\r\n\r\n1-3:0.2.8(50)\r\n0-0:96.14.0(0001)\r\n1-0:1.6.0(200101000000W)(01.000*kW)\r\n", "be"},
		{"quarter-hour average alone", "/ESO5\\000000000_A\r\n\r\n1-0:1.4.0(00.500*kW)\r\n", ""},
		{"e-MUCS version", "/XYZ5 meter\r\n\r\n0-0:96.1.4(50217)\r\n", "be"},
		{"fluvius header", "/FLU5\\253769484_A\r\n\r\n1-0:1.8.1(000001.000*kWh)\r\n", "be"},
		{"dsmr 5 with tariff indicator", "/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n0-0:96.14.0(0002)\r\n", "nl"},
		{"dsmr 5 version alone", "/EST5\\253710000_A\r\n\r\n1-3:0.2.8(50)\r\n1-0:1.8.1(000001.000*kWh)\r\n", ""},
		{"three-digit version", "/XYZ5 meter\r\n\r\n1-3:0.2.8(500)\r\n0-0:96.14.0(0002)\r\n", ""},
		{"dsmr 2.2 with gas", "/KMP5 ZABF001551772711\r\n\r\n1-0:1.8.1(00001.000*kWh)\r\n1-0:1.8.2(00001.000*kWh)\r\n0-0:96.14.0(0001)\r\n0-1:24.1.0(3)\r\n0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n(00001.000)\r\n", "nl"},
		{"dsmr 2.2 without gas", "/SAG5SAG-METER\r\n\r\n1-0:1.8.1(00001.000*kWh)\r\n1-0:1.8.2(00001.000*kWh)\r\n0-0:96.14.0(0001)\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := withCRC([]byte(tt.lines + "!0000\r\n"))
			tg, err := Parse(fr, brussels)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := Country(tg); got != tt.want {
				t.Errorf("Country = %q, want %q\n%s", got, tt.want, tg.AppendJSON(nil))
			}
		})
	}
}
