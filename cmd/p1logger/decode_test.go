package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const td = "../../testdata/"

func decodeRun(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runDecode(args, bytes.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func decodeObjects(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatalf("stdout line is not JSON: %v\n%s", err, line)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestDecodeFile(t *testing.T) {
	out, errOut, code := decodeRun(t, nil, "-tz", "Europe/Brussels", td+"telegrams/be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	objs := decodeObjects(t, out)
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	o := objs[0]
	want := map[string]string{
		"time": "2023-11-02T12:15:48+01:00", "meter_id": "1SAG3100721326", "version": "50217", "crc": "ok",
		"taken_t1_kwh": "301.548", "taken_t2_kwh": "270.014", "taken_kwh": "571.562",
		"injected_t1_kwh": "0.005", "injected_t2_kwh": "0.000", "injected_kwh": "0.005",
		"power_taken_w": "338", "power_injected_w": "0", "power_net_w": "338",
		"power_taken_l1_w": "47", "power_taken_l2_w": "179", "power_taken_l3_w": "111",
		"voltage_l1_v": "232.9", "voltage_l2_v": "228.1", "voltage_l3_v": "228.1",
		"current_l1_a": "0.27", "current_l2_a": "0.88", "current_l3_a": "0.52",
		"tariff": "1", "demand_avg_w": "52", "demand_max_month_w": "3064",
	}
	for k, v := range want {
		if got := toString(o[k]); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	mbus := o["mbus"].([]any)
	if len(mbus) != 2 {
		t.Fatalf("mbus = %v", mbus)
	}
	gas := mbus[0].(map[string]any)
	for k, v := range map[string]string{"channel": "1", "kind": "gas", "meter_id": "7FLO2123088027", "value": "92.287", "unit": "m3", "time": "2023-11-02T12:10:02+01:00"} {
		if got := toString(gas[k]); got != v {
			t.Errorf("mbus[0].%s = %s, want %s", k, got, v)
		}
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case string:
		return x
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDecodeStreamWithNoiseAndFailures(t *testing.T) {
	be, _ := os.ReadFile(td + "telegrams/be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt")
	nl22, _ := os.ReadFile(td + "telegrams/nl-dsmr22-kamstrup-ka6u-export-gas.txt")
	bad, _ := os.ReadFile(td + "bad/badcrc-digit-flipped.txt")
	var in bytes.Buffer
	in.WriteString("\x00noise!")
	in.Write(be)
	in.Write(bad)
	in.WriteString("junk")
	in.Write(nl22)
	in.Write(be[:200]) // cut at the end of the capture
	out, errOut, code := decodeRun(t, in.Bytes())
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	objs := decodeObjects(t, out)
	if len(objs) != 2 || objs[0]["crc"] != "ok" || objs[1]["crc"] != "none" {
		t.Fatalf("objects: %v", objs)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "stdin: telegram 2 at byte ") || !strings.Contains(lines[0], "crc mismatch: telegram says C4B0, bytes give 16B6") ||
		!strings.HasPrefix(lines[1], "stdin: telegram 4 at byte ") || !strings.Contains(lines[1], `no end line "!"`) {
		t.Errorf("stderr:\n%s", errOut)
	}
	// Byte offsets point at the telegram's "/".
	off := 7 + len(be)
	if !strings.Contains(lines[0], " at byte "+strconv.Itoa(off)+": ") {
		t.Errorf("first failure should be at byte %d: %s", off, lines[0])
	}
}

func TestDecodeAllTestdata(t *testing.T) {
	files, _ := filepath.Glob(td + "telegrams/*.txt")
	out, errOut, code := decodeRun(t, nil, append([]string{"-tz", "Europe/Brussels"}, files...)...)
	objs := decodeObjects(t, out)
	// Five captures are spec examples whose printed CRC does not verify,
	// one a Smarty telegram edited and re-encrypted without fixing its CRC.
	if len(objs) != len(files)-6 || code != 1 || strings.Count(errOut, "crc mismatch") != 6 {
		t.Errorf("%d files → %d objects, exit %d, stderr:\n%s", len(files), len(objs), code, errOut)
	}
}

func TestDecodeUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-tz", "Mars/Olympus"}, 2, `-tz "Mars/Olympus": unknown time zone`},
		{[]string{"-nope"}, 2, "flag provided but not defined"},
		{[]string{td + "does-not-exist.txt"}, 1, "no such file"},
		{[]string{td + "bad/noise-only.txt"}, 1, "no telegram found (72 bytes"},
	}
	// A CRC-less frame with a malformed header ("IS5", no baud digit) is
	// skipped as noise; stderr said "none starting with "/"" of a file
	// that starts with one.
	shapeless := filepath.Join(t.TempDir(), "shapeless.txt")
	if err := os.WriteFile(shapeless, []byte("/IS5\\2ME382\r\n\r\n1-0:1.8.1(00185.000*kWh)\r\n!\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests = append(tests, struct {
		args []string
		code int
		msg  string
	}{[]string{shapeless}, 1, `no telegram found (44 bytes skipped: no "/" that starts a frame with a CRC or with a telegram's header and OBIS lines)`})
	for _, tc := range tests {
		_, errOut, code := decodeRun(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d stderr %q, want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

// TestDecodeBadLineCRCOK: a telegram whose CRC matched but with bad lines
// is printed as the daemon writes it: the good registers, an "errors" list
// naming each bad line; stderr names each line too, and the exit status is 1.
func TestDecodeBadLineCRCOK(t *testing.T) {
	out, errOut, code := decodeRun(t, nil, "-tz", "Europe/Brussels", td+"bad/syntax-errors-crc-ok.txt")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	objs := decodeObjects(t, out)
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1; stderr:\n%s", len(objs), errOut)
	}
	o := objs[0]
	for k, v := range map[string]string{"crc": "ok", "taken_t1_kwh": "3808.351", "injected_t2_kwh": "2876.514",
		"voltage_l3_v": "235.1", "power_injected_w": "498"} {
		if got := toString(o[k]); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	for _, k := range []string{"voltage_l1_v", "voltage_l2_v", "voltage_swells_l3"} {
		if _, ok := o[k]; ok {
			t.Errorf("%s printed from a bad line", k)
		}
	}
	var lines []string
	for _, e := range o["errors"].([]any) {
		m := e.(map[string]any)
		lines = append(lines, toString(m["line"])+" "+toString(m["text"])+": "+toString(m["reason"]))
	}
	want := []string{
		`21 1-0:72:36.0(00001): want an OBIS code A-B:C.D.E before the first "("`,
		`23 1-0:32.7.0(236.0*kWh): want unit V, got "kWh"`,
		`24 1-0:52.7.0(232.6*V: group opened at byte 546 has no ")"`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	stderr := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(stderr) != 3 || !strings.Contains(stderr[0], `telegram 1 at byte 0: line 21 "1-0:72:36.0(00001)"`) ||
		!strings.HasSuffix(stderr[2], "(other lines used)") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

// encryptedCapture returns the bytes of a public encrypted frame.
func encryptedCapture(t *testing.T, name string) []byte {
	t.Helper()
	h, err := os.ReadFile("../../ingest/dlms/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeKeyFile: a capture holding a Smarty frame, noise, a plain
// telegram and a Steiermark frame decodes with a keys file in
// P1_KEYS_FILE's form (each key tried on each frame), or with a bare key
// for the one meter; a wrong key and no key are reported on stderr.
func TestDecodeKeyFile(t *testing.T) {
	plain, err := os.ReadFile(td + "telegrams/nl-dsmr50-iskra-am550-3ph-nogas.txt")
	if err != nil {
		t.Fatal(err)
	}
	var capture bytes.Buffer
	capture.Write(encryptedCapture(t, "lu-smarty-nexxtlab.hex"))
	capture.WriteString("\r\nnoise\x00\xff")
	capture.Write(plain)
	capture.Write(encryptedCapture(t, "at-sagemcom-t210d-steiermark.hex"))
	file := writeFile(t, "capture.bin", capture.String())
	keys := writeFile(t, "keys", "lux="+smartyKeyHex+"\ngraz=953E7F1725EA910F26E053813A639094\n")

	out, errOut, code := decodeRun(t, nil, "-tz", "Europe/Brussels", "--key-file", keys, file)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	objs := decodeObjects(t, out)
	if len(objs) != 3 {
		t.Fatalf("%d objects, want 3:\n%s", len(objs), out)
	}
	for i, w := range []map[string]string{
		{"meter_id": "SAG1030700114004", "taken_kwh": "6.695", "injected_kwh": "0.025", "crc": "ok"},
		{"crc": "ok"},
		{"taken_kwh": "14159.934", "taken_t1_kwh": "8520.922", "power_injected_w": "1803", "crc": "ok"},
	} {
		for k, v := range w {
			if got := toString(objs[i][k]); got != v {
				t.Errorf("telegram %d: %s = %s, want %s", i+1, k, got, v)
			}
		}
	}

	bare := writeFile(t, "key", smartyKeyHex+"\n")
	out, errOut, code = decodeRun(t, nil, "--key-file", bare, file)
	if code != 1 || len(decodeObjects(t, out)) != 2 ||
		!strings.Contains(errOut, "encrypted frame 20645 from meter SAG350000D28F: authentication failed") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("bare Smarty key: exit %d, %d objects, stderr %q; want the Steiermark frame reported", code, len(decodeObjects(t, out)), errOut)
	}

	out, errOut, code = decodeRun(t, nil, file)
	if code != 1 || len(decodeObjects(t, out)) != 1 || strings.Count(errOut, "no decryption key") != 2 || !strings.Contains(errOut, "--key-file") {
		t.Errorf("no key: exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, "D491") || strings.Contains(errOut, "953E") {
		t.Errorf("stderr shows a key: %q", errOut)
	}

	bad := writeFile(t, "keys", "lux="+smartyKeyHex[:30]+"\n")
	_, errOut, code = decodeRun(t, nil, "--key-file", bad, file)
	if code != 2 || !strings.Contains(errOut, "--key-file: "+bad+" line 1: gateway \"lux\": the key has 30 characters") || strings.Contains(errOut, smartyKeyHex[:30]) {
		t.Errorf("bad key file: exit %d, stderr %q", code, errOut)
	}
}
