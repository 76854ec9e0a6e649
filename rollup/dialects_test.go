package rollup_test

import (
	"testing"

	"github.com/p1logger/p1logger/internal/influx"
	"github.com/p1logger/p1logger/internal/influxtest"
	"github.com/p1logger/p1logger/rollup"
)

// The recovery scenarios of influx_test.go run against the real
// internal/influx in both languages. They are in package rollup, which
// internal/influx imports, so the queriers are made here and handed over.
func init() {
	rollup.TestQueriers = func(tb testing.TB, srv *influxtest.Server, bucket string) (flux, influxQL rollup.Querier) {
		mk := func(lang influx.Language) rollup.Querier {
			c, err := influx.New(influx.Config{URL: srv.URL(), Token: srv.Token(), Bucket: bucket, Query: lang})
			if err != nil {
				tb.Fatal(err)
			}
			return c
		}
		return mk(influx.Flux), mk(influx.InfluxQL)
	}
}
