package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeInflux answers /api/v2/write with whatever respond decides, recording
// the bodies it accepted. It stands in for InfluxDB only for answers a real
// server cannot be made to give on demand (413, 429 with Retry-After, 500).
type fakeInflux struct {
	mu       sync.Mutex
	accepted bytes.Buffer
	requests int
	respond  func(n int, body []byte) (status int, header http.Header)
}

func (f *fakeInflux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body, _ = io.ReadAll(zr)
	} else {
		body, _ = io.ReadAll(r.Body)
	}
	f.mu.Lock()
	n := f.requests
	f.requests++
	f.mu.Unlock()
	status, h := f.respond(n, body)
	for k, v := range h {
		w.Header()[k] = v
	}
	if status/100 == 2 {
		f.mu.Lock()
		f.accepted.Write(body)
		f.mu.Unlock()
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":"x","message":"fake %d"}`, status)
}

func (f *fakeInflux) got() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted.String()
}

func newFakeWriter(t *testing.T, f *fakeInflux, cfg WriterConfig) (*Writer, *MemBuffer) {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	sink, err := NewHTTPSink(InfluxConfig{URL: srv.URL, Bucket: "b", GzipMin: 256})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	cfg.Logger = testLogger(t)
	buf := NewMemBuffer(1<<20, 1<<10, testLogger(t))
	return NewWriter(cfg, buf, sink), buf
}

func TestWriterStatuses(t *testing.T) {
	data := lines(0, 200) // ~2.5 KB: several batches of MaxBatchBytes 1 KiB
	tests := []struct {
		name    string
		respond func(n int, body []byte) (int, http.Header)
		want    string // what the server ends up with
		dropped int64
	}{
		{"ok", func(int, []byte) (int, http.Header) { return 204, nil }, data, 0},
		{"500 then ok", func(n int, _ []byte) (int, http.Header) {
			if n < 3 {
				return 500, nil
			}
			return 204, nil
		}, data, 0},
		{"401 then ok: token fixed, nothing lost", func(n int, _ []byte) (int, http.Header) {
			if n < 2 {
				return 401, nil
			}
			return 204, nil
		}, data, 0},
		{"404 bucket then ok", func(n int, _ []byte) (int, http.Header) {
			if n < 2 {
				return 404, nil
			}
			return 204, nil
		}, data, 0},
		{"413 splits until it fits", func(_ int, b []byte) (int, http.Header) {
			if len(b) > 300 {
				return 413, nil
			}
			return 204, nil
		}, data, 0},
		{"400 drops the bad batch only", func(_ int, b []byte) (int, http.Header) {
			if bytes.Contains(b, []byte("m v=7i 7\n")) {
				return 400, nil
			}
			return 204, nil
		}, "", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeInflux{respond: tc.respond}
			w, buf := newFakeWriter(t, f, WriterConfig{MaxBatchBytes: 1 << 10})
			w.WriteLines(context.Background(), []byte(data))
			runInBackground(t, w.Run)
			waitFor(t, 5*time.Second, "buffer empty", func() bool { return buf.Bytes() == 0 })
			got := f.got()
			s := w.Stats()
			if tc.dropped < 0 {
				// The first batch, holding line 7, is dropped; the rest arrive.
				if strings.Contains(got, "m v=7i 7\n") || !strings.HasSuffix(got, lines(199, 200)) {
					t.Errorf("server got %q", got)
				}
				if s.DroppedPoints == 0 || s.DroppedPoints+s.Points != 200 {
					t.Errorf("dropped %d + written %d, want 200 with some dropped", s.DroppedPoints, s.Points)
				}
				return
			}
			if got != tc.want {
				t.Errorf("server got %d bytes, want %d:\n%s", len(got), len(tc.want), got)
			}
			if s.Points != 200 || s.DroppedPoints != tc.dropped || s.Failing {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestWriterRetryAfter: a 429 with Retry-After is honoured, not hammered.
func TestWriterRetryAfter(t *testing.T) {
	var first time.Time
	var second time.Duration
	f := &fakeInflux{respond: func(n int, _ []byte) (int, http.Header) {
		if n == 0 {
			first = time.Now()
			return 429, http.Header{"Retry-After": {"1"}}
		}
		if n == 1 {
			second = time.Since(first)
		}
		return 204, nil
	}}
	w, buf := newFakeWriter(t, f, WriterConfig{})
	w.WriteLines(context.Background(), []byte(lines(0, 3)))
	runInBackground(t, w.Run)
	waitFor(t, 5*time.Second, "delivery", func() bool { return buf.Bytes() == 0 })
	if second < 900*time.Millisecond {
		t.Errorf("retried after %s, want ≥ 1s (Retry-After)", second)
	}
	if got := f.got(); got != lines(0, 3) {
		t.Errorf("got %q", got)
	}
}

// TestWriterDrain: cancelling Run sends what is buffered before returning;
// with InfluxDB failing, Run gives up after DrainTimeout.
func TestWriterDrain(t *testing.T) {
	t.Run("delivered", func(t *testing.T) {
		f := &fakeInflux{respond: func(int, []byte) (int, http.Header) { return 204, nil }}
		w, _ := newFakeWriter(t, f, WriterConfig{MaxBatchBytes: 1 << 10})
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Run starts already cancelled: it only drains
		w.WriteLines(ctx, []byte(lines(0, 300)))
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got := f.got(); got != lines(0, 300) {
			t.Errorf("drain delivered %d bytes, want %d", len(got), len(lines(0, 300)))
		}
	})
	t.Run("influx down", func(t *testing.T) {
		f := &fakeInflux{respond: func(int, []byte) (int, http.Header) { return 503, nil }}
		w, buf := newFakeWriter(t, f, WriterConfig{DrainTimeout: 300 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w.WriteLines(ctx, []byte(lines(0, 3)))
		t0 := time.Now()
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d < 250*time.Millisecond || d > 2*time.Second {
			t.Errorf("drain took %s, want about the 300ms DrainTimeout", d)
		}
		if buf.Bytes() == 0 {
			t.Error("undelivered data vanished from the buffer")
		}
	})
}

// TestWriterNeverBlocks: WriteLines returns at once while InfluxDB hangs.
func TestWriterNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	f := &fakeInflux{respond: func(int, []byte) (int, http.Header) {
		<-release
		return 204, nil
	}}
	w, _ := newFakeWriter(t, f, WriterConfig{})
	defer close(release)
	runInBackground(t, w.Run)
	t0 := time.Now()
	for i := range 1000 {
		if err := w.WriteLines(context.Background(), []byte(lines(i, i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Errorf("1000 WriteLines took %s with InfluxDB hanging", d)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Action
	}{
		{errors.New("connection refused"), Retry},
		{context.DeadlineExceeded, Retry},
		{&WriteError{Status: 400}, Drop},
		{&WriteError{Status: 422}, Drop},
		{&WriteError{Status: 401}, Retry},
		{&WriteError{Status: 403}, Retry},
		{&WriteError{Status: 404}, Retry},
		{&WriteError{Status: 413}, Split},
		{&WriteError{Status: 429}, Retry},
		{&WriteError{Status: 500}, Retry},
		{&WriteError{Status: 503}, Retry},
		{fmt.Errorf("wrapped: %w", &WriteError{Status: 400}), Drop},
	}
	for _, tc := range tests {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
