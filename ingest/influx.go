package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sink delivers one batch of line protocol. Send returns nil once the
// database has stored the batch, a *WriteError when it answered with an
// error status, and any other error (network, timeout, cancelled ctx) when it
// could not be asked. The Writer calls Send from one goroutine only.
type Sink interface {
	Send(ctx context.Context, batch []byte) error
}

// InfluxConfig says where and how to write.
type InfluxConfig struct {
	URL    string // base URL, e.g. http://localhost:8086 (P1_INFLUX_URL)
	Token  string // API token; "user:password" on 1.8 (P1_INFLUX_TOKEN)
	Org    string // organisation; ignored by 1.8 (P1_INFLUX_ORG)
	Bucket string // bucket; "db/rp" on 1.8 (P1_INFLUX_BUCKET)
	// Timeout bounds one request. Default 30s.
	Timeout time.Duration
	// GzipMin: bodies of at least this many bytes are sent gzip-compressed.
	// 0 means 4 KiB, or no compression when the URL's host is a loopback
	// address or localhost: those bytes never leave the machine, and
	// compressing them only costs CPU on both sides (about 4% of p1logger's
	// CPU at 10,000 gateways). A negative value disables compression.
	GzipMin int
	// Client replaces the HTTP client, for tests. Optional.
	Client *http.Client
}

// HTTPSink writes line protocol with nanosecond precision to InfluxDB's
// /api/v2/write endpoint (2.x, Cloud, 1.8+ through its v2-compatible API),
// or on InfluxDB 3 (its /ping says 3.x) to /api/v3/write_lp with
// accept_partial=true, whose 400 names the lines it refused and took the
// others from (WriteError.Partial). It is safe for
// concurrent use.
type HTTPSink struct {
	writeURL string
	v3URL    string // InfluxDB 3's own write endpoint
	pingURL  string
	auth     string
	gzipMin  int
	client   *http.Client

	// Which server: InfluxDB 3 gets its /api/v3/write_lp, which names the
	// lines of a partial write; the others /api/v2/write. Asked of /ping
	// before the first write, and again (at most once a minute) until it
	// answers. Guarded by mu.
	known     bool
	v3        bool
	lastAsked time.Time
	base      string
	bucket    string
	auth3     string // InfluxDB 3's native API takes a bearer token

	mu   sync.Mutex // guards zbuf and zw
	zbuf bytes.Buffer
	zw   *gzip.Writer
}

var _ Sink = (*HTTPSink)(nil)

// NewHTTPSink checks cfg and returns a sink. It does not contact the server.
func NewHTTPSink(cfg InfluxConfig) (*HTTPSink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("influx url %q: want http(s)://host:port", cfg.URL)
	}
	base := strings.TrimRight(cfg.URL, "/")
	q := url.Values{}
	if cfg.Org != "" {
		q.Set("org", cfg.Org)
	}
	q.Set("bucket", cfg.Bucket)
	q.Set("precision", "ns")
	v3q := url.Values{"db": {cfg.Bucket}, "precision": {"nanosecond"}, "accept_partial": {"true"}}
	s := &HTTPSink{
		writeURL: base + "/api/v2/write?" + q.Encode(),
		v3URL:    base + "/api/v3/write_lp?" + v3q.Encode(),
		base:     base,
		bucket:   cfg.Bucket,
		pingURL:  base + "/ping",
		gzipMin:  cfg.GzipMin,
		client:   cfg.Client,
	}
	if cfg.Token != "" {
		s.auth = "Token " + cfg.Token
		s.auth3 = "Bearer " + cfg.Token
	}
	if s.gzipMin == 0 {
		s.gzipMin = 4 << 10
		if isLoopback(u.Hostname()) {
			s.gzipMin = -1
		}
	}
	if s.client == nil {
		timeout := cfg.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		s.client = &http.Client{Timeout: timeout}
	}
	return s, nil
}

