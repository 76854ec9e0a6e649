package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/p1logger/p1logger/ingest/spool"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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
	if r.URL.Path == "/ping" { // the sink asks which server this is
		w.WriteHeader(http.StatusNoContent)
		return
	}
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

func newFakeWriter(t *testing.T, f *fakeInflux, cfg WriterConfig) (*Writer, *spool.MemBuffer) {
	buf := spool.NewMemBuffer(1<<20, 1<<10, testLogger(t))
	w, _ := newFakeWriterBuf(t, f, cfg, buf)
	return w, buf
}

// newFakeWriterBuf returns a Writer that queues in buf and writes to f.
func newFakeWriterBuf(t *testing.T, f *fakeInflux, cfg WriterConfig, buf Buffer) (*Writer, Buffer) {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	sink, err := NewHTTPSink(InfluxConfig{URL: srv.URL, Bucket: "b", GzipMin: 256})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
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
		// 2.x semantics: a 400 stores nothing of the batch.
		{"400 drops the bad line only", func(_ int, b []byte) (int, http.Header) {
			if bytes.Contains(b, []byte("m v=7i 7\n")) {
				return 400, nil
			}
			return 204, nil
		}, strings.Replace(data, "m v=7i 7\n", "", 1), 1},
	}
	buffers := []struct {
		name string
		new  func(t *testing.T) Buffer
	}{
		{"memory", func(t *testing.T) Buffer { return spool.NewMemBuffer(1<<20, 1<<10, testLogger(t)) }},
		{"spool", func(t *testing.T) Buffer { return openSpool(t, spool.Config{Dir: t.TempDir(), RecordBytes: 1 << 10}) }},
	}
	for _, bt := range buffers {
		for _, tc := range tests {
			t.Run(bt.name+"/"+tc.name, func(t *testing.T) {
				testWriterStatus(t, bt.new(t), data, tc.respond, tc.want, tc.dropped)
			})
		}
	}
}

func testWriterStatus(t *testing.T, buf Buffer, data string, respond func(int, []byte) (int, http.Header), want string, dropped int64) {
	f := &fakeInflux{respond: respond}
	w, _ := newFakeWriterBuf(t, f, WriterConfig{MaxBatchBytes: 1 << 10}, buf)
	w.WriteLines(context.Background(), []byte(data))
	runInBackground(t, w.Run)
	waitFor(t, 5*time.Second, "buffer empty", func() bool { return buf.Bytes() == 0 })
	got := f.got()
	s := w.Stats()
	if got != want {
		t.Errorf("server got %d bytes, want %d:\n%s", len(got), len(want), got)
	}
	if s.Points != 200-dropped || s.DroppedPoints != dropped || s.Failing {
		t.Errorf("stats %+v", s)
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

// TestWriterTokenRejected: a 401 keeps the points, shows in Stats and the
// log as a rejected token, and once the token works the backlog is
// delivered and counted as replayed.
func TestWriterTokenRejected(t *testing.T) {
	var accept atomic.Bool
	f := &fakeInflux{respond: func(int, []byte) (int, http.Header) {
		if accept.Load() {
			return 204, nil
		}
		return 401, nil
	}}
	log, logs := captureLog(t)
	w, buf := newFakeWriterBuf(t, f, WriterConfig{Logger: log}, openSpool(t, spool.Config{Dir: t.TempDir()}))
	runInBackground(t, w.Run)
	for i := range 50 {
		w.WriteLines(context.Background(), []byte(lines(i, i+1)))
	}
	waitFor(t, 5*time.Second, "a rejected write", func() bool { return w.Stats().TokenRejected })
	if s := w.Stats(); !s.Failing || s.Points != 0 || s.Buffer.Points != 50 || !strings.Contains(s.LastError, "401") {
		t.Errorf("while rejected: %+v", s)
	}
	// The writer logs just after it updates its stats.
	waitFor(t, time.Second, "the token rejected log line", func() bool {
		return strings.Contains(logs.String(), "influxdb token rejected; keeping points and retrying")
	})
	accept.Store(true)
	waitFor(t, 5*time.Second, "delivery", func() bool { return buf.Bytes() == 0 })
	s := w.Stats()
	if s.TokenRejected || s.Failing || s.Points != 50 || s.ReplayedPoints != 50 || f.got() != lines(0, 50) {
		t.Errorf("after the fix: %+v", s)
	}
	waitFor(t, time.Second, "backlog log line", func() bool { return strings.Contains(logs.String(), "backlog delivered") })
}

// TestWriterRetryAfterCap: an absurd Retry-After is capped.
func TestWriterRetryAfterCap(t *testing.T) {
	f := &fakeInflux{respond: func(int, []byte) (int, http.Header) {
		return 503, http.Header{"Retry-After": {"86400"}}
	}}
	log, logs := captureLog(t)
	w, _ := newFakeWriterBuf(t, f, WriterConfig{Logger: log, DrainTimeout: 100 * time.Millisecond}, spool.NewMemBuffer(1<<20, 1<<10, log))
	w.WriteLines(context.Background(), []byte(lines(0, 1)))
	runInBackground(t, w.Run)
	waitFor(t, 5*time.Second, "a failed write", func() bool { return w.Stats().Failing })
	waitFor(t, 5*time.Second, "the retry log line", func() bool { return strings.Contains(logs.String(), "retry_in=") })
	if !strings.Contains(logs.String(), "retry_in=5m0s") {
		t.Errorf("Retry-After of a day not capped at 5m:\n%s", logs.String())
	}
}

// TestWriterDrainSpool: at shutdown with InfluxDB down, a Writer over a
// spool stops at the first failure: the points are safe on disk.
func TestWriterDrainSpool(t *testing.T) {
	f := &fakeInflux{respond: func(int, []byte) (int, http.Header) { return 503, nil }}
	dir := t.TempDir()
	sp := openSpool(t, spool.Config{Dir: dir})
	w, _ := newFakeWriterBuf(t, f, WriterConfig{DrainTimeout: 5 * time.Second}, sp)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.WriteLines(ctx, []byte(lines(0, 3)))
	t0 := time.Now()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("drain with a spool took %s", d)
	}
	sp.Close()
	sp = openSpool(t, spool.Config{Dir: dir})
	if got := drainAll(t, sp, 1<<20); got != lines(0, 3) {
		t.Errorf("after restart: %q", got)
	}
}

// influx3 answers /ping and /api/v3/write_lp?accept_partial=true as
// InfluxDB 3 does (its documentation): it stores every line it takes, and
// for a batch with refused lines answers 400 "partial write of line
// protocol occurred", listing at most 100 refused lines with their numbers. A real InfluxDB 1.8
// cannot give this answer, so this stands in for it.
type influx3 struct {
	mu     sync.Mutex
	refuse func(line string) bool
	seen   map[string]int // line → times received
	stored map[string]bool
	wrong  int // writes to another endpoint than /api/v3/write_lp
}

func (f *influx3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ping" {
		w.Header().Set("X-Influxdb-Version", "3.2.0")
		w.Header().Set("X-Influxdb-Build", "Core")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/v3/configure/") { // tables made before writing
		w.WriteHeader(http.StatusOK)
		return
	}
	q := r.URL.Query()
	if r.URL.Path != "/api/v3/write_lp" || q.Get("db") != "b" || q.Get("accept_partial") != "true" || q.Get("precision") != "nanosecond" {
		f.mu.Lock()
		f.wrong++
		f.mu.Unlock()
		http.Error(w, `{"error":"not the v3 write endpoint"}`, http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	type detail struct {
		Original string `json:"original_line"`
		Line     int    `json:"line_number"`
		Message  string `json:"error_message"`
	}
	var refused []detail
	for i, line := range strings.SplitAfter(string(body), "\n") {
		if line == "" {
			continue
		}
		f.seen[line]++
		if f.refuse(line) {
			refused = append(refused, detail{strings.TrimSpace(line), i + 1, "invalid column type for column 'v'"})
			continue
		}
		f.stored[line] = true
	}
	if len(refused) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]any{"error": "partial write of line protocol occurred", "data": refused[:min(len(refused), 100)]})
}

