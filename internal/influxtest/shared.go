package influxtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// envURL names an InfluxDB 1.8 that Shared uses instead of starting one.
const envURL = "P1_TEST_INFLUX_URL"

var shared struct {
	once sync.Once
	mu   sync.Mutex // guards srv for Main
	srv  *Server
	err  error
}

// Shared returns the server shared by all tests of this test binary, starting
// it on first use (or connecting to $P1_TEST_INFLUX_URL when set). Tests that
// use it should each take their own bucket (NewBucket) and must not stop,
// pause or restart it: that is what New is for. If the server cannot be
// started, every test that calls Shared fails with the reason; none is
// skipped. Stop it with Main.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.once.Do(func() {
		var srv *Server
		var err error
		if u := os.Getenv(envURL); u != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			srv, err = Connect(ctx, u)
			cancel()
			if err != nil {
				err = fmt.Errorf("%s=%s: %w", envURL, u, err)
			}
		} else {
			srv, err = Start(Options{})
		}
		shared.mu.Lock()
		shared.srv, shared.err = srv, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		tb.Fatalf("influxtest: shared InfluxDB: %v", err)
	}
	return srv
}

// Main runs the tests and then closes the shared server, if one was started,
// returning the exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(influxtest.Main(m)) }
//
// A failure to close is reported on stderr and turns a passing run into a
// failing one, since it means influxd misbehaved.
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "influxtest: close shared InfluxDB: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// New starts a server for this test alone, for tests that stop, kill, pause or
// restart it; it is closed when the test ends. Each costs a few seconds of
// start-up (Flux initialisation). The test is skipped when P1_TEST_INFLUX_URL
// is set (see RequireProcess) and fails with tb.Fatal if the server cannot be
// started.
func New(tb testing.TB) *Server {
	tb.Helper()
	RequireProcess(tb)
	srv, err := Start(Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("influxtest: close: %v", err)
		}
	})
	return srv
}

// RequireProcess skips the test, saying why, when the tests run against an
// external InfluxDB (P1_TEST_INFLUX_URL): a test that needs to stop, kill,
// pause or restart the server cannot do so there.
func RequireProcess(tb testing.TB) {
	tb.Helper()
	if u := os.Getenv(envURL); u != "" {
		tb.Skipf("influxtest: needs an influxd process it controls (stop/kill/pause/restart), but %s=%s points at an external server; unset it to run this test", envURL, u)
	}
}
