package source

import (
	"bytes"
	"testing"
)

func TestPayload(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"/ISK5\r\n\r\n!1F28\r\n", []byte("/ISK5\r\n\r\n!1F28\r\n")},
		{`{"SerialReceived":"/ISK5\r\n"}`, []byte("/ISK5\r\n")},
		{` {"SerialReceived":"1-0:1.8.1(000001.000*kWh)\r\n"}`, []byte("1-0:1.8.1(000001.000*kWh)\r\n")},
		{`{"Time":"2026-01-01T00:00:00"}`, nil},
		{`{"SerialReceived":5}`, []byte(`{"SerialReceived":5}`)}, // not Tasmota's: passed on, the splitter skips it
		{`{broken`, []byte(`{broken`)},
		{"", []byte{}},
	} {
		if got := payload([]byte(tc.in)); !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("payload(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzPayload: any message gives bytes or nothing, never a panic, and
// never more bytes than a SerialReceived string or the message holds.
func FuzzPayload(f *testing.F) {
	f.Add([]byte(`{"SerialReceived":"/ISK5\r\n"}`))
	f.Add([]byte("/ISK5\r\n!1234\r\n"))
	f.Add([]byte(`{"SerialReceived":"\u0000\ud800"}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		got := payload(p)
		if len(got) > 3*len(p) {
			t.Fatalf("payload of %d bytes gave %d", len(p), len(got))
		}
	})
}