// isLoopback reports whether host names this machine for certain: localhost
// (and its subdomains, RFC 6761) or a loopback IP address.
func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Send implements Sink.
func (s *HTTPSink) Send(ctx context.Context, batch []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := batch
	gz := s.gzipMin > 0 && len(batch) >= s.gzipMin
	if gz {
		s.zbuf.Reset()
		if s.zw == nil {
			s.zw, _ = gzip.NewWriterLevel(&s.zbuf, gzip.BestSpeed)
		} else {
			s.zw.Reset(&s.zbuf)
		}
		s.zw.Write(batch) // writes to a bytes.Buffer cannot fail
		s.zw.Close()
		body = s.zbuf.Bytes()
	}
	s.detect(ctx)
	target := s.writeURL
	if s.v3 {
		target = s.v3URL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if s.v3 && s.auth3 != "" {
		req.Header.Set("Authorization", s.auth3)
	} else if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("post to influxdb: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	return readWriteError(resp)
}

// detect asks /ping which server this is, unless known or asked within the
// last minute. Called with mu held. A failure leaves the v2 endpoint,
// which every server accepts.
func (s *HTTPSink) detect(ctx context.Context) {
	if s.known || time.Since(s.lastAsked) < time.Minute {
		return
	}
	s.lastAsked = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.pingURL, nil)
	if err != nil {
		return
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return
	}
	v := resp.Header.Get("X-Influxdb-Version")
	if v == "" || v == "unknown" {
		var p struct {
			Version string `json:"version"`
		}
		if json.Unmarshal(body, &p) == nil {
			v = p.Version
		}
	}
	s.known = true
	s.v3 = strings.HasPrefix(strings.TrimPrefix(v, "v"), "3.")
	if s.v3 {
		s.createTables(ctx)
	}
}

// v3Tables are the measurements whose tags are not all on every point
// (DESIGN.md: meter_id is omitted when the meter sends none), with every tag
// they can carry. InfluxDB 3 fixes a table's tags at its first write and
// refuses a later line with a tag it does not have: were the first p1 point
// one without meter_id, every meter's point with one would be refused.
// Creating the tables first gives them all their tags; a line may still
// leave one out. The other measurements always carry all their tags.
var v3Tables = []struct {
	table string
	tags  []string
}{
	{"p1", []string{"gateway", "meter_id"}},
	{"p1_mbus", []string{"gateway", "channel", "kind", "meter_id", "unit"}},
}

// createTables creates the database and v3Tables on InfluxDB 3 (POST
// /api/v3/configure/database and /table). An existing database or table
// is left as it is; a failure leaves it to the first write, as before.
func (s *HTTPSink) createTables(ctx context.Context) {
	post := func(path string, body any) {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(b))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if s.auth3 != "" {
			req.Header.Set("Authorization", s.auth3)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	post("/api/v3/configure/database", map[string]any{"db": s.bucket})
	for _, t := range v3Tables {
		post("/api/v3/configure/table", map[string]any{"db": s.bucket, "table": t.table, "tags": t.tags, "fields": []any{}})
	}
}

// Ping asks InfluxDB's /ping whether it is up. It returns nil on a 2xx answer.
func (s *HTTPSink) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.pingURL, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("ping influxdb: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("ping influxdb: %s", resp.Status)
	}
	return nil
}

// WriteError is InfluxDB's refusal of a write.
type WriteError struct {
	Status     int           // HTTP status code
	Message    string        // the server's explanation
	RetryAfter time.Duration // from a Retry-After header; 0 when absent
	// Partial is set when the server said which lines it refused and that
	// it took the others (InfluxDB 3: 400 "partial write of line protocol
	// occurred" with one entry per refused line). 1.8 also stores the good
	// lines of a 400 but does not say which; 2.x stores none.
	Partial *PartialWrite
}

// PartialWrite is what a server that takes part of a batch says about it.
type PartialWrite struct {
	// Refused are the 1-based numbers of the lines the server refused, in
	// increasing order.
	Refused []int
	// Through is the last line the answer speaks for: InfluxDB 3 lists at
	// most maxPartialDetails refused lines, so when the list is full, the
	// lines after its last one may have been refused or taken. When the
	// list is shorter, Through is the whole batch (0 stands for that).
	Through int
}

// maxPartialDetails is how many refused lines InfluxDB 3 details at most
// in one answer (its documentation: "up to 100 points").
const maxPartialDetails = 100

// maxErrorBody bounds the error answer read.
const maxErrorBody = 256 << 10

func (e *WriteError) Error() string {
	return fmt.Sprintf("influxdb answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Action tells the Writer what to do with a batch whose write failed.
type Action uint8

const (
	// Retry keeps the batch and sends it again after a backoff: network
	// errors, timeouts, 5xx, 429, and also 401/403 (a token being fixed) and
	// 404 (a bucket being created), so that a misconfiguration loses nothing.
	Retry Action = iota
	// Drop: the server will never take the batch as it is (400, 422 and
	// other 4xx). The Writer splits it to find the lines the server refuses
	// and drops only those: 2.x stores nothing of a batch it answers 400 to
	// (1.8 stores the good lines), so dropping the whole batch would lose
	// every other gateway's points with it. Where the server says which
	// lines it refused and that it took the rest (WriteError.Partial,
	// InfluxDB 3), the Writer drops those lines and sends nothing again.
	Drop
	// Split halves the batch and sends each half (413 Request Entity Too Large).
	Split
)

// Classify says what to do after err from Sink.Send.
func Classify(err error) Action {
	var we *WriteError
	if !errors.As(err, &we) {
		return Retry
	}
	switch {
	case we.Status == http.StatusRequestEntityTooLarge:
		return Split
	case we.Status == http.StatusUnauthorized, we.Status == http.StatusForbidden,
		we.Status == http.StatusNotFound, we.Status == http.StatusRequestTimeout,
		we.Status == http.StatusTooManyRequests, we.Status >= 500:
		return Retry
	}
	return Drop
}

func readWriteError(resp *http.Response) error {
	// InfluxDB 3 details up to 100 refused lines, each quoted whole: room
	// for 100 long lines, and the message kept short for the log.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 4<<10 {
		msg = msg[:4<<10] + "..."
	}
	we := &WriteError{Status: resp.StatusCode, Message: msg}
	// 2.x answers {"code":…,"message":…}, 1.8 {"error":…}.
	var body struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil {
		if body.Message != "" {
			we.Message = body.Message
		} else if body.Error != "" {
			we.Message = body.Error
		}
	}
	we.Partial = partialWrite(resp.StatusCode, raw)
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			we.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			we.RetryAfter = max(time.Until(t), 0)
		}
	}
	return we
}

