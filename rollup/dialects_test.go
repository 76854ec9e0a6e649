package rollup_test

import (
	"testing"

	"github.com/p1logger/p1logger/internal/influx"
	"github.com/p1logger/p1logger/rollup"
)

// The recovery scenarios of influx_test.go run against the real
// internal/influx in both languages. They are in package rollup, which
// internal/influx imports, so the queriers are made here and handed over.
func init() {
	rollup.TestQuerier = func(tb testing.TB, url, bucket, lang string) rollup.Querier {
		l, err := influx.ParseLanguage(lang)
		if err != nil {
			tb.Fatal(err)
		}
		c, err := influx.New(influx.Config{URL: url, Bucket: bucket, Query: l})
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
}
