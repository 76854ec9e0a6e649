package influxtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// base is a nanosecond-precise instant on the Brussels spring DST day.
var base = time.Date(2026, 3, 29, 0, 59, 58, 123456789, time.UTC)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// takenKWh returns the taken_kwh records of bucket in time order.
func takenKWh(t *testing.T, s *Server, bucket string) []Row {
	t.Helper()
	rows, err := s.Flux(ctxT(t, 10*time.Second), fmt.Sprintf(`
from(bucket: %q)
  |> range(start: 2026-03-29T00:00:00Z, stop: 2026-03-30T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "p1" and r._field == "taken_kwh")
  |> sort(columns: ["_time"])`, bucket))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func checkTaken(t *testing.T, rows []Row, want []float64) {
	t.Helper()
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d: %v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		wantTime := base.Add(time.Duration(i) * time.Second)
		if got, ok := r["_time"].(time.Time); !ok || !got.Equal(wantTime) {
			t.Errorf("row %d: _time = %#v, want %v", i, r["_time"], wantTime)
		}
		if got := r["_value"]; got != want[i] {
			t.Errorf("row %d: _value = %#v, want %v", i, got, want[i])
		}
		if got := r["gateway"]; got != "gw1" {
			t.Errorf("row %d: gateway = %#v, want gw1", i, got)
		}
	}
}

// writeThree writes three p1 points with nanosecond times through WriteLines.
func writeThree(t *testing.T, s *Server, bucket string, first float64) {
	t.Helper()
	var lines strings.Builder
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&lines, "p1,gateway=gw1 taken_kwh=%v %d\n", first+float64(i)/4, base.Add(time.Duration(i)*time.Second).UnixNano())
	}
	if err := s.WriteLines(ctxT(t, 10*time.Second), bucket, []byte(lines.String())); err != nil {
		t.Fatal(err)
	}
}