// TestWriterPartialWrite: the sink writes to InfluxDB 3's own endpoint
// once /ping says 3.x, and on a partial write that names the refused lines
// the writer drops those, counts the others as written, and does not send
// them again; where the server's list stops (100 lines), the lines after it
// are sent again, and nothing it did not refuse is lost.
func TestWriterPartialWrite(t *testing.T) {
	for _, tc := range []struct {
		name      string
		batch     int
		refuse    func(v int) bool
		resendMax int // lines the writer may send twice
	}{
		{"two refused", 1 << 10, func(v int) bool { return v == 7 || v == 130 }, 0},
		{"more refused than the server lists", 64 << 10, func(v int) bool { return v%2 == 1 }, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &influx3{seen: map[string]int{}, stored: map[string]bool{}}
			f.refuse = func(line string) bool {
				var v int
				fmt.Sscanf(line, "m v=%di", &v)
				return tc.refuse(v)
			}
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			sink, err := NewHTTPSink(InfluxConfig{URL: srv.URL, Bucket: "b"})
			if err != nil {
				t.Fatal(err)
			}
			buf := spool.NewMemBuffer(1<<20, 1<<10, testLogger(t))
			w := NewWriter(WriterConfig{MaxBatchBytes: tc.batch, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
				Logger: testLogger(t)}, buf, sink)
			data := lines(0, 400)
			w.WriteLines(context.Background(), []byte(data))
			runInBackground(t, w.Run)
			waitFor(t, 5*time.Second, "buffer empty", func() bool { return buf.Bytes() == 0 })

			f.mu.Lock()
			defer f.mu.Unlock()
			var wantDropped int64
			twice := 0
			for v := range 400 {
				line := fmt.Sprintf("m v=%di %d\n", v, v)
				if tc.refuse(v) {
					wantDropped++
					if f.stored[line] {
						t.Errorf("refused line %q stored", line)
					}
					continue
				}
				if !f.stored[line] {
					t.Errorf("line %q lost", line)
				}
				if f.seen[line] > 1 {
					twice++
				}
			}
			if f.wrong != 0 {
				t.Errorf("%d writes not to /api/v3/write_lp", f.wrong)
			}
			if twice > tc.resendMax {
				t.Errorf("%d taken lines sent again, want at most %d", twice, tc.resendMax)
			}
			if s := w.Stats(); s.DroppedPoints != wantDropped || s.Points != 400-wantDropped {
				t.Errorf("stats %+v, want %d dropped", s, wantDropped)
			}
		})
	}
}

