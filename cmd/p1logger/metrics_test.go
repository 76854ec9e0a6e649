package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/p1logger/p1logger/ingest"
	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/ingest/spool"
)

// newMetricsStatus returns a status over n gateways that nothing runs: what
// /metrics needs to be scraped.
func newMetricsStatus(n int) *status {
	gws := make([]*ingest.Gateway, n)
	for i := range gws {
		gws[i] = ingest.NewGateway(fmt.Sprintf("gw%05d", i), source.NewTCP(fmt.Sprintf("10.0.%d.%d:8088", i/250, i%250)))
	}
	w := ingest.NewWriter(ingest.WriterConfig{}, spool.NewMemBuffer(1<<20, 64<<10, slog.New(slog.DiscardHandler)), nil)
	return &status{gateways: gws, writer: w, batcher: ingest.NewBatcher(ingest.BatcherConfig{}, gws, w, nil), started: time.Now()}
}

// TestMetricsExposition scrapes /metrics and parses it as Prometheus does:
// the hand-written families and the client library's must form one valid
// exposition (no family twice), with p1logger_build_info naming this build
// and the standard go_* and process_* families present.
func TestMetricsExposition(t *testing.T) {
	s := newMetricsStatus(2)
	rec := httptest.NewRecorder()
	s.metrics(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	bi := mfs["p1logger_build_info"]
	if bi == nil || len(bi.Metric) != 1 {
		t.Fatalf("p1logger_build_info: got %v, want one metric", bi)
	}
	got := map[string]string{}
	for _, l := range bi.Metric[0].Label {
		got[l.GetName()] = l.GetValue()
	}
	info := readBuildInfo()
	want := map[string]string{"version": info.Version, "revision": info.Revision, "goversion": runtime.Version()}
	if fmt.Sprint(got) != fmt.Sprint(want) || bi.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("p1logger_build_info: got labels %v value %v, want %v and 1", got, bi.Metric[0].GetGauge().GetValue(), want)
	}
	families := []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds", "go_info",
		"p1logger_gateway_connected", "p1logger_write_duration_seconds"}
	if runtime.GOOS == "linux" {
		families = append(families, "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds")
	}
	for _, name := range families {
		if mfs[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if n := len(mfs["p1logger_gateway_connected"].GetMetric()); n != 2 {
		t.Errorf("p1logger_gateway_connected: %d series, want one per gateway (2)", n)
	}
}

// BenchmarkMetrics is one scrape of /metrics at 10,000 gateways: the
// hand-written per-gateway families plus the library's process-wide ones
// (what p1logger serves), and for comparison the same per-gateway families
// built as the client library's const metrics by a Collector and encoded by
// the library (what serving everything through it would cost).
func BenchmarkMetrics(b *testing.B) {
	const n = 10_000
	s := newMetricsStatus(n)
	b.Run("served", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			s.metrics(rec, httptest.NewRequest("GET", "/metrics", nil))
			b.SetBytes(int64(rec.Body.Len()))
		}
	})
	b.Run("process_families_only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			if err := writeRuntimeMetrics(&buf, runtimeMetrics()); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
		}
	})
	b.Run("client_library", func(b *testing.B) {
		reg := newRuntimeRegistry(readBuildInfo())
		reg.MustRegister(gatewayCollector{s})
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			if err := writeRuntimeMetrics(&buf, reg); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
		}
	})
}

// gatewayCollector exposes the per-gateway families of status.metrics
// through the client library, as a Collector must for state it does not
// own: a const metric per gateway and family on every scrape.
type gatewayCollector struct{ s *status }

var gatewayDescs = func() []*prometheus.Desc {
	var d []*prometheus.Desc
	for _, name := range []string{"connected", "telegrams_total", "crc_errors_total", "parse_errors_total",
		"dropped_telegrams_total", "reconnects_total", "skipped_bytes_total", "skipped_telegrams_total",
		"internal_errors_total", "last_telegram_age_seconds"} {
		d = append(d, prometheus.NewDesc("p1logger_gateway_"+name, "help text of "+name, []string{"gateway"}, nil))
	}
	return d
}()

func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range gatewayDescs {
		ch <- d
	}
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, g := range c.s.gateways {
		st := g.Stats()
		vals := []float64{b2f(st.Connected), float64(st.Telegrams), float64(st.CRCErrors), float64(st.ParseErrors),
			float64(st.Dropped), float64(st.Reconnects), float64(st.SkippedBytes), float64(st.SkippedTelegrams),
			float64(st.InternalErrors), now.Sub(st.LastTelegram).Seconds()}
		for i, v := range vals {
			typ := prometheus.CounterValue
			if i == 0 || i == len(vals)-1 {
				typ = prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(gatewayDescs[i], typ, v, st.Name)
		}
	}
}