func TestOfficialClientWriteFluxRead(t *testing.T) {
	t.Parallel()
	s := Shared(t)
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || s.Token() != "" {
		t.Fatalf("URL, Token = %q, %q; want a loopback URL and no token", s.URL(), s.Token())
	}
	bucket := s.NewBucket(t)
	if !strings.HasSuffix(bucket, "/autogen") || !strings.HasPrefix(bucket, "t_testofficialclientwritefluxread_") {
		t.Fatalf("bucket = %q", bucket)
	}

	client := influxdb2.NewClient(s.URL(), s.Token())
	defer client.Close()
	w := client.WriteAPIBlocking("", bucket)
	for i, v := range []float64{1234.5, 1234.75, 1235} {
		p := influxdb2.NewPoint("p1",
			map[string]string{"gateway": "gw1"},
			map[string]any{"taken_kwh": v, "tariff": int64(i%2 + 1)},
			base.Add(time.Duration(i)*time.Second))
		if err := w.WritePoint(ctxT(t, 10*time.Second), p); err != nil {
			t.Fatalf("write point %d: %v", i, err)
		}
	}

	checkTaken(t, takenKWh(t, s, bucket), []float64{1234.5, 1234.75, 1235})

	rows, err := s.Flux(ctxT(t, 10*time.Second), fmt.Sprintf(`
from(bucket: %q)
  |> range(start: 2026-03-29T00:00:00Z, stop: 2026-03-30T00:00:00Z)
  |> filter(fn: (r) => r._field == "tariff")
  |> sum()`, bucket))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["_value"] != int64(4) {
		t.Fatalf("sum of tariff = %v, want one row with int64 4", rows)
	}

	db := strings.TrimSuffix(bucket, "/autogen")
	resp, err := s.InfluxQL(ctxT(t, 10*time.Second), `SELECT taken_kwh, tariff FROM p1 WHERE gateway = 'gw1' ORDER BY time`, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || len(resp.Results[0].Series) != 1 {
		t.Fatalf("InfluxQL answer = %+v, want one series", resp)
	}
	ser := resp.Results[0].Series[0]
	if ser.Name != "p1" || strings.Join(ser.Columns, ",") != "time,taken_kwh,tariff" || len(ser.Values) != 3 {
		t.Fatalf("series = %+v", ser)
	}
	if got, want := ser.Values[2], []any{"2026-03-29T01:00:00.123456789Z", 1235.0, 1.0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("last InfluxQL row = %v, want %v", got, want)
	}
}

func TestWriteLinesAndErrors(t *testing.T) {
	t.Parallel()
	s := Shared(t)
	bucket := s.NewBucket(t)
	writeThree(t, s, bucket, 10)
	checkTaken(t, takenKWh(t, s, bucket), []float64{10, 10.25, 10.5})

	err := s.WriteLines(ctxT(t, 10*time.Second), bucket, []byte("p1,gateway=gw1 taken_kwh=1 17x\n"))
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), "bad timestamp") {
		t.Errorf("bad line: err = %v, want 400 with the server's 'bad timestamp'", err)
	}
	err = s.WriteLines(ctxT(t, 10*time.Second), "no_such_db/autogen", []byte("p1 v=1\n"))
	if err == nil || !strings.Contains(err.Error(), "database not found") {
		t.Errorf("missing database: err = %v, want the server's 'database not found'", err)
	}

	_, err = s.Flux(ctxT(t, 10*time.Second), `from(bucket: "x/autogen") |> rang(start: -1h)`)
	if err == nil || !strings.Contains(err.Error(), `undefined identifier "rang"`) {
		t.Errorf("Flux with a typo: err = %v, want the server's undefined identifier", err)
	}
	_, err = s.Flux(ctxT(t, 10*time.Second), `from(bucket: "x/autogen" |> range(start: -1h)`)
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Errorf("Flux syntax error: err = %v, want an HTTP 500 error", err)
	}
	// The first table is sent with status 200 before the second fails to
	// parse: the error arrives inside the annotated CSV.
	rows, err := s.Flux(ctxT(t, 10*time.Second), `import "csv"
csv.from(csv: "#datatype,string,long,long\n#group,false,false,false\n#default,,,\n,result,table,v\n,,0,1\n,,1,x\n")`)
	if err == nil || !strings.Contains(err.Error(), `parsing "x": invalid syntax`) || rows != nil {
		t.Errorf("error inside the stream: rows, err = %v, %v; want nil and the parse error", rows, err)
	}

	_, err = s.InfluxQL(ctxT(t, 10*time.Second), "SELEC 1", "")
	if err == nil || !strings.Contains(err.Error(), "error parsing query") {
		t.Errorf("InfluxQL syntax error: err = %v", err)
	}
	resp, err := s.InfluxQL(ctxT(t, 10*time.Second), "SELECT * FROM nope", "no_such_db")
	if err == nil || !strings.Contains(err.Error(), "database not found") || resp == nil {
		t.Errorf("InfluxQL statement error: resp, err = %+v, %v; want the answer and an error", resp, err)
	}
}

