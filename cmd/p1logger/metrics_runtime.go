package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// The process-wide families of /metrics come from the Prometheus client
// library: the go_* and process_* families every Go exporter has, under the
// names and with the meanings that existing dashboards and alerts expect
// (they are a standard of the library, not of the exposition format), and
// p1logger_build_info. The per-gateway families stay hand-written (http.go):
// they are most of a scrape at thousands of gateways, and writing them from
// the counters directly costs a fraction of building the library's metric
// objects for each (BenchmarkMetrics measures both at 10,000 gateways).

// runtimeMetrics is the registry of the process-wide families, made on the
// first scrape: the process collector reads /proc/self on every scrape,
// nothing in between.
var runtimeMetrics = sync.OnceValue(func() *prometheus.Registry {
	return newRuntimeRegistry(readBuildInfo())
})

// newRuntimeRegistry returns a registry of the Go runtime's and the
// process's standard metrics and of p1logger_build_info for info.
func newRuntimeRegistry(info buildInfo) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "p1logger_build_info",
		Help: "Always 1; the labels say which build of p1logger runs (p1logger version).",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(info.Version, info.Revision, info.GoVersion).Set(1)
	reg.MustRegister(build)
	return reg
}

// writeRuntimeMetrics appends the families of g to w in the text exposition
// format. It returns the first error of gathering or writing; what was
// gathered before a failing collector is still written.
func writeRuntimeMetrics(w io.Writer, g prometheus.Gatherer) error {
	mfs, gerr := g.Gather()
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return fmt.Errorf("write metric family %s: %w", mf.GetName(), err)
		}
	}
	if gerr != nil {
		return fmt.Errorf("gather runtime metrics: %w", gerr)
	}
	return nil
}
