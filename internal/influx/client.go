package influx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/p1logger/p1logger/internal/answerlimit"
	"github.com/p1logger/p1logger/rollup"
)

// Language is a query language, or Auto.
type Language string

// The values of P1_INFLUX_QUERY.
const (
	Auto     Language = "auto"
	Flux     Language = "flux"
	InfluxQL Language = "influxql"
)

// ParseLanguage reads a P1_INFLUX_QUERY value; empty means Auto. Its error
// completes a sentence that starts with the quoted value.
func ParseLanguage(s string) (Language, error) {
	switch l := Language(strings.ToLower(strings.TrimSpace(s))); l {
	case "":
		return Auto, nil
	case Auto, Flux, InfluxQL:
		return l, nil
	}
	return "", errors.New("is not a query language; want flux, influxql or auto")
}

// Config configures a Client.
type Config struct {
	URL    string // base URL, e.g. http://localhost:8086
	Token  string // API token; 1.8: user:password; empty: none
	Org    string // organisation for Flux (ignored by 1.8)
	Bucket string // bucket; 1.8: "database/retention-policy"
	// Query is the language to use; Auto (or empty) detects it.
	Query Language
	// Timeout bounds one request; zero means two minutes.
	Timeout time.Duration
	// MaxAnswer bounds one answer, decompressed; zero means
	// answerlimit.DefaultMax.
	MaxAnswer int64
	// Transport sends the requests; nil means a transport with the
	// InfluxDB client library's defaults. Tests put a proxy here.
	Transport http.RoundTripper
}

// Client asks InfluxDB the questions of rollup.Querier and of p1logger
// report, in the language the server speaks. It is safe for concurrent use.
// The language is detected (Auto) at the first question that needs it and
// kept once detection succeeded: an InfluxDB that is down at start-up is
// asked again at the next question.
type Client struct {
	cfg    Config
	base   *url.URL
	hc     *http.Client
	db, rp string // the bucket as InfluxQL's database and retention policy

	mu     sync.Mutex
	lang   Language // Flux or InfluxQL once known
	server Server
}

var _ rollup.Querier = (*Client)(nil)

// New returns a Client. It returns an error when the URL is not an http(s)
// URL, the bucket is empty or the language unknown; it does not contact
// the server.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("influx: %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("influx: no bucket")
	}
	if cfg.Query == "" {
		cfg.Query = Auto
	}
	if _, err := ParseLanguage(string(cfg.Query)); err != nil {
		return nil, fmt.Errorf("influx: query language %q %v", cfg.Query, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.MaxAnswer <= 0 {
		cfg.MaxAnswer = answerlimit.DefaultMax
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: 100,
			IdleConnTimeout:     90 * time.Second,
		}
	}
	c := &Client{
		cfg:  cfg,
		base: u,
		hc:   &http.Client{Timeout: cfg.Timeout, Transport: answerlimit.Transport(tr, cfg.MaxAnswer)},
	}
	c.db, c.rp = splitBucket(cfg.Bucket)
	if cfg.Query != Auto {
		c.lang = cfg.Query
	}
	return c, nil
}