// TestProcessControl stops, restarts, kills, pauses and resumes a private
// server and checks that data survives and a paused server hangs.
func TestProcessControl(t *testing.T) {
	t.Parallel()
	s := New(t)
	url := s.URL()
	if err := s.CreateDatabase(ctxT(t, 10*time.Second), "outage"); err != nil {
		t.Fatal(err)
	}
	const bucket = "outage/autogen"
	writeThree(t, s, bucket, 100)

	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := s.WriteLines(ctxT(t, 2*time.Second), bucket, []byte("p1 v=1\n")); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("write to a stopped server: err = %v, want connection refused", err)
	}
	if err := s.Pause(); err == nil {
		t.Error("Pause of a stopped server: no error")
	}

	start := time.Now()
	if err := s.Restart(ctxT(t, 60*time.Second)); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	t.Logf("restart took %v", time.Since(start).Round(time.Millisecond))
	if s.URL() != url {
		t.Fatalf("URL after Restart = %s, want %s", s.URL(), url)
	}
	checkTaken(t, takenKWh(t, s, bucket), []float64{100, 100.25, 100.5})

	// A crash right after an acknowledged write loses nothing (WAL).
	if err := s.WriteLines(ctxT(t, 10*time.Second), bucket, []byte(fmt.Sprintf("p1,gateway=gw1 taken_kwh=101 %d\n", base.Add(3*time.Second).UnixNano()))); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := s.Restart(ctxT(t, 60*time.Second)); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	checkTaken(t, takenKWh(t, s, bucket), []float64{100, 100.25, 100.5, 101})

	if err := s.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	start = time.Now()
	_, err := s.Flux(ctxT(t, 500*time.Millisecond), `import "csv" csv.from(csv: "#datatype,string,long,long\n#group,false,false,false\n#default,,,\n,result,table,v\n,,0,1\n")`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flux on a paused server: err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Flux on a paused server returned after %v, want about 500ms", d)
	}
	if err := s.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	checkTaken(t, takenKWh(t, s, bucket), []float64{100, 100.25, 100.5, 101})

	// Close (from New's cleanup) must also stop a paused server.
	if err := s.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "influxd")
	script := "#!/bin/sh\necho 'run: open server: listen tcp: bind: nothing here'\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Start(Options{Binary: bin, StartTimeout: 10 * time.Second})
	if err == nil {
		s.Close()
		t.Fatal("Start with a binary that exits: no error")
	}
	for _, want := range []string{"exited while starting", "exit status 3", "nothing here"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestExternal(t *testing.T) {
	t.Parallel()
	s := Shared(t)
	if s.external {
		t.Skip("already running against an external server")
	}
	ext, err := Connect(ctxT(t, 10*time.Second), s.URL()+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	if ext.URL() != s.URL() || ext.Dir() != "" {
		t.Errorf("external URL, Dir = %q, %q", ext.URL(), ext.Dir())
	}
	for name, f := range map[string]func() error{
		"Stop": ext.Stop, "Kill": ext.Kill, "Pause": ext.Pause, "Resume": ext.Resume,
		"Restart": func() error { return ext.Restart(context.Background()) },
	} {
		if err := f(); !errors.Is(err, ErrExternal) {
			t.Errorf("%s on an external server: err = %v, want ErrExternal", name, err)
		}
	}

	// Shared reads P1_TEST_INFLUX_URL once per process, so run this test
	// binary again with it set, pointing at our shared server.
	ctx := ctxT(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSharedFromEnv$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envURL+"="+s.URL(), "P1_TEST_INFLUXTEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child test: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestSharedFromEnv", "--- SKIP: TestSharedFromEnv/process", "P1_TEST_INFLUX_URL=" + s.URL()} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}

// TestSharedFromEnv runs only as TestExternal's child process.
func TestSharedFromEnv(t *testing.T) {
	if os.Getenv("P1_TEST_INFLUXTEST_CHILD") == "" {
		t.Skip("run by TestExternal")
	}
	s := Shared(t)
	if !s.external || s.Dir() != "" {
		t.Fatalf("Shared with %s set started its own server", envURL)
	}
	if err := s.Pause(); !errors.Is(err, ErrExternal) {
		t.Errorf("Pause: err = %v, want ErrExternal", err)
	}
	bucket := s.NewBucket(t)
	writeThree(t, s, bucket, 7)
	checkTaken(t, takenKWh(t, s, bucket), []float64{7, 7.25, 7.5})
	t.Run("process", func(t *testing.T) {
		RequireProcess(t)
		t.Error("RequireProcess did not skip")
	})
}

func TestFindInfluxdFromEnv(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "influxd-1.8")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("P1_TEST_INFLUXD", exe)
	if got, err := findInfluxd(ctxT(t, 10*time.Second), nil); err != nil || got != exe {
		t.Errorf("findInfluxd = %q, %v; want %q", got, err, exe)
	}
	t.Setenv("P1_TEST_INFLUXD", dir)
	if _, err := findInfluxd(ctxT(t, 10*time.Second), nil); err == nil || !strings.Contains(err.Error(), "P1_TEST_INFLUXD="+dir) {
		t.Errorf("findInfluxd with a directory: err = %v, want one naming P1_TEST_INFLUXD", err)
	}
}
