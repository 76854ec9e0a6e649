package fluxcheck

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/influxtest"
)

func TestMain(m *testing.M) { os.Exit(influxtest.Main(m)) }

var brussels = mustLoad("Europe/Brussels")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// repoFile returns the path of a file given relative to the repository root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Join(filepath.Dir(here), "..", "..", filepath.FromSlash(rel))
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// seeded returns a fresh bucket on the shared InfluxDB holding seed(now).
func seeded(t *testing.T, now time.Time) (*influxtest.Server, string) {
	t.Helper()
	srv := influxtest.Shared(t)
	bucket := srv.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.WriteLines(ctx, bucket, seed(now, brussels)); err != nil {
		t.Fatal(err)
	}
	return srv, bucket
}

// run runs a Flux query and fails the test on an error or an empty result.
func run(t *testing.T, srv *influxtest.Server, query string) []influxtest.Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := srv.Flux(ctx, query)
	if err != nil {
		t.Fatalf("%v\nquery:\n%s", err, query)
	}
	if len(rows) == 0 {
		t.Fatalf("empty result\nquery:\n%s", query)
	}
	return rows
}

// byResult returns the rows of the named yield.
func byResult(rows []influxtest.Row, name string) []influxtest.Row {
	var out []influxtest.Row
	for _, r := range rows {
		if r["result"] == name {
			out = append(out, r)
		}
	}
	return out
}

// near reports whether got is want to within float rounding: the queries
// compute in float64 as Go does, but not necessarily in the same order.
func near(got any, want float64) bool {
	f, ok := got.(float64)
	if !ok {
		return false
	}
	d := f - want
	return d < 1e-9 && d > -1e-9
}