// partialWrite reads InfluxDB 3's account of a partial write:
//
//	{"error":"partial write of line protocol occurred",
//	 "data":[{"original_line":"…","line_number":2,"error_message":"…"}, …]}
//
// and returns nil for any other answer (a whole batch refused: "parsing
// failed", whose data is one object; 1.8's and 2.x's answers; an answer
// too long to read whole), so that the batch is split as before.
func partialWrite(status int, raw []byte) *PartialWrite {
	if status != http.StatusBadRequest || !bytes.Contains(raw, []byte("partial write")) {
		return nil
	}
	var body struct {
		Error string `json:"error"`
		Data  []struct {
			Line int `json:"line_number"`
		} `json:"data"`
	}
	if json.Unmarshal(raw, &body) != nil || !strings.Contains(body.Error, "partial write") {
		return nil
	}
	p := &PartialWrite{}
	for _, d := range body.Data {
		if d.Line <= 0 || (len(p.Refused) > 0 && d.Line <= p.Refused[len(p.Refused)-1]) {
			return nil // not an account we can rely on
		}
		p.Refused = append(p.Refused, d.Line)
	}
	if len(p.Refused) == 0 {
		return nil
	}
	if len(p.Refused) >= maxPartialDetails {
		p.Through = p.Refused[len(p.Refused)-1]
	}
	return p
}
