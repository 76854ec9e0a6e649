package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caarlos0/env/v11"

	"github.com/p1logger/p1logger/ingest/dlms"
	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/internal/influx"
)

// rawConfig is the environment as DESIGN.md names it. Values stay strings so
// that validation can quote exactly what the user wrote.
type rawConfig struct {
	Gateways        string `env:"P1_GATEWAYS"`
	GatewaysFile    string `env:"P1_GATEWAYS_FILE"`
	KeysFile        string `env:"P1_KEYS_FILE"`
	Cycle           string `env:"P1_CYCLE" envDefault:"5s"`
	InfluxURL       string `env:"P1_INFLUX_URL" envDefault:"http://localhost:8086"`
	InfluxToken     string `env:"P1_INFLUX_TOKEN"`
	InfluxTokenFile string `env:"P1_INFLUX_TOKEN_FILE"`
	InfluxOrg       string `env:"P1_INFLUX_ORG"`
	InfluxBucket    string `env:"P1_INFLUX_BUCKET" envDefault:"p1"`
	InfluxQuery     string `env:"P1_INFLUX_QUERY" envDefault:"auto"`
	Timezone        string `env:"P1_TIMEZONE"`
	Country         string `env:"P1_COUNTRY"`
	RollupInterval  string `env:"P1_ROLLUP_INTERVAL" envDefault:"1m"`
	IdleTimeout     string `env:"P1_IDLE_TIMEOUT" envDefault:"10s"`
	SpoolDir        string `env:"P1_SPOOL_DIR"`
	SpoolMaxBytes   string `env:"P1_SPOOL_MAX_BYTES"`
	SpoolMaxAge     string `env:"P1_SPOOL_MAX_AGE" envDefault:"24h"`
	// P1_HTTP_ADDR has no envDefault: the library would also apply it to an
	// empty value, and empty means "disabled". loadConfig applies ":9188"
	// only when the variable is not set at all.
	HTTPAddr      string `env:"P1_HTTP_ADDR"`
	HTTPToken     string `env:"P1_HTTP_TOKEN"`
	HTTPTokenFile string `env:"P1_HTTP_TOKEN_FILE"`
	LogLevel      string `env:"P1_LOG_LEVEL" envDefault:"info"`
	LogFormat     string `env:"P1_LOG_FORMAT" envDefault:"text"`
}

// gatewaySpec is one configured gateway.
type gatewaySpec struct {
	Name   string
	Source source.Source // String() is the address without secrets
}

// config is the validated configuration the daemon runs with.
type config struct {
	Gateways       []gatewaySpec
	Keys           map[string]dlms.Key // gateway name → its key (P1_KEYS_FILE)
	Cycle          time.Duration
	RollupInterval time.Duration
	IdleTimeout    time.Duration
	InfluxURL      string
	InfluxToken    string
	InfluxOrg      string
	InfluxBucket   string
	InfluxQuery    influx.Language // P1_INFLUX_QUERY: flux, influxql or auto
	Location       *time.Location
	Country        string // "" = per gateway, from its telegrams; else a two-letter code (P1_COUNTRY)
	SpoolDir       string
	SpoolMaxBytes  int64 // 0: P1_SPOOL_MAX_BYTES not set (sized from SpoolMaxAge)
	SpoolMaxAge    time.Duration
	HTTPAddr       string // empty: no HTTP server
	HTTPToken      string // empty: HTTP open to anyone who reaches it
	LogLevel       slog.Level
	LogJSON        bool
}

const gatewaysForm = "want name=ADDRESS[,...], ADDRESS such as host:port or serial:///dev/ttyUSB0"

