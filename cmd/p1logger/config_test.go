package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/internal/influx"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig([]string{"P1_GATEWAYS=home=10.0.0.5:8088"})
	if err != nil {
		t.Fatal(err)
	}
	want := &config{
		Gateways:       []gatewaySpec{{"home", source.NewTCP("10.0.0.5:8088")}},
		Cycle:          5 * time.Second,
		RollupInterval: time.Minute,
		IdleTimeout:    10 * time.Second,
		InfluxURL:      "http://localhost:8086",
		InfluxBucket:   "p1",
		InfluxQuery:    influx.Auto,
		Location:       time.Local,
		SpoolMaxAge:    24 * time.Hour,
		HTTPAddr:       ":9188",
		LogLevel:       slog.LevelInfo,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

// tcpForm is the expected form the tcp kind's errors end with.
const tcpForm = "want host:port or tcp://host[:port] (port 8088 by default)"

// TestConfigTCPForms: tcp://host takes port 8088, DESIGN's default; bare
// and tcp:// addresses mean the same source.
func TestConfigTCPForms(t *testing.T) {
	cfg, err := loadConfig([]string{"P1_GATEWAYS=a=tcp://10.0.0.5,b=TCP://[fe80::1]:23,10.0.0.7:8088,tcp://meter.lan"})
	if err != nil {
		t.Fatal(err)
	}
	want := []gatewaySpec{
		{"a", source.NewTCP("10.0.0.5:8088")}, {"b", source.NewTCP("[fe80::1]:23")},
		{"10.0.0.7", source.NewTCP("10.0.0.7:8088")}, {"meter.lan", source.NewTCP("meter.lan:8088")},
	}
	if !reflect.DeepEqual(cfg.Gateways, want) {
		t.Errorf("gateways %v, want %v", cfg.Gateways, want)
	}
	for _, g := range cfg.Gateways {
		if g.Source.Kind() != "tcp" {
			t.Errorf("%s: kind %q, want tcp", g.Name, g.Source.Kind())
		}
	}
}

// TestConfigSerial: a bare serial address is named after its device, and
// the "=" of its options does not make a name.
func TestConfigSerial(t *testing.T) {
	cfg, err := loadConfig([]string{"P1_GATEWAYS=serial:///dev/ttyUSB0?baud=9600,meter=serial:///dev/serial/by-id/usb-FTDI-if00"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range cfg.Gateways {
		got = append(got, g.Name+" "+g.Source.Kind()+" "+g.Source.String())
	}
	want := []string{"ttyUSB0 serial serial:///dev/ttyUSB0", "meter serial serial:///dev/serial/by-id/usb-FTDI-if00"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("gateways %q, want %q", got, want)
	}
	_, err = loadConfig([]string{"P1_GATEWAYS=usb=serial://ttyUSB0"})
	if want := `P1_GATEWAYS: gateway "usb": address "serial://ttyUSB0" has "ttyUSB0" where the path should start (three slashes: serial:///dev/…); want serial:///dev/ttyUSB0[?baud=115200&bits=8&parity=none&stop=1]`; err == nil || err.Error() != want {
		t.Errorf("err %v\nwant %s", err, want)
	}
}

func TestConfigAll(t *testing.T) {
	token := writeFile(t, "token", "user:secret\n")
	list := writeFile(t, "gateways", "# meters of the street\n\nno1=127.0.0.1:8001  # first\n  no2 = 127.0.0.2:8002\n127.0.0.3:8003\n[::1]:8004\n")
	cfg, err := loadConfig([]string{
		"P1_GATEWAYS=home=192.168.1.5:8088, shed.local:2000",
		"P1_GATEWAYS_FILE=" + list,
		"P1_CYCLE=1s",
		"P1_INFLUX_URL=https://influx.example:8086/",
		"P1_INFLUX_TOKEN_FILE=" + token,
		"P1_INFLUX_ORG=home",
		"P1_INFLUX_BUCKET=p1/autogen",
		"P1_INFLUX_QUERY=InfluxQL",
		"P1_TIMEZONE=Europe/Brussels",
		"P1_ROLLUP_INTERVAL=30s",
		"P1_IDLE_TIMEOUT=20s",
		"P1_SPOOL_DIR=" + t.TempDir(),
		"P1_SPOOL_MAX_BYTES=2GiB",
		"P1_HTTP_ADDR=",
		"P1_LOG_LEVEL=DEBUG",
		"P1_LOG_FORMAT=json",
	})
	if err != nil {
		t.Fatal(err)
	}
	wantGW := []gatewaySpec{
		{"home", source.NewTCP("192.168.1.5:8088")}, {"shed.local", source.NewTCP("shed.local:2000")},
		{"no1", source.NewTCP("127.0.0.1:8001")}, {"no2", source.NewTCP("127.0.0.2:8002")}, {"127.0.0.3", source.NewTCP("127.0.0.3:8003")}, {"::1", source.NewTCP("[::1]:8004")},
	}
	if !reflect.DeepEqual(cfg.Gateways, wantGW) {
		t.Errorf("gateways %v, want %v", cfg.Gateways, wantGW)
	}
	if cfg.Cycle != time.Second || cfg.RollupInterval != 30*time.Second || cfg.IdleTimeout != 20*time.Second {
		t.Errorf("durations %v %v %v", cfg.Cycle, cfg.RollupInterval, cfg.IdleTimeout)
	}
	if cfg.InfluxToken != "user:secret" || cfg.InfluxOrg != "home" || cfg.InfluxBucket != "p1/autogen" || cfg.InfluxQuery != influx.InfluxQL {
		t.Errorf("influx %q %q %q %q", cfg.InfluxToken, cfg.InfluxOrg, cfg.InfluxBucket, cfg.InfluxQuery)
	}
	if cfg.SpoolMaxBytes != 2<<30 {
		t.Errorf("spool max %d", cfg.SpoolMaxBytes)
	}
	if cfg.Location.String() != "Europe/Brussels" || cfg.HTTPAddr != "" || cfg.LogLevel != slog.LevelDebug || !cfg.LogJSON {
		t.Errorf("cfg %+v", cfg)
	}
}

// TestConfigErrors: each bad value gives exactly one line naming the
// variable, the value and the expected form.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	dupFile := writeFile(t, "dup", "a=127.0.0.1:1\n# x\nhome=127.0.0.1:2\n")
	badFile := writeFile(t, "bad", "a=127.0.0.1:1\n\nb=127.0.0.1\n")
	emptyFile := writeFile(t, "empty", "# nothing yet\n")
	emptyToken := writeFile(t, "tok", "\n")
	notDir := writeFile(t, "file", "x")
	gw := "P1_GATEWAYS=home=127.0.0.1:8088"
	tests := []struct {
		env  []string
		want string
	}{
		{nil, `P1_GATEWAYS: not set; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0 (or P1_GATEWAYS_FILE)`},
		{[]string{"P1_GATEWAYS=home=10.0.0.5"}, `P1_GATEWAYS: gateway "home": address "10.0.0.5" has no port; want host:port or tcp://host[:port] (port 8088 by default)`},
		{[]string{"P1_GATEWAYS=home=10.0.0.5:http"}, `P1_GATEWAYS: gateway "home": address "10.0.0.5:http" has a bad port "http"; want host:port or tcp://host[:port] (port 8088 by default)`},
		{[]string{"P1_GATEWAYS=home=10.0.0.5:70000"}, `P1_GATEWAYS: gateway "home": address "10.0.0.5:70000" has a bad port "70000"; want host:port or tcp://host[:port] (port 8088 by default)`},
		{[]string{"P1_GATEWAYS=home=:8088"}, `P1_GATEWAYS: gateway "home": address ":8088" has no host; want host:port or tcp://host[:port] (port 8088 by default)`},
		{[]string{"P1_GATEWAYS==10.0.0.5:8088"}, `P1_GATEWAYS: "=10.0.0.5:8088" has an empty name; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=my home=10.0.0.5:8088"}, `P1_GATEWAYS: "my home=10.0.0.5:8088" has a bad name "my home" (no spaces, quotes, commas, backslashes, # or =); want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=home=tcp://10.0.0.5:"}, `P1_GATEWAYS: gateway "home": address "tcp://10.0.0.5:" has an empty port; ` + tcpForm},
		{[]string{"P1_GATEWAYS=home=tcp://10.0.0.5/x"}, `P1_GATEWAYS: gateway "home": address "tcp://10.0.0.5/x" has a path "/x", which TCP does not use; ` + tcpForm},
		{[]string{"P1_GATEWAYS=home=tcp://10.0.0.5?x=1"}, `P1_GATEWAYS: gateway "home": address "tcp://10.0.0.5?x=1" has options (?…), which TCP does not use; ` + tcpForm},
		{[]string{"P1_GATEWAYS=tcp://10.0.0.5:0"}, `P1_GATEWAYS: address "tcp://10.0.0.5:0" has a bad port "0"; ` + tcpForm},
		{[]string{"P1_GATEWAYS=meter=/dev/ttyUSB0"}, `P1_GATEWAYS: gateway "meter": address "/dev/ttyUSB0" is a path without a scheme; want serial:///dev/ttyUSB0 for a serial device, or host:port`},
		{[]string{"P1_GATEWAYS=meter=gopher://x"}, `P1_GATEWAYS: gateway "meter": address "gopher://x" has unknown scheme "gopher"; want host:port or one of ` + strings.Join(source.Schemes(), "://…, ") + `://…`},
		{[]string{"P1_GATEWAYS=a=1.2.3.4:1,,b=1.2.3.4:2"}, `P1_GATEWAYS: "a=1.2.3.4:1,,b=1.2.3.4:2" has an empty entry; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=home=1.2.3.4:1,home=1.2.3.5:1"}, `P1_GATEWAYS: "home=1.2.3.5:1": name "home" is already used by P1_GATEWAYS "home=1.2.3.4:1"; want unique names`},
		{[]string{"P1_GATEWAYS=1.2.3.4:1,1.2.3.4:2"}, `P1_GATEWAYS: "1.2.3.4:2": name "1.2.3.4" is already used by P1_GATEWAYS "1.2.3.4:1"; want unique names`},
		{[]string{gw, "P1_GATEWAYS_FILE=" + dupFile}, `P1_GATEWAYS_FILE: ` + dupFile + ` line 3: "home=127.0.0.1:2": name "home" is already used by P1_GATEWAYS "home=127.0.0.1:8088"; want unique names`},
		{[]string{"P1_GATEWAYS_FILE=" + badFile}, `P1_GATEWAYS_FILE: ` + badFile + ` line 3: gateway "b": address "127.0.0.1" has no port; want host:port or tcp://host[:port] (port 8088 by default)`},
		{[]string{"P1_GATEWAYS_FILE=" + emptyFile}, `P1_GATEWAYS_FILE: "` + emptyFile + `" lists no gateway; want one name=ADDRESS per line`},
		{[]string{"P1_GATEWAYS_FILE=" + dir + "/missing"}, `P1_GATEWAYS_FILE: "` + dir + `/missing" cannot be read (no such file or directory); want a file with one name=ADDRESS per line`},
		{[]string{gw, "P1_CYCLE=5"}, `P1_CYCLE: "5" is not a positive duration; want a number with a unit, such as 5s, 1m or 1m30s`},
		{[]string{gw, "P1_CYCLE=-5s"}, `P1_CYCLE: "-5s" is not a positive duration; want a number with a unit, such as 5s, 1m or 1m30s`},
		{[]string{gw, "P1_CYCLE=1ms"}, `P1_CYCLE: "1ms" is too short; want at least 100ms`},
		{[]string{gw, "P1_ROLLUP_INTERVAL=often"}, `P1_ROLLUP_INTERVAL: "often" is not a positive duration; want a number with a unit, such as 5s, 1m or 1m30s`},
		{[]string{gw, "P1_IDLE_TIMEOUT=0s"}, `P1_IDLE_TIMEOUT: "0s" is not a positive duration; want a number with a unit, such as 5s, 1m or 1m30s`},
		{[]string{gw, "P1_INFLUX_URL=localhost:8086"}, `P1_INFLUX_URL: "localhost:8086" is not an http(s) URL; want e.g. http://localhost:8086`},
		{[]string{gw, "P1_INFLUX_URL=ftp://x"}, `P1_INFLUX_URL: "ftp://x" is not an http(s) URL; want e.g. http://localhost:8086`},
		{[]string{gw, "P1_INFLUX_TOKEN=a", "P1_INFLUX_TOKEN_FILE=" + emptyToken}, `P1_INFLUX_TOKEN_FILE: set together with P1_INFLUX_TOKEN; want only one of them`},
		{[]string{gw, "P1_INFLUX_TOKEN_FILE=" + emptyToken}, `P1_INFLUX_TOKEN_FILE: "` + emptyToken + `" is empty; want a file holding the token`},
		{[]string{gw, "P1_INFLUX_TOKEN_FILE=" + dir + "/nope"}, `P1_INFLUX_TOKEN_FILE: "` + dir + `/nope" cannot be read (no such file or directory); want a readable file holding the token`},
		{[]string{gw, "P1_INFLUX_BUCKET=my bucket"}, `P1_INFLUX_BUCKET: "my bucket" contains white space; want a bucket name (1.8: database/retention-policy)`},
		{[]string{gw, "P1_INFLUX_QUERY=sql"}, `P1_INFLUX_QUERY: "sql" is not a query language; want flux, influxql or auto`},
		{[]string{gw, "P1_TIMEZONE=Europe/Brusels"}, `P1_TIMEZONE: "Europe/Brusels" is not a known time zone; want an IANA name such as Europe/Brussels`},
		{[]string{gw, "P1_COUNTRY=Belgium"}, `P1_COUNTRY: "Belgium" is not a country; want auto (from the telegrams) or a two-letter code such as be, nl or lu`},
		{[]string{gw, "P1_COUNTRY=b1"}, `P1_COUNTRY: "b1" is not a country; want auto (from the telegrams) or a two-letter code such as be, nl or lu`},
		{[]string{gw, "P1_SPOOL_DIR=" + notDir}, `P1_SPOOL_DIR: "` + notDir + `" is not a directory; want a directory for the write buffer (it is created if missing)`},
		{[]string{gw, "P1_SPOOL_MAX_BYTES=lots"}, `P1_SPOOL_MAX_BYTES: "lots" is not a size; want a number of bytes with an optional unit, such as 500MB or 2GiB`},
		{[]string{gw, "P1_SPOOL_MAX_BYTES=-5MB"}, `P1_SPOOL_MAX_BYTES: "-5MB" is not a size; want a number of bytes with an optional unit, such as 500MB or 2GiB`},
		{[]string{gw, "P1_SPOOL_MAX_BYTES=512KiB"}, `P1_SPOOL_MAX_BYTES: "512KiB" is too small; want at least 1MiB`},
		{[]string{gw, "P1_SPOOL_MAX_AGE=a day"}, `P1_SPOOL_MAX_AGE: "a day" is not a positive duration; want the outage the write buffer must hold, such as 24h or 72h`},
		{[]string{gw, "P1_SPOOL_MAX_AGE=-1h"}, `P1_SPOOL_MAX_AGE: "-1h" is not a positive duration; want the outage the write buffer must hold, such as 24h or 72h`},
		{[]string{gw, "P1_SPOOL_MAX_AGE=30s"}, `P1_SPOOL_MAX_AGE: "30s" is out of range; want between 1m and 744h (31 days)`},
		{[]string{gw, "P1_SPOOL_MAX_AGE=800h"}, `P1_SPOOL_MAX_AGE: "800h" is out of range; want between 1m and 744h (31 days)`},
		{[]string{gw, "P1_HTTP_ADDR=9188"}, `P1_HTTP_ADDR: "9188" is not host:port; want e.g. :9188 or 127.0.0.1:9188 (empty disables)`},
		{[]string{gw, "P1_LOG_LEVEL=verbose"}, `P1_LOG_LEVEL: "verbose" is not a level; want debug, info, warn or error`},
		{[]string{gw, "P1_LOG_FORMAT=xml"}, `P1_LOG_FORMAT: "xml" is not a format; want text or json`},
	}
	for _, tc := range tests {
		_, err := loadConfig(tc.env)
		if err == nil {
			t.Errorf("%v: no error, want %s", tc.env, tc.want)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%v:\ngot  %s\nwant %s", tc.env, got, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error spans lines", tc.env)
		}
	}
}

// TestRunBadConfig: the binary's entry point exits 2 with the one line.
func TestRunBadConfig(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run(nil, []string{"P1_GATEWAYS=home=10.0.0.5"}, strings.NewReader(""), &stdout, &stderr)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if got, want := stderr.String(), "p1logger: P1_GATEWAYS: gateway \"home\": address \"10.0.0.5\" has no port; want host:port or tcp://host[:port] (port 8088 by default)\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	stderr.Reset()
	if code := run([]string{"frobnicate"}, nil, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr.String())
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"134217728", 134217728, true},
		{"128MiB", 128 << 20, true},
		{"128 mib", 128 << 20, true},
		{"100MB", 100e6, true},
		{"1g", 1 << 30, true},
		{"2GiB", 2 << 30, true},
		{"512k", 512 << 10, true},
		{"10B", 10, true},
		{"", 0, false},
		{"MB", 0, false},
		{"1.5GB", 0, false},
		{"-1", 0, false},
		{"99999999999TB", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseSize(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestConfigTokens: tokens from the variable or its _FILE (one trailing
// newline dropped), and the errors, none of which shows the token.
func TestConfigTokens(t *testing.T) {
	const secretText = "s3cret"
	gw := "P1_GATEWAYS=home=127.0.0.1:8088"
	lf := writeFile(t, "lf", secretText+"\n")
	crlf := writeFile(t, "crlf", secretText+"\r\n")
	bare := writeFile(t, "bare", secretText)
	twoLines := writeFile(t, "two", secretText+"\n\n")
	inner := writeFile(t, "inner", "s3c\nret\n")
	emptyFile := writeFile(t, "empty", "")
	placeholderFile := writeFile(t, "placeholder", "<your InfluxDB token>\n")
	for _, tt := range []struct {
		env             []string
		influx, httpTok string
	}{
		{[]string{gw}, "", ""},
		{[]string{gw, "P1_INFLUX_TOKEN=" + secretText, "P1_HTTP_TOKEN=" + secretText}, secretText, secretText},
		{[]string{gw, "P1_INFLUX_TOKEN_FILE=" + lf, "P1_HTTP_TOKEN_FILE=" + crlf}, secretText, secretText},
		{[]string{gw, "P1_HTTP_TOKEN_FILE=" + bare}, "", secretText},
		{[]string{gw, "P1_INFLUX_TOKEN=user:pass word"}, "user:pass word", ""},
		// Only a token that begins like a placeholder is one.
		{[]string{gw, "P1_INFLUX_TOKEN=a-change-me-b"}, "a-change-me-b", ""},
	} {
		cfg, err := loadConfig(tt.env)
		if err != nil {
			t.Errorf("%v: %v", tt.env, err)
			continue
		}
		if cfg.InfluxToken != tt.influx || cfg.HTTPToken != tt.httpTok {
			t.Errorf("%v: tokens %q %q, want %q %q", tt.env, cfg.InfluxToken, cfg.HTTPToken, tt.influx, tt.httpTok)
		}
	}
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{gw, "P1_HTTP_TOKEN=a", "P1_HTTP_TOKEN_FILE=" + lf}, `P1_HTTP_TOKEN_FILE: set together with P1_HTTP_TOKEN; want only one of them`},
		{[]string{gw, "P1_HTTP_TOKEN_FILE=" + emptyFile}, `P1_HTTP_TOKEN_FILE: "` + emptyFile + `" is empty; want a file holding the token`},
		{[]string{gw, "P1_INFLUX_TOKEN=" + secretText + "\n"}, `P1_INFLUX_TOKEN: the token has a control character (0x0a at byte 7); want the token alone, on one line`},
		{[]string{gw, "P1_INFLUX_TOKEN=s3c\x00ret"}, `P1_INFLUX_TOKEN: the token has a control character (0x00 at byte 4); want the token alone, on one line`},
		{[]string{gw, "P1_HTTP_TOKEN=\ts3cret"}, `P1_HTTP_TOKEN: the token has a control character (0x09 at byte 1); want the token alone, on one line`},
		{[]string{gw, "P1_HTTP_TOKEN=s3cret\x7f"}, `P1_HTTP_TOKEN: the token has a control character (0x7f at byte 7); want the token alone, on one line`},
		{[]string{gw, "P1_INFLUX_TOKEN=change-me-to-a-long-random-token"}, `P1_INFLUX_TOKEN: the token is a placeholder (change-me…), not a secret; want the real token (a new one: openssl rand -hex 32)`},
		{[]string{gw, "P1_HTTP_TOKEN=CHANGEME"}, `P1_HTTP_TOKEN: the token is a placeholder (changeme…), not a secret; want the real token (a new one: openssl rand -hex 32)`},
		{[]string{gw, "P1_INFLUX_TOKEN_FILE=" + placeholderFile}, `P1_INFLUX_TOKEN_FILE: "` + placeholderFile + `": the token is a placeholder (<…), not a secret; want the real token (a new one: openssl rand -hex 32)`},
		{[]string{gw, "P1_INFLUX_TOKEN_FILE=" + twoLines}, `P1_INFLUX_TOKEN_FILE: "` + twoLines + `": the token has a control character (0x0a at byte 7); want the token alone, on one line`},
		{[]string{gw, "P1_HTTP_TOKEN_FILE=" + inner}, `P1_HTTP_TOKEN_FILE: "` + inner + `": the token has a control character (0x0a at byte 4); want the token alone, on one line`},
		{[]string{gw, "P1_INFLUX_URL=http//admin:" + secretText + "@influx:8086"}, `P1_INFLUX_URL: "xxxxx@influx:8086" is not an http(s) URL; want e.g. http://localhost:8086`},
		{[]string{gw, "P1_INFLUX_URL=ftp://admin:" + secretText + "@influx:8086/x"}, `P1_INFLUX_URL: "ftp://admin:xxxxx@influx:8086/x" is not an http(s) URL; want e.g. http://localhost:8086`},
	} {
		_, err := loadConfig(tt.env)
		if err == nil {
			t.Errorf("%q: no error, want %s", tt.env, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("%q:\ngot  %s\nwant %s", tt.env, got, tt.want)
		}
		if strings.Contains(err.Error(), "s3c") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: the error shows the token or spans lines: %q", tt.env, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"http://localhost:8086", "http://localhost:8086"},
		{"http://admin:pw@influx:8086/", "http://admin:xxxxx@influx:8086/"},
		{"https://admin@influx:8086", "https://admin@influx:8086"},
		{"http://a:p@w@influx:8086/x?y=1", "http://a:xxxxx@influx:8086/x?y=1"},
		{"http://admin:p w%zz@influx:8086/x", "http://xxxxx@influx:8086/x"}, // does not parse
		{"admin:pw@influx:8086", "xxxxx@influx:8086"},
	} {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestConfigGatewayControlChars: a gateway name with a control character is
// refused in both P1_GATEWAYS and P1_GATEWAYS_FILE, with one line naming the
// variable, the quoted value and the expected form. Such a name used to be
// accepted, and "a\nb" was written as the series of another gateway.
func TestConfigGatewayControlChars(t *testing.T) {
	const why = `(no control characters; UTF-8 text only)`
	crFile := writeFile(t, "cr", "ok=127.0.0.1:1\na\rb=127.0.0.1:2\n")
	nulFile := writeFile(t, "nul", "a\x00b=127.0.0.1:2\n")
	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"P1_GATEWAYS=a\nb=127.0.0.1:1"}, `P1_GATEWAYS: "a\nb=127.0.0.1:1" has a bad name "a\nb" ` + why + `; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=a\rb=127.0.0.1:1"}, `P1_GATEWAYS: "a\rb=127.0.0.1:1" has a bad name "a\rb" ` + why + `; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=ok=127.0.0.1:1,a\x1bb=127.0.0.1:2"}, `P1_GATEWAYS: "a\x1bb=127.0.0.1:2" has a bad name "a\x1bb" ` + why + `; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=a\x7f=127.0.0.1:1"}, `P1_GATEWAYS: "a\x7f=127.0.0.1:1" has a bad name "a\x7f" ` + why + `; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=a\u009b=127.0.0.1:1"}, `P1_GATEWAYS: "a\u009b=127.0.0.1:1" has a bad name "a\u009b" ` + why + `; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS=a\xff=127.0.0.1:1"}, `P1_GATEWAYS: "a\xff=127.0.0.1:1" has a bad name "a\xff" ` + why + `; want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0`},
		{[]string{"P1_GATEWAYS_FILE=" + crFile}, `P1_GATEWAYS_FILE: ` + crFile + ` line 2: "a\rb=127.0.0.1:2" has a bad name "a\rb" ` + why + `; want name=ADDRESS per line`},
		{[]string{"P1_GATEWAYS_FILE=" + nulFile}, `P1_GATEWAYS_FILE: ` + nulFile + ` line 1: "a\x00b=127.0.0.1:2" has a bad name "a\x00b" ` + why + `; want name=ADDRESS per line`},
	}
	for _, tc := range tests {
		_, err := loadConfig(tc.env)
		if err == nil {
			t.Errorf("%q: no error, want %s", tc.env, tc.want)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%q:\ngot  %s\nwant %s", tc.env, got, tc.want)
		}
		if strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("%q: error spans lines", tc.env)
		}
	}
	// Names in other scripts stay accepted.
	cfg, err := loadConfig([]string{"P1_GATEWAYS=Zähler-1=127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Gateways[0].Name; got != "Zähler-1" {
		t.Errorf("name: got %q, want Zähler-1", got)
	}
}

func TestCountrySetting(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", ""}, {"P1_COUNTRY=auto", ""}, {"P1_COUNTRY=BE", "be"}, {"P1_COUNTRY= nl ", "nl"}, {"P1_COUNTRY=lu", "lu"}, {"P1_COUNTRY=fr", "fr"},
	} {
		env := []string{"P1_GATEWAYS=home=127.0.0.1:8088"}
		if tc.env != "" {
			env = append(env, tc.env)
		}
		cfg, err := loadConfig(env)
		if err != nil {
			t.Errorf("%s: %v", tc.env, err)
			continue
		}
		if got := cfg.Country; got != tc.want {
			t.Errorf("%q: country %q, want %q", tc.env, got, tc.want)
		}
	}
}
