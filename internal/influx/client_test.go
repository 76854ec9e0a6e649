package influx

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
)

func TestMain(m *testing.M) { os.Exit(influxtest.Main(m)) }

func TestParseLanguage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Language
		err  bool
	}{
		{"", Auto, false}, {"auto", Auto, false}, {"Flux", Flux, false}, {" influxql ", InfluxQL, false},
		{"sql", "", true}, {"influx", "", true},
	} {
		got, err := ParseLanguage(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseLanguage(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestDetect: the language auto picks from what servers say about
// themselves. The servers are stand-ins answering as each version's
// documentation says it does (a real InfluxDB 1.8 is below): InfluxDB 3
// and 2.x cannot run here.
func TestDetect(t *testing.T) {
	type answer struct {
		pingHeader map[string]string
		pingBody   string
		health     string
		fluxStatus int
		fluxBody   string
	}
	for _, tc := range []struct {
		name      string
		a         answer
		want      Language
		wantMajor int
		probes    int // requests to /api/v2/query
	}{
		{"influxdb 3 core", answer{pingHeader: map[string]string{"X-Influxdb-Version": "3.2.1", "X-Influxdb-Build": "Core"}, fluxStatus: 404}, InfluxQL, 3, 0},
		{"influxdb 3, version in the body", answer{pingBody: `{"version":"3.11.2","revision":"x","process_id":"y"}`, fluxStatus: 404}, InfluxQL, 3, 0},
		{"influxdb 2.7", answer{pingHeader: map[string]string{"X-Influxdb-Version": "v2.7.11", "X-Influxdb-Build": "OSS"}, fluxStatus: 401, fluxBody: `{"code":"unauthorized","message":"unauthorized access"}`}, Flux, 2, 1},
		{"1.8 without flux-enabled", answer{pingHeader: map[string]string{"X-Influxdb-Version": "1.8.10", "X-Influxdb-Build": "OSS"}, fluxStatus: 403, fluxBody: `{"error":"Flux query service disabled. Verify flux-enabled=true in the [http] section of the InfluxDB config."}`}, InfluxQL, 1, 1},
		{"1.8 with flux", answer{pingHeader: map[string]string{"X-Influxdb-Version": "1.8.10"}, fluxStatus: 400, fluxBody: `{"error":"request body requires either spec or query"}`}, Flux, 1, 1},
		{"unknown version, health says 2", answer{pingHeader: map[string]string{"X-Influxdb-Version": "unknown"}, health: `{"name":"influxdb","status":"pass","version":"v2.7.1"}`, fluxStatus: 400}, Flux, 2, 1},
		{"nothing said, no flux", answer{fluxStatus: 404}, InfluxQL, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probes := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/ping":
					for k, v := range tc.a.pingHeader {
						w.Header().Set(k, v)
					}
					if tc.a.pingBody != "" {
						w.Write([]byte(tc.a.pingBody))
						return
					}
					w.WriteHeader(http.StatusNoContent)
				case r.URL.Path == "/health" && tc.a.health != "":
					w.Write([]byte(tc.a.health))
				case strings.HasPrefix(r.URL.Path, "/api/v2/query"):
					probes++
					w.WriteHeader(tc.a.fluxStatus)
					w.Write([]byte(tc.a.fluxBody))
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			c, err := New(Config{URL: srv.URL, Bucket: "p1"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Language(context.Background())
			if err != nil || got != tc.want || c.server.Major != tc.wantMajor || probes != tc.probes {
				t.Errorf("got %q (%+v), %v, %d probes; want %q, major %d, %d probes", got, c.server, err, probes, tc.want, tc.wantMajor, tc.probes)
			}
			// Detected once: asking again sends nothing.
			if _, err := c.Language(context.Background()); err != nil || probes != tc.probes {
				t.Errorf("second call: %v, %d probes", err, probes)
			}
		})
	}
}

// TestDetectDown: an InfluxDB that is down is an error, detected again at
// the next question; a set language needs no detection at all.
func TestDetectDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Config{URL: url, Bucket: "p1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Language(context.Background()); err == nil || !strings.Contains(err.Error(), "detect influxdb") {
		t.Errorf("down: %v", err)
	}
	c, _ = New(Config{URL: url, Bucket: "p1", Query: InfluxQL})
	if l, err := c.Language(context.Background()); l != InfluxQL || err != nil {
		t.Errorf("set language: %q %v", l, err)
	}
}

// TestDetectReal: the real InfluxDB 1.8 of the tests (a development build:
// version "unknown", Flux enabled) gets Flux; its InfluxQL answers too.
func TestDetectReal(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	c, err := New(Config{URL: srv.URL(), Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Detect(ctx)
	if err != nil || !s.Flux || s.Major == 3 {
		t.Fatalf("Detect = %+v, %v", s, err)
	}
	for _, lang := range []Language{Flux, InfluxQL} {
		c, _ := New(Config{URL: srv.URL(), Bucket: bucket, Query: lang})
		if _, err := c.Energy(ctx, "month", time.Unix(0, 0), time.Now(), ""); err != nil {
			t.Errorf("%s: %v", lang, err)
		}
	}
}

func TestRegexOneOf(t *testing.T) {
	got := regexOneOf([]string{"gw.1", "a/b", "x\ty", "(+)"})
	want := `/^(gw\.1|a\/b|x\x{9}y|\(\+\))$/`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestSplitBucket(t *testing.T) {
	for _, tc := range []struct{ in, db, rp string }{
		{"p1", "p1", ""}, {"p1/autogen", "p1", "autogen"}, {"my/db/rp", "my/db", "rp"},
	} {
		if db, rp := splitBucket(tc.in); db != tc.db || rp != tc.rp {
			t.Errorf("splitBucket(%q) = %q, %q", tc.in, db, rp)
		}
	}
}
