package influxtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// Row is one record of a Flux result, keyed by column name: "_time" (and
// "_start", "_stop") as time.Time, "_value" as float64, int64, uint64, bool or
// string according to the column's type, tags as string, plus "result"
// (string) and "table" (int64) for the table the record belongs to.
type Row map[string]any

// InfluxQLResponse is the JSON answer of InfluxDB 1.8's /query endpoint.
type InfluxQLResponse struct {
	Results []InfluxQLResult `json:"results"`
	Error   string           `json:"error,omitempty"`
}

// InfluxQLResult is the answer to one statement of an InfluxQL query.
type InfluxQLResult struct {
	StatementID int      `json:"statement_id"`
	Series      []Series `json:"series,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// Series is one series of an InfluxQL result. Values are as JSON decodes them:
// times as RFC 3339 strings, numbers as float64.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags,omitempty"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// CreateDatabase creates the database name (with its default retention
// policy autogen, so the bucket is name+"/autogen"). Creating an existing
// database does nothing. It returns an error if the request fails or the
// server reports one.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	if _, err := s.InfluxQL(ctx, "CREATE DATABASE "+quoteIdent(name), ""); err != nil {
		return fmt.Errorf("influxtest: create database %s: %w", name, err)
	}
	return nil
}

var bucketSeq atomic.Int64

// NewBucket creates a database for this test alone and returns its bucket,
// "name/autogen". The name is derived from the test's name and is unique
// across tests, runs and processes sharing a server. When the test ends, the
// database is dropped unless the test failed (then it is kept, and named in
// the log, for a look at what was written). If the database cannot be
// created, NewBucket fails the test with tb.Fatal.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	var r [3]byte
	_, _ = rand.Read(r[:])
	name := fmt.Sprintf("t_%s_%d_%s", sanitize(tb.Name(), 40), bucketSeq.Add(1), hex.EncodeToString(r[:]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateDatabase(ctx, name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("influxtest: kept database %s on %s for inspection", name, s.url)
			return
		}
		if !s.running() { // stopped, killed or paused by the test: nothing to clean
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.InfluxQL(ctx, "DROP DATABASE "+quoteIdent(name), ""); err != nil {
			tb.Logf("influxtest: drop database %s: %v", name, err)
		}
	})
	return name + "/autogen"
}

// WriteLines writes line protocol with nanosecond timestamps to bucket
// ("db/rp" or "db") through the v2-compatible /api/v2/write, as the daemon
// does. It returns an error if the request fails or the status is not 2xx;
// the error then includes the status and the server's message (e.g. which
// line did not parse).
func (s *Server) WriteLines(ctx context.Context, bucket string, lines []byte) error {
	u := s.url + "/api/v2/write?" + url.Values{"bucket": {bucket}, "precision": {"ns"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(lines))
	if err != nil {
		return fmt.Errorf("influxtest: write: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("influxtest: write to %s: %w", bucket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("influxtest: write to %s: %s: %s", bucket, resp.Status, serverMessage(resp.Header, body))
	}
	return nil
}

// Flux runs a Flux query through /api/v2/query with the official client and
// returns all records of all tables, in the order the server sent them. It
// returns an error if the request fails, the server rejects the query (syntax
// or type error: the message is the server's), or the server reports an error
// inside the result stream after some tables were sent (then no rows are
// returned).
func (s *Server) Flux(ctx context.Context, query string) ([]Row, error) {
	res, err := s.client.QueryAPI("").Query(ctx, query)
	if err != nil {
		var herr *influxhttp.Error
		if errors.As(err, &herr) && herr.Header.Get("X-Influxdb-Error") != "" {
			return nil, fmt.Errorf("influxtest: flux query: HTTP %d: %s", herr.StatusCode, herr.Header.Get("X-Influxdb-Error"))
		}
		return nil, fmt.Errorf("influxtest: flux query: %w", err)
	}
	defer res.Close()
	var rows []Row
	for res.Next() {
		rows = append(rows, Row(res.Record().Values()))
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("influxtest: flux query: %w", err)
	}
	return rows, nil
}

// InfluxQL runs InfluxQL statements q through /query (POST, so that
// statements that write are allowed) in database db ("" for none) and returns
// the decoded answer. It returns an error, and the decoded answer when there
// was one, if the request fails, the status is not 2xx, or the server reports
// an error for the query or any statement.
func (s *Server) InfluxQL(ctx context.Context, q, db string) (*InfluxQLResponse, error) {
	form := url.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("influxtest: influxql: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxtest: influxql: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("influxtest: influxql: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("influxtest: influxql %q: %s: %s", q, resp.Status, serverMessage(resp.Header, body))
	}
	var out InfluxQLResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("influxtest: influxql %q: decode answer: %w", q, err)
	}
	if out.Error != "" {
		return &out, fmt.Errorf("influxtest: influxql %q: %s", q, out.Error)
	}
	for _, r := range out.Results {
		if r.Error != "" {
			return &out, fmt.Errorf("influxtest: influxql %q: statement %d: %s", q, r.StatementID, r.Error)
		}
	}
	return &out, nil
}

// serverMessage extracts InfluxDB's error message from a failed answer.
func serverMessage(h http.Header, body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		if e.Message != "" {
			return e.Message
		}
	}
	if m := h.Get("X-Influxdb-Error"); m != "" {
		return m
	}
	if b := strings.TrimSpace(string(body)); b != "" {
		return b
	}
	return "(no message)"
}

// quoteIdent quotes an InfluxQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// sanitize lowercases s and keeps at most n characters of [a-z0-9_],
// replacing others with '_', so test names make readable database names that
// need no escaping in a bucket string.
func sanitize(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() >= n {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
