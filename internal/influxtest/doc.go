// Package influxtest gives tests a real InfluxDB 1.8 to write to and query.
//
// Everything in p1logger that writes points or runs Flux is tested against a real
// server over loopback, not a mock: the v2-compatible write API (/api/v2/write),
// Flux 0.65 (/api/v2/query) and InfluxQL (/query) of an influxd 1.8.10 process that
// this package starts in a temporary directory on free 127.0.0.1 ports.
//
// Most tests share one server per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(influxtest.Main(m)) }
//
//	func TestWrite(t *testing.T) {
//		srv := influxtest.Shared(t)
//		bucket := srv.NewBucket(t) // a fresh database, "name/autogen"
//		...
//	}
//
// Tests that stop, kill, pause or restart InfluxDB (outages, crashes, a hung
// server) take a private server with New, so they never disturb tests that run in
// parallel on the shared one.
//
// The influxd binary is found through the environment variable P1_TEST_INFLUXD,
// then PATH, then $(go env GOPATH)/bin; failing all three, it is built once with
// "go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10" (a minute or two).
// If P1_TEST_INFLUX_URL is set, Shared uses that running InfluxDB 1.8 instead of
// starting one, and tests that need to control the process are skipped
// (RequireProcess).
//
// Reading the environment here, rather than in cmd as the rest of p1logger does,
// is deliberate: these variables configure the test run, not the daemon.
//
// The package needs a Unix system (process groups and SIGSTOP); on Linux the
// server is also killed when the test binary dies.
package influxtest
