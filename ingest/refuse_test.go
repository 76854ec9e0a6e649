package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/spool"
	"github.com/p1logger/p1logger/internal/influxtest"
)

// TestWriterIsolatesRefusedLinesInflux sends one batch holding the points of
// five gateways and two lines a real InfluxDB 1.8 refuses (a syntax error and
// a field type conflict). Every good point must be stored, and
// points_written must count exactly what the server stored: 1.8 stores the
// good lines of a batch it answers 400 to, and the Writer used to count none
// of them as written and all of them as dropped.
func TestWriterIsolatesRefusedLinesInflux(t *testing.T) {
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	sink, err := NewHTTPSink(InfluxConfig{URL: srv.URL(), Token: srv.Token(), Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	good := 0
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range 60 {
		switch i {
		case 17:
			b.WriteString("isolate,gateway=bad v=notanumber 1\n")
		case 41:
			// n is an integer in every other line of the batch.
			fmt.Fprintf(&b, "isolate,gateway=gw%d n=1.5 %d\n", i%5, base+int64(i))
		default:
			fmt.Fprintf(&b, "isolate,gateway=gw%d n=%di %d\n", i%5, i, base+int64(i))
			good++
		}
	}
	log, logs := captureLog(t)
	w := NewWriter(WriterConfig{Logger: log}, spool.NewMemBuffer(1<<20, 1<<10, log), sink)
	w.WriteLines(context.Background(), []byte(b.String()))
	runInBackground(t, w.Run)
	waitFor(t, 20*time.Second, "buffer empty", func() bool { return w.Stats().BufferedBytes == 0 })

	rows := fluxRows(t, srv, bucket, "isolate")
	if len(rows) != good {
		t.Errorf("InfluxDB stored %d points, want %d", len(rows), good)
	}
	s := w.Stats()
	if s.Points != int64(len(rows)) || s.Points != int64(good) {
		t.Errorf("points written %d, stored %d, want %d", s.Points, len(rows), good)
	}
	if s.DroppedPoints != 2 {
		t.Errorf("points dropped %d, want 2", s.DroppedPoints)
	}
	if s.Failing {
		t.Errorf("writer failing after a refusal: %+v", s)
	}
	// One log line for the batch, with the server's reason and a dropped line.
	if n := logs.Count("level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines, want 1", n)
	}
	if got := logs.String(); !strings.Contains(got, "unable to parse") && !strings.Contains(got, "field type conflict") {
		t.Errorf("log lacks the server's message:\n%s", got)
	}
}

// TestWriterRefusedEverywhere: a server that refuses every request (413 for
// everything, or 400 for everything with 2.x semantics: nothing stored)
// costs each batch a bounded number of requests, drops and counts every
// point, and logs one ERROR, not one per batch.
func TestWriterRefusedEverywhere(t *testing.T) {
	for _, status := range []int{http.StatusRequestEntityTooLarge, http.StatusBadRequest} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := &fakeInflux{respond: func(int, []byte) (int, http.Header) { return status, nil }}
			log, logs := captureLog(t)
			buf := spool.NewMemBuffer(1<<20, 1<<10, log)
			w, _ := newFakeWriterBuf(t, f, WriterConfig{MaxBatchBytes: 4 << 10, Logger: log}, buf)
			const n = 2000 // about 30 batches of 4 KiB
			w.WriteLines(context.Background(), []byte(lines(0, n)))
			runInBackground(t, w.Run)
			waitFor(t, 20*time.Second, "buffer empty", func() bool { return buf.Bytes() == 0 })
			s := w.Stats()
			if s.DroppedPoints != n || s.Points != 0 {
				t.Errorf("dropped %d, written %d, want %d and 0", s.DroppedPoints, s.Points, n)
			}
			f.mu.Lock()
			requests := f.requests
			f.mu.Unlock()
			batches := (len(lines(0, n)) + 4<<10 - 1) / (4 << 10)
			if requests > 2*batches*maxDeliverRequests {
				t.Errorf("%d requests for about %d batches, want at most %d per batch", requests, batches, maxDeliverRequests)
			}
			if got := logs.Count("level=ERROR"); got != 1 {
				t.Errorf("%d ERROR lines for %d requests, want 1", got, requests)
			}
			if got := logs.Count("level=INFO"); got > 1 {
				t.Errorf("%d INFO lines, want at most 1", got)
			}
			t.Logf("%d requests, %d dropped", requests, s.DroppedPoints)
		})
	}
}