// loadConfig reads the configuration from environ (as os.Environ returns it)
// and validates every value. Its errors are one line each, naming the
// variable, the bad value and the expected form.
func loadConfig(environ []string) (*config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	var raw rawConfig
	if err := env.ParseWithOptions(&raw, env.Options{Environment: vars}); err != nil {
		return nil, err // only string fields: cannot happen short of a bad tag
	}
	if _, set := vars["P1_HTTP_ADDR"]; !set {
		raw.HTTPAddr = ":9188"
	}
	cfg := &config{
		InfluxOrg: raw.InfluxOrg,
		SpoolDir:  raw.SpoolDir,
	}
	var err error

	if cfg.Gateways, err = parseGateways(raw.Gateways, raw.GatewaysFile); err != nil {
		return nil, err
	}
	if cfg.Keys, err = gatewayKeys(raw.KeysFile, cfg.Gateways); err != nil {
		return nil, err
	}
	durations := []struct {
		name, val string
		dst       *time.Duration
	}{
		{"P1_CYCLE", raw.Cycle, &cfg.Cycle},
		{"P1_ROLLUP_INTERVAL", raw.RollupInterval, &cfg.RollupInterval},
		{"P1_IDLE_TIMEOUT", raw.IdleTimeout, &cfg.IdleTimeout},
	}
	for _, d := range durations {
		v, err := time.ParseDuration(d.val)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration; want a number with a unit, such as 5s, 1m or 1m30s", d.name, d.val)
		}
		if v < 100*time.Millisecond {
			return nil, fmt.Errorf("%s: %q is too short; want at least 100ms", d.name, d.val)
		}
		*d.dst = v
	}

	u, err := url.Parse(raw.InfluxURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("P1_INFLUX_URL: %q is not an http(s) URL; want e.g. http://localhost:8086", redactURL(raw.InfluxURL))
	}
	cfg.InfluxURL = raw.InfluxURL

	if cfg.InfluxToken, err = secret("P1_INFLUX_TOKEN", raw.InfluxToken, raw.InfluxTokenFile); err != nil {
		return nil, err
	}
	if cfg.HTTPToken, err = secret("P1_HTTP_TOKEN", raw.HTTPToken, raw.HTTPTokenFile); err != nil {
		return nil, err
	}

	cfg.InfluxBucket = raw.InfluxBucket
	if strings.ContainsAny(cfg.InfluxBucket, " \t\n") {
		return nil, fmt.Errorf("P1_INFLUX_BUCKET: %q contains white space; want a bucket name (1.8: database/retention-policy)", raw.InfluxBucket)
	}

	if cfg.InfluxQuery, err = influx.ParseLanguage(raw.InfluxQuery); err != nil {
		return nil, fmt.Errorf("P1_INFLUX_QUERY: %q %v", raw.InfluxQuery, err)
	}

	cfg.Location = time.Local
	if raw.Timezone != "" {
		if cfg.Location, err = time.LoadLocation(raw.Timezone); err != nil || raw.Timezone == "Local" {
			return nil, fmt.Errorf("P1_TIMEZONE: %q is not a known time zone; want an IANA name such as Europe/Brussels", raw.Timezone)
		}
	}

	if cfg.Country, err = parseCountry(raw.Country); err != nil {
		return nil, err
	}

	if raw.SpoolDir != "" {
		if fi, err := os.Stat(raw.SpoolDir); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("P1_SPOOL_DIR: %q is not a directory; want a directory for the write buffer (it is created if missing)", raw.SpoolDir)
		}
	}
	if raw.SpoolMaxBytes != "" {
		n, ok := parseSize(raw.SpoolMaxBytes)
		if !ok {
			return nil, fmt.Errorf("P1_SPOOL_MAX_BYTES: %q is not a size; want a number of bytes with an optional unit, such as 500MB or 2GiB", raw.SpoolMaxBytes)
		}
		if n < minSpoolMaxBytes {
			return nil, fmt.Errorf("P1_SPOOL_MAX_BYTES: %q is too small; want at least 1MiB", raw.SpoolMaxBytes)
		}
		cfg.SpoolMaxBytes = n
	}
	if cfg.SpoolMaxAge, err = time.ParseDuration(raw.SpoolMaxAge); err != nil || cfg.SpoolMaxAge <= 0 {
		return nil, fmt.Errorf("P1_SPOOL_MAX_AGE: %q is not a positive duration; want the outage the write buffer must hold, such as 24h or 72h", raw.SpoolMaxAge)
	}
	if cfg.SpoolMaxAge < time.Minute || cfg.SpoolMaxAge > maxSpoolMaxAge {
		return nil, fmt.Errorf("P1_SPOOL_MAX_AGE: %q is out of range; want between 1m and 744h (31 days)", raw.SpoolMaxAge)
	}

	cfg.HTTPAddr = raw.HTTPAddr
	if cfg.HTTPAddr != "" {
		_, port, err := net.SplitHostPort(cfg.HTTPAddr)
		if err != nil || !validPort(port, true) {
			return nil, fmt.Errorf("P1_HTTP_ADDR: %q is not host:port; want e.g. :9188 or 127.0.0.1:9188 (empty disables)", raw.HTTPAddr)
		}
	}

	switch strings.ToLower(raw.LogLevel) {
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "info":
		cfg.LogLevel = slog.LevelInfo
	case "warn", "warning":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		return nil, fmt.Errorf("P1_LOG_LEVEL: %q is not a level; want debug, info, warn or error", raw.LogLevel)
	}
	switch strings.ToLower(raw.LogFormat) {
	case "text":
	case "json":
		cfg.LogJSON = true
	default:
		return nil, fmt.Errorf("P1_LOG_FORMAT: %q is not a format; want text or json", raw.LogFormat)
	}
	return cfg, nil
}

