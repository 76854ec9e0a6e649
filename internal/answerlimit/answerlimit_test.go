package answerlimit_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/answerlimit"
)

func TestReader(t *testing.T) {
	const max = 10
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"empty", "", "", false},
		{"shorter", "123456789", "123456789", false},
		{"exactly the limit", "1234567890", "1234567890", false},
		{"one byte more", "12345678901", "1234567890", true},
		{"much more", strings.Repeat("x", 1000), strings.Repeat("x", 10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := answerlimit.Reader(io.NopCloser(strings.NewReader(tt.in)), max)
			got, err := io.ReadAll(r)
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			if tt.wantErr {
				if !errors.Is(err, answerlimit.ErrTooLarge) || err.Error() != "influx answer exceeds 10 bytes" {
					t.Errorf("err = %v, want influx answer exceeds 10 bytes", err)
				}
				if _, again := r.Read(make([]byte, 1)); again != err {
					t.Errorf("second Read: err = %v, want the same error again", again)
				}
			} else if err != nil {
				t.Errorf("err = %v, want none", err)
			}
		})
	}
}

// bomb is an answer that is small on the wire and huge decompressed: one
// gzip member of memberBytes of CSV records, repeated (gzip readers read
// concatenated members as one stream).
type bomb struct {
	member      []byte
	memberBytes int64
	members     int
	sent        atomic.Int64  // compressed bytes written
	done        chan struct{} // a handler returned
}

func newBomb(t *testing.T, memberBytes int64, members int) *bomb {
	t.Helper()
	line := []byte(",_result,0,2026-03-01T00:00:00Z,2026-04-01T00:00:00Z,2026-03-01T00:00:05Z,1234.5,taken_t1_kwh,p1,gw1,meter\r\n")
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
	for n := int64(0); n < memberBytes; n += int64(len(line)) {
		zw.Write(line[:min(int64(len(line)), memberBytes-n)])
	}
	zw.Close()
	return &bomb{member: zb.Bytes(), memberBytes: memberBytes, members: members, done: make(chan struct{}, 1)}
}

func (b *bomb) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		select {
		case b.done <- struct{}{}:
		default:
		}
	}()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Encoding", "gzip")
	for range b.members {
		n, err := w.Write(b.member)
		b.sent.Add(int64(n))
		if err != nil {
			return // the client hung up, as it should
		}
	}
}

// countingTransport counts the body bytes the client reads off the wire.
type countingTransport struct {
	base http.RoundTripper
	read atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.read}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestTransportGzipBomb asks, as the InfluxDB client does (Accept-Encoding:
// gzip, decompressing itself when the answer says gzip), for a 32 GiB answer
// that is 32 MB on the wire, and reads it whole as QueryRaw does.
func TestTransportGzipBomb(t *testing.T) {
	const limit = 1 << 20
	b := newBomb(t, 8<<20, 4096) // 32 GiB decompressed, tens of MB on the wire: more than socket buffers hold
	srv := httptest.NewServer(b)
	defer srv.Close()
	counter := &countingTransport{base: &http.Transport{DisableCompression: true}}
	client := &http.Client{Transport: answerlimit.Transport(counter, limit)}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/query", strings.NewReader("{}"))
	req.Header.Set("Accept-Encoding", "gzip")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Content-Encoding"); got != "" {
		t.Errorf("Content-Encoding = %q after the transport decompressed; want none, or the client decompresses again", got)
	}
	got, err := io.ReadAll(resp.Body)
	runtime.ReadMemStats(&after)
	// Not closed by the caller (QueryRaw does not close it either): the
	// transport hung up at the limit, so the server stops sending.
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Errorf("the server still sends 10 s after the limit (%d bytes sent): the connection was not closed", b.sent.Load())
	}
	resp.Body.Close()

	if !errors.Is(err, answerlimit.ErrTooLarge) || err.Error() != "influx answer exceeds 1048576 bytes" {
		t.Fatalf("err = %v, want influx answer exceeds 1048576 bytes", err)
	}
	if len(got) != limit {
		t.Errorf("read %d decompressed bytes, want exactly the limit %d", len(got), limit)
	}
	// The read stopped at the limit: it took the first member's bytes (each
	// member is 8 MiB decompressed), not the 128 the server offered.
	if wire := counter.read.Load(); wire > int64(len(b.member)) {
		t.Errorf("read %d compressed bytes off the wire, want at most one member (%d)", wire, len(b.member))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("allocated %d bytes for a %d-byte limit, want under 16 MiB", alloc, limit)
	}
}

// TestTransportPlainHuge: without gzip (the client did not ask, or the
// server ignores it), the limit counts the body as sent.
func TestTransportPlainHuge(t *testing.T) {
	const limit = 1 << 20
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 1 << 14 { // 1 GiB
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	counter := &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
	client := &http.Client{Transport: answerlimit.Transport(counter, limit)}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, answerlimit.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if len(got) != limit {
		t.Errorf("read %d bytes, want %d", len(got), limit)
	}
	// One byte past the limit, read through the buffered body: a few KiB.
	if wire := counter.read.Load(); wire > limit+64<<10 {
		t.Errorf("read %d bytes off the wire, want at most the limit and one buffer", wire)
	}
}

// TestTransportSmallAnswers: answers under the limit arrive intact,
// compressed or not, and an empty gzip body is an empty answer.
func TestTransportSmallAnswers(t *testing.T) {
	const answer = "#datatype,string,long\n,result,table\n,_result,0\n"
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(answer))
	zw.Close()
	tests := []struct {
		name     string
		encoding string
		body     []byte
		want     string
		wantErr  string
	}{
		{"plain", "", []byte(answer), answer, ""},
		{"gzip", "gzip", zb.Bytes(), answer, ""},
		{"empty gzip", "gzip", nil, "", ""},
		{"bad gzip", "gzip", []byte("not gzip at all"), "", "influx answer: gzip: gzip: invalid header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.encoding != "" {
					w.Header().Set("Content-Encoding", tt.encoding)
				}
				w.Write(tt.body)
			}))
			defer srv.Close()
			client := &http.Client{Transport: answerlimit.Transport(&http.Transport{DisableCompression: true}, 1<<20)}
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("err = %q, want %q", gotErr, tt.wantErr)
			}
		})
	}
}