// splitBucket maps a bucket to InfluxQL's database and retention policy:
// InfluxDB 1.8's "db/rp" is both; a 2.x or 3 bucket "p1" is database "p1"
// with its default retention policy (2.7+ maps every bucket so, as
// "autogen"; InfluxDB 3 has databases only).
func splitBucket(b string) (db, rp string) {
	if i := strings.LastIndexByte(b, '/'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, ""
}

// Server is what detection learnt about the server.
type Server struct {
	Version string // X-Influxdb-Version or /health's version; may be "unknown"
	Build   string // X-Influxdb-Build (OSS, Enterprise, Cloud...)
	// Major is the major version, 0 when the version does not say
	// (development builds answer "unknown").
	Major int
	// Flux reports whether /api/v2/query answers Flux.
	Flux bool
}

// String describes s for logs and errors.
func (s Server) String() string {
	v := s.Version
	if v == "" {
		v = "version unknown"
	}
	if s.Build != "" {
		v += " (" + s.Build + ")"
	}
	return "InfluxDB " + v
}

// Language returns the language the client asks in: the configured one,
// or (Auto) the detected one. Detection: a server whose version is 3.x
// gets InfluxQL (InfluxDB 3 has no Flux); any other server gets Flux when
// /api/v2/query answers it (2.x, Cloud, 1.8 with flux-enabled) and InfluxQL
// when it does not (1.8 without Flux, or anything that refuses it). It
// returns an error when the server cannot be reached.
func (c *Client) Language(ctx context.Context) (Language, error) {
	c.mu.Lock()
	lang := c.lang
	c.mu.Unlock()
	if lang != "" {
		return lang, nil
	}
	s, err := c.Detect(ctx)
	if err != nil {
		return "", err
	}
	lang = InfluxQL
	if s.Major != 3 && s.Flux {
		lang = Flux
	}
	c.mu.Lock()
	c.lang, c.server = lang, s
	c.mu.Unlock()
	return lang, nil
}

// Detect asks the server who it is: /ping's X-Influxdb-Version and
// X-Influxdb-Build headers, /health's version when /ping has none, and
// whether /api/v2/query exists and runs Flux (an empty request: a server
// with Flux refuses it as a bad request, one without answers 404, or 403
// when 1.8's flux-enabled is off).
func (c *Client) Detect(ctx context.Context) (Server, error) {
	var s Server
	resp, err := c.do(ctx, http.MethodGet, "/ping", nil, "")
	if err != nil {
		return s, fmt.Errorf("detect influxdb: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return s, fmt.Errorf("detect influxdb: /ping: %s", resp.Status)
	}
	s.Version = resp.Header.Get("X-Influxdb-Version")
	s.Build = resp.Header.Get("X-Influxdb-Build")
	if s.Version == "" || s.Version == "unknown" {
		// InfluxDB 3 also says it in /ping's body.
		var p struct {
			Version string `json:"version"`
		}
		if json.Unmarshal(body, &p) == nil && p.Version != "" {
			s.Version = p.Version
		}
	}
	if s.Version == "" || s.Version == "unknown" {
		if v := c.healthVersion(ctx); v != "" {
			s.Version = v
		}
	}
	s.Major = majorOf(s.Version)
	if s.Major != 3 {
		s.Flux = c.fluxAnswers(ctx)
	}
	return s, nil
}

// majorOf reads the major version of "1.8.10", "v2.7.11", "3.0.1-core"...;
// 0 when v does not start with a number.
func majorOf(v string) int {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	n := 0
	for i := 0; i < len(v) && v[i] >= '0' && v[i] <= '9' && n < 1000; i++ {
		n = n*10 + int(v[i]-'0')
	}
	return n
}

func (c *Client) healthVersion(ctx context.Context) string {
	resp, err := c.do(ctx, http.MethodGet, "/health", nil, "")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct {
		Version string `json:"version"`
	}
	if resp.StatusCode/100 != 2 || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&h) != nil {
		return ""
	}
	return h.Version
}

func (c *Client) fluxAnswers(ctx context.Context) bool {
	resp, err := c.do(ctx, http.MethodPost, "/api/v2/query?"+url.Values{"org": {c.cfg.Org}}.Encode(),
		strings.NewReader("{}"), "application/json")
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return false
	case http.StatusForbidden:
		// 1.8 with flux-enabled off: "Flux query service disabled".
		return !strings.Contains(strings.ToLower(string(body)+resp.Header.Get("X-Influxdb-Error")), "disabled")
	}
	return resp.StatusCode < 500
}

// do sends one request with the token.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base.String(), "/")+path, body)
	if err != nil {
		return nil, err
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+c.cfg.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.hc.Do(req)
}

// statusError is a non-2xx answer, with the server's message.
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return fmt.Errorf("%s: %s", resp.Status, serverMessage(resp.Header, body))
}

// serverMessage extracts InfluxDB's error message from a failed answer, on
// one line.
func serverMessage(h http.Header, body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil {
		msg = e.Error
		if msg == "" {
			msg = e.Message
		}
	}
	if msg == "" {
		msg = h.Get("X-Influxdb-Error")
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = "(no message)"
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// dialect is one language's answers to the recovery and report questions.
type dialect interface {
	summary(ctx context.Context, sel rollup.Select) ([]rollup.SeriesSummary, error)
	drops(ctx context.Context, sel rollup.Select) ([]rollup.Drop, error)
	runs(ctx context.Context, sel rollup.Select) ([]rollup.Run, error)
	last(ctx context.Context, sel rollup.Select) ([]rollup.Reading, error)
	energy(ctx context.Context, q EnergyQuery) ([]Energy, error)
	peaks(ctx context.Context, q PeakQuery) ([]Peak, error)
}

func (c *Client) dialect(ctx context.Context) (dialect, error) {
	lang, err := c.Language(ctx)
	if err != nil {
		return nil, err
	}
	if lang == Flux {
		return fluxDialect{c}, nil
	}
	return influxQLDialect{c}, nil
}

// Summary implements rollup.Querier.
func (c *Client) Summary(ctx context.Context, sel rollup.Select) ([]rollup.SeriesSummary, error) {
	d, err := c.dialect(ctx)
	if err != nil {
		return nil, err
	}
	return d.summary(ctx, sel)
}

// Drops implements rollup.Querier.
func (c *Client) Drops(ctx context.Context, sel rollup.Select) ([]rollup.Drop, error) {
	d, err := c.dialect(ctx)
	if err != nil {
		return nil, err
	}
	return d.drops(ctx, sel)
}

// Runs implements rollup.Querier.
func (c *Client) Runs(ctx context.Context, sel rollup.Select) ([]rollup.Run, error) {
	d, err := c.dialect(ctx)
	if err != nil {
		return nil, err
	}
	return d.runs(ctx, sel)
}

// Last implements rollup.Querier.
func (c *Client) Last(ctx context.Context, sel rollup.Select) ([]rollup.Reading, error) {
	d, err := c.dialect(ctx)
	if err != nil {
		return nil, err
	}
	return d.last(ctx, sel)
}