// parseGateways combines P1_GATEWAYS and the lines of P1_GATEWAYS_FILE.
func parseGateways(list, file string) ([]gatewaySpec, error) {
	if strings.TrimSpace(list) == "" && file == "" {
		return nil, errors.New("P1_GATEWAYS: not set; " + gatewaysForm + " (or P1_GATEWAYS_FILE)")
	}
	var out []gatewaySpec
	seen := map[string]string{} // name → where it was first defined
	add := func(entry, where, form string) error {
		g, err := parseGateway(entry)
		var ae *addressError
		switch {
		case errors.As(err, &ae) && ae.name != "":
			return fmt.Errorf("%s: gateway %q: address %q %v", where, ae.name, ae.addr, ae.err)
		case errors.As(err, &ae):
			return fmt.Errorf("%s: address %q %v", where, ae.addr, ae.err)
		case err != nil:
			return fmt.Errorf("%s: %q %v; %s", where, entry, err, form)
		}
		if prev, dup := seen[g.Name]; dup {
			return fmt.Errorf("%s: %q: name %q is already used by %s; want unique names", where, entry, g.Name, prev)
		}
		seen[g.Name] = fmt.Sprintf("%s %q", where, entry)
		out = append(out, g)
		return nil
	}
	if strings.TrimSpace(list) != "" {
		for _, e := range strings.Split(list, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				return nil, fmt.Errorf("P1_GATEWAYS: %q has an empty entry; %s", list, gatewaysForm)
			}
			if err := add(e, "P1_GATEWAYS", gatewaysForm); err != nil {
				return nil, err
			}
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("P1_GATEWAYS_FILE: %q cannot be read (%v); want a file with one name=ADDRESS per line", file, unwrapPath(err))
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		n, line := 0, 0
		for sc.Scan() {
			line++
			l := sc.Text()
			if i := strings.IndexByte(l, '#'); i >= 0 {
				l = l[:i]
			}
			l = strings.TrimSpace(l)
			if l == "" {
				continue
			}
			where := fmt.Sprintf("P1_GATEWAYS_FILE: %s line %d", file, line)
			if err := add(l, where, "want name=ADDRESS per line"); err != nil {
				return nil, err
			}
			n++
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("P1_GATEWAYS_FILE: %q line %d: %v; want a file with one name=ADDRESS per line", file, line+1, err)
		}
		if n == 0 && len(out) == 0 {
			return nil, fmt.Errorf("P1_GATEWAYS_FILE: %q lists no gateway; want one name=ADDRESS per line", file)
		}
	}
	return out, nil
}

// addressError is a gateway whose address source.Parse refused: err
// completes the sentence "address addr ...", expected form included.
type addressError struct {
	name, addr string // name is empty for an entry without one
	err        error
}

func (e *addressError) Error() string { return fmt.Sprintf("address %q %v", e.addr, e.err) }

// parseGateway parses "name=ADDRESS" or a bare "ADDRESS" (named after its
// host, or a serial device after its file name). Its errors complete a
// sentence that starts with the quoted entry; an *addressError completes
// one about the address.
func parseGateway(s string) (gatewaySpec, error) {
	name, addr, named := strings.Cut(s, "=")
	if named && strings.Contains(name, "://") {
		// The "=" is in an address's options (serial://…?baud=9600).
		named = false
	}
	if !named {
		name, addr = "", s
	}
	name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
	if named {
		if err := checkName(name); err != nil {
			return gatewaySpec{}, err
		}
	}
	src, err := source.Parse(addr, source.Options{})
	if err != nil {
		return gatewaySpec{}, &addressError{name: name, addr: addr, err: err}
	}
	if !named {
		name = defaultName(addr)
		if err := checkName(name); err != nil {
			return gatewaySpec{}, err
		}
	}
	return gatewaySpec{Name: name, Source: src}, nil
}

// defaultName names the gateway of a bare address, which source.Parse
// accepted: after its host, or after the device's file name when it has no
// host (serial:///dev/ttyUSB0 is "ttyUSB0").
func defaultName(addr string) string {
	if !strings.Contains(addr, "://") {
		host, _, _ := net.SplitHostPort(addr)
		return host
	}
	u, err := url.Parse(addr)
	if err != nil {
		return ""
	}
	if h := u.Hostname(); h != "" {
		return h
	}
	return path.Base(u.Path)
}

// checkName refuses names that cannot be a gateway tag.
func checkName(name string) error {
	if name == "" {
		return errors.New("has an empty name")
	}
	// A control character would be carried into the gateway tag, log lines
	// and Flux: line protocol cannot escape a newline, so "a\nb" would be
	// written under another name. Refusing it here is simpler than working
	// around it everywhere the name goes.
	if strings.ContainsFunc(name, unicode.IsControl) || !utf8.ValidString(name) {
		return fmt.Errorf("has a bad name %q (no control characters; UTF-8 text only)", name)
	}
	if strings.ContainsAny(name, " \t\",\\#=") {
		return fmt.Errorf("has a bad name %q (no spaces, quotes, commas, backslashes, # or =)", name)
	}
	return nil
}

