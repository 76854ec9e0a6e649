package influxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// influxdModule is the exact server every test runs against: the 1.8 line is
// what the v2-compatible API and Flux 0.65 in DESIGN.md were checked on.
const influxdModule = "github.com/influxdata/influxdb/cmd/influxd@v1.8.10"

// installTimeout bounds the fallback build; on two cores it takes one to two minutes.
const installTimeout = 5 * time.Minute

// findInfluxd returns the path of the influxd binary to run: $P1_TEST_INFLUXD,
// influxd on PATH, or $(go env GOPATH)/bin/influxd, building the last with
// go install if none exists.
func findInfluxd(ctx context.Context, logger *slog.Logger) (string, error) {
	if p := os.Getenv("P1_TEST_INFLUXD"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("P1_TEST_INFLUXD=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("influxd"); err == nil {
		return p, nil
	}
	binDir, err := goBinDir(ctx)
	if err != nil {
		return "", err
	}
	p := filepath.Join(binDir, "influxd")
	if isExecutable(p) == nil {
		return p, nil
	}

	// go test ./... runs many test binaries at once; without the lock each
	// would compile InfluxDB in parallel on the same few cores.
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "p1logger-influxtest-install.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(p) == nil { // another test binary built it while we waited
		return p, nil
	}

	logger.Info("influxtest: influxd not found; building it (takes a minute or two)",
		"cmd", "go install "+influxdModule, "dest", p)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", influxdModule)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go install %s (set P1_TEST_INFLUXD to an influxd 1.8 binary instead): %w\n%s",
			influxdModule, err, tail(out, 20))
	}
	if err := isExecutable(p); err != nil {
		return "", fmt.Errorf("go install %s succeeded but %w", influxdModule, err)
	}
	logger.Info("influxtest: built influxd", "path", p, "took", time.Since(start).Round(time.Second))
	return p, nil
}

// goBinDir is where go install puts binaries: GOBIN, else the first GOPATH entry's bin.
func goBinDir(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("influxd is not on PATH and go env failed (set P1_TEST_INFLUXD): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
		return strings.TrimSpace(lines[0]), nil
	}
	if len(lines) < 2 || strings.TrimSpace(lines[1]) == "" {
		return "", errors.New("influxd is not on PATH and go env reports neither GOBIN nor GOPATH (set P1_TEST_INFLUXD)")
	}
	return filepath.Join(filepath.SplitList(strings.TrimSpace(lines[1]))[0], "bin"), nil
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling so that ctx bounds the wait.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open install lock: %w", err)
	}
	deadline := time.Now().Add(installTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("waited %s for another test binary to build influxd (lock %s)", installTimeout, path)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("wait for install lock: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of b, for error messages.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