// TestPartialWriteAnswers: only InfluxDB 3's account of a partial write,
// which names the refused lines, is taken as one.
func TestPartialWriteAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // fmt of *PartialWrite
	}{
		{"influxdb 3 partial", 400, `{"error":"partial write of line protocol occurred","data":[{"original_line":"a","line_number":2,"error_message":"x"},{"original_line":"b","line_number":5,"error_message":"y"}]}`, "&{[2 5] 0}"},
		{"influxdb 3 all refused", 400, `{"error":"parsing failed for write_lp endpoint","data":{"original_line":"a","line_number":2,"error_message":"x"}}`, "<nil>"},
		{"1.8 partial without lines", 400, `{"error":"partial write: field type conflict: input field \"v\" on measurement \"m\" is type float, already exists as type integer dropped=1"}`, "<nil>"},
		{"2.x", 400, `{"code":"invalid","message":"partial write has occurred, errors encountered on line(s): line 2: no field"}`, "<nil>"},
		{"lines out of order", 400, `{"error":"partial write of line protocol occurred","data":[{"line_number":5},{"line_number":2}]}`, "<nil>"},
		{"not a 400", 422, `{"error":"partial write of line protocol occurred","data":[{"line_number":2}]}`, "<nil>"},
	} {
		if got := fmt.Sprint(partialWrite(tc.status, []byte(tc.body))); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	full := &PartialWrite{}
	var b strings.Builder
	b.WriteString(`{"error":"partial write of line protocol occurred","data":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"line_number":%d}`, 2*i+1)
		full.Refused = append(full.Refused, 2*i+1)
	}
	b.WriteString("]}")
	full.Through = 199
	if got := partialWrite(400, []byte(b.String())); fmt.Sprint(got) != fmt.Sprint(full) {
		t.Errorf("a full list of 100: got %v, want through %d", got, full.Through)
	}
}

// TestHTTPSinkInflux3Tables: on InfluxDB 3, whose tables keep the tags of
// their first write (its documentation: "tags in a table are immutable"),
// the sink creates p1 and p1_mbus with all their tags before writing, so
// that a first point without meter_id does not get every later meter_id
// refused. The stand-in keeps tag sets as InfluxDB 3 does.
func TestHTTPSinkInflux3Tables(t *testing.T) {
	var mu sync.Mutex
	tables := map[string]map[string]bool{} // table → its tags
	var refused []string
	var created []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/ping":
			w.Header().Set("X-Influxdb-Version", "3.2.0")
			w.WriteHeader(http.StatusNoContent)
		case "/api/v3/configure/database":
			w.WriteHeader(http.StatusOK)
		case "/api/v3/configure/table":
			var req struct {
				DB    string   `json:"db"`
				Table string   `json:"table"`
				Tags  []string `json:"tags"`
			}
			if json.NewDecoder(r.Body).Decode(&req) != nil || req.DB != "p1" || r.Header.Get("Authorization") != "Bearer tok" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			tags := map[string]bool{}
			for _, tg := range req.Tags {
				tags[tg] = true
			}
			tables[req.Table] = tags
			created = append(created, req.Table)
			w.WriteHeader(http.StatusOK)
		case "/api/v3/write_lp":
			body, _ := io.ReadAll(r.Body)
			type detail struct {
				Line int `json:"line_number"`
			}
			var bad []detail
			for i, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
				head, _, _ := strings.Cut(line, " ")
				parts := strings.Split(head, ",")
				tags := tables[parts[0]]
				if tags == nil { // the first write makes the table
					tags = map[string]bool{}
					for _, kv := range parts[1:] {
						k, _, _ := strings.Cut(kv, "=")
						tags[k] = true
					}
					tables[parts[0]] = tags
				}
				for _, kv := range parts[1:] {
					if k, _, _ := strings.Cut(kv, "="); !tags[k] {
						bad = append(bad, detail{i + 1})
						refused = append(refused, line)
						break
					}
				}
			}
			if len(bad) > 0 {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]any{"error": "partial write of line protocol occurred", "data": bad})
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	sink, err := NewHTTPSink(InfluxConfig{URL: srv.URL, Bucket: "p1", Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A DSMR 2.2 meter without an equipment identifier writes first.
	for _, batch := range []string{"p1,gateway=old taken_kwh=1 1\n", "p1,gateway=new,meter_id=E1 taken_kwh=2 2\n"} {
		if err := sink.Send(ctx, []byte(batch)); err != nil {
			t.Errorf("send %q: %v", batch, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(created) != "[p1 p1_mbus]" || len(refused) != 0 {
		t.Errorf("tables created %v; refused %q", created, refused)
	}
}