// secret returns the token of the variable name, given as its value val or
// as the contents of the file named by name_FILE (Docker secrets), of which
// one trailing newline is dropped: editors and echo add one. Both set, an
// empty or unreadable file, and a token with a control character (which no
// server accepts in a header: the token would fail every request) are
// errors, one line naming the variable, never quoting the token.
func secret(name, val, file string) (string, error) {
	fileVar := name + "_FILE"
	if val != "" && file != "" {
		return "", fmt.Errorf("%s: set together with %s; want only one of them", fileVar, name)
	}
	where := name
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %q cannot be read (%v); want a readable file holding the token", fileVar, file, unwrapPath(err))
		}
		val = string(b)
		if v, ok := strings.CutSuffix(val, "\n"); ok {
			val = strings.TrimSuffix(v, "\r")
		}
		if val == "" {
			return "", fmt.Errorf("%s: %q is empty; want a file holding the token", fileVar, file)
		}
		where = fmt.Sprintf("%s: %q", fileVar, file)
	}
	for i := 0; i < len(val); i++ {
		if c := val[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%s: the token has a control character (0x%02x at byte %d); want the token alone, on one line", where, c, i+1)
		}
	}
	if p, ok := placeholder(val); ok {
		return "", fmt.Errorf("%s: the token is a placeholder (%s…), not a secret; want the real token (a new one: openssl rand -hex 32)", where, p)
	}
	return val, nil
}

// placeholders are how example files and guides spell "put your token
// here". A daemon that sent one would be refused by a server that was set
// up properly, or, worse, accepted by one that was set up with the same
// example: either way the user meant to replace it.
var placeholders = []string{"change-me", "changeme", "change_me", "replace-me", "your-token", "<"}

// placeholder reports whether token begins like one of placeholders (case
// folded), and which.
func placeholder(token string) (string, bool) {
	for _, p := range placeholders {
		if len(token) >= len(p) && strings.EqualFold(token[:len(p)], p) {
			return p, true
		}
	}
	return "", false
}

// redactURL returns u with the password of its user information, if any,
// replaced by "xxxxx", for logs and messages. In what is not a URL with a
// host, everything before the last "@" (but a scheme) could be a password,
// and goes.
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Redacted()
	}
	at := strings.LastIndexByte(u, '@')
	if at < 0 {
		return u
	}
	scheme := ""
	if i := strings.Index(u[:at], "://"); i >= 0 {
		scheme = u[:i+3]
	}
	return scheme + "xxxxx@" + u[at+1:]
}

// maxSpoolMaxAge bounds P1_SPOOL_MAX_AGE: a longer outage is better fixed
// than buffered, and InfluxDB would take days to take the backlog in.
const maxSpoolMaxAge = 31 * 24 * time.Hour

// minSpoolMaxBytes is the smallest P1_SPOOL_MAX_BYTES: a spool that holds
// less than minutes of a few meters is a mistake.
const minSpoolMaxBytes = 1 << 20

// sizeUnits are the units parseSize accepts, longest first.
var sizeUnits = []struct {
	name string
	mul  int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseSize parses a byte count such as 134217728, 128MiB, 100MB or 1g
// (single letters are binary units). Units are case-insensitive.
func parseSize(s string) (int64, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	mul := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.name) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.name)), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mul {
		return 0, false
	}
	return n * mul, true
}

func validPort(p string, zeroOK bool) bool {
	n, err := strconv.Atoi(p)
	if err != nil || n > 65535 || n < 0 {
		return false
	}
	return n > 0 || zeroOK
}

// unwrapPath drops the path from an *os.PathError, which the caller quotes.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parseCountry validates P1_COUNTRY: empty or "auto" (each gateway's country
// comes from its telegrams, see parser.Country), or an ISO 3166-1 two-letter
// code in either case, returned in lower case. Codes without rules of their
// own (all but be, nl and lu) name the tariffs "tariff 1" and "tariff 2".
func parseCountry(v string) (string, error) {
	c := strings.ToLower(strings.TrimSpace(v))
	if c == "" || c == "auto" {
		return "", nil
	}
	if len(c) != 2 || c[0] < 'a' || c[0] > 'z' || c[1] < 'a' || c[1] > 'z' {
		return "", fmt.Errorf("P1_COUNTRY: %q is not a country; want auto (from the telegrams) or a two-letter code such as be, nl or lu", v)
	}
	return c, nil
}
