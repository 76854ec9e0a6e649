package influxtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
)

// ErrExternal is returned by the process controls (Stop, Kill, Restart, Pause,
// Resume) of a Server that runs elsewhere (P1_TEST_INFLUX_URL, Connect): this
// package did not start it and cannot control it.
var ErrExternal = errors.New("influxtest: server is external (P1_TEST_INFLUX_URL); it has no process this package controls")

// Options configures Start. The zero value is what most tests want.
type Options struct {
	// Binary is the influxd to run. Empty means: $P1_TEST_INFLUXD, influxd on
	// PATH, $(go env GOPATH)/bin/influxd, or else build it with go install.
	Binary string
	// Dir holds the config, data, WAL and log. Empty means a fresh temporary
	// directory, removed by Close.
	Dir string
	// StartTimeout bounds the wait for /ping to answer after the process
	// starts (it does not include building influxd). Zero means 60 s.
	StartTimeout time.Duration
	// Logger receives progress messages (the go install fallback). Nil means
	// slog.Default().
	Logger *slog.Logger
}

const (
	defaultStartTimeout = 60 * time.Second
	// stopTimeout bounds a graceful shutdown; influxd 1.8 needs about a second.
	stopTimeout = 15 * time.Second
	// killTimeout bounds the wait for a SIGKILLed process to be reaped.
	killTimeout = 10 * time.Second
)

// Server is an InfluxDB 1.8 for tests: a process this package started, or an
// external server (Connect). Its query and write methods are safe for
// concurrent use; the process controls serialise with each other.
type Server struct {
	url      string
	external bool
	client   influxdb2.Client
	http     *http.Client

	// Process settings; fixed at Start so that Restart reuses ports and data.
	binary       string
	dir          string
	ownDir       bool
	configPath   string
	logPath      string
	startTimeout time.Duration

	mu     sync.Mutex
	proc   *process // nil when not running
	paused bool
}

// process is one run of influxd.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's result, valid after done
}

// Start starts an influxd 1.8 on two free 127.0.0.1 ports (HTTP and RPC) with
// Flux enabled and authentication off, and returns once /ping answers. The
// process is in its own process group and, on Linux, dies with the test
// binary. On error nothing is left running: the error says whether the binary
// could not be found or built, or the server did not come up, and then
// includes the last lines of its log. Call Close when done.
func Start(opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		binary:       opts.Binary,
		dir:          opts.Dir,
		startTimeout: opts.StartTimeout,
	}
	if s.startTimeout <= 0 {
		s.startTimeout = defaultStartTimeout
	}
	if s.binary == "" {
		bin, err := findInfluxd(context.Background(), logger)
		if err != nil {
			return nil, fmt.Errorf("influxtest: find influxd: %w", err)
		}
		s.binary = bin
	}
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "influxtest-")
		if err != nil {
			return nil, fmt.Errorf("influxtest: %w", err)
		}
		s.dir, s.ownDir = dir, true
	}
	s.configPath = filepath.Join(s.dir, "influxdb.conf")
	s.logPath = filepath.Join(s.dir, "influxd.log")
	s.http = &http.Client{}

	// A port picked free can be taken by another test binary before influxd
	// binds it; a fresh pair of ports on that (rare) failure is cheaper than a
	// flaky test.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var ports []int
		ports, err = freePorts(2)
		if err != nil {
			break
		}
		s.url = "http://127.0.0.1:" + strconv.Itoa(ports[0])
		if err = s.writeConfig(ports[0], ports[1]); err != nil {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.startTimeout)
		err = s.startProcess(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		if s.ownDir {
			_ = os.RemoveAll(s.dir)
		}
		return nil, err
	}
	s.initClients()
	return s, nil
}

// Connect returns a Server for an InfluxDB 1.8 already running at url (HTTP,
// no authentication), after checking that its /ping answers within ctx. The
// process controls of the result return ErrExternal; Close only releases
// connections.
func Connect(ctx context.Context, url string) (*Server, error) {
	s := &Server{url: strings.TrimRight(url, "/"), external: true, http: &http.Client{}}
	s.initClients()
	for {
		err := s.ping(ctx)
		if err == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			s.client.Close()
			return nil, fmt.Errorf("influxtest: connect to %s: %w", s.url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// initClients creates the Flux client once s.url and s.http are final.
func (s *Server) initClients() {
	s.client = influxdb2.NewClientWithOptions(s.url, "", influxdb2.DefaultOptions().SetHTTPClient(s.http))
}

// URL returns the server's base URL, e.g. http://127.0.0.1:41234, without a
// trailing slash. It stays the same across Restart.
func (s *Server) URL() string { return s.url }

// Token returns the API token to configure clients with: always empty,
// because the server runs InfluxDB 1.8 without authentication.
func (s *Server) Token() string { return "" }

// Dir returns the directory holding the server's config, data, WAL and log
// (influxd.log), or "" for an external server.
func (s *Server) Dir() string { return s.dir }

// writeConfig writes a minimal configuration: loopback only, everything kept
// in s.dir, no background writers (monitor, continuous queries) and little
// logging. Inputs such as UDP, Graphite and collectd are off by default in 1.8.
func (s *Server) writeConfig(httpPort, rpcPort int) error {
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"

[meta]
  dir = %q
  logging-enabled = false

[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:%d"
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
  flux-log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
`, rpcPort, filepath.Join(s.dir, "meta"), filepath.Join(s.dir, "data"), filepath.Join(s.dir, "wal"), httpPort)
	if err := os.WriteFile(s.configPath, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("influxtest: write config: %w", err)
	}
	return nil
}

// startProcess starts influxd and waits, bounded by ctx, until /ping answers.
// On failure the process is killed and the error carries the log's tail.
func (s *Server) startProcess(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("influxtest: open log: %w", err)
	}
	cmd := exec.Command(s.binary, "-config", s.configPath)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = cleanEnv(os.Environ())
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	_ = logf.Close() // the child holds its own descriptor
	if err != nil {
		return fmt.Errorf("influxtest: start %s: %w", s.binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	start := time.Now()
	for {
		pingCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.ping(pingCtx)
		cancel()
		if err == nil {
			s.proc, s.paused = p, false
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("influxtest: influxd exited while starting (%v); last lines of %s:\n%s",
				p.err, s.logPath, s.logTail())
		case <-ctx.Done():
			_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
			waitDone(p, killTimeout)
			return fmt.Errorf("influxtest: influxd at %s did not answer /ping within %s (%v); last lines of %s:\n%s",
				s.url, time.Since(start).Round(time.Millisecond), err, s.logPath, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping returns nil if /ping answers 204 No Content.
func (s *Server) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("/ping: %s", resp.Status)
	}
	return nil
}

// Stop shuts the server down gracefully (SIGTERM, continuing it first if
// paused) and waits for it to exit. A server that has not exited after 15 s is
// killed, and Stop returns an error saying so; an exit status other than 0
// is also an error, with the log's tail. Stopping a stopped server does
// nothing. Data and ports are kept for Restart. An external server returns
// ErrExternal.
func (s *Server) Stop() error {
	if s.external {
		return ErrExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	pid := p.cmd.Process.Pid
	_ = signalGroup(pid, syscall.SIGTERM)
	if s.paused {
		_ = signalGroup(pid, syscall.SIGCONT)
		s.paused = false
	}
	if waitDone(p, stopTimeout) {
		if p.err != nil {
			return fmt.Errorf("influxtest: influxd exited with %v on SIGTERM; last lines of %s:\n%s", p.err, s.logPath, s.logTail())
		}
		return nil
	}
	_ = signalGroup(pid, syscall.SIGKILL)
	if !waitDone(p, killTimeout) {
		return fmt.Errorf("influxtest: influxd (pid %d) survived SIGTERM and SIGKILL", pid)
	}
	return fmt.Errorf("influxtest: influxd did not stop within %s of SIGTERM and was killed", stopTimeout)
}

// Kill ends the server at once with SIGKILL, as a crash or power cut would,
// and waits for it to be reaped. Data written before is recovered from the WAL
// by Restart. Killing a stopped server does nothing. It returns an error if
// the process is still there after 10 s, or ErrExternal.
func (s *Server) Kill() error {
	if s.external {
		return ErrExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc, s.paused = nil, false
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	if !waitDone(p, killTimeout) {
		return fmt.Errorf("influxtest: influxd (pid %d) still running %s after SIGKILL", p.cmd.Process.Pid, killTimeout)
	}
	return nil
}

// Restart starts the server again on the same ports with the same data
// directory, stopping it first if it runs (as Stop does), and returns once
// /ping answers. ctx and the start timeout bound the wait. On error the server
// is left stopped and the error includes the log's tail; an external server
// returns ErrExternal.
func (s *Server) Restart(ctx context.Context) error {
	if s.external {
		return ErrExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.startTimeout)
	defer cancel()
	return s.startProcess(ctx)
}

// Pause freezes the server with SIGSTOP: the kernel still accepts TCP
// connections on its ports, but no request is ever answered, as with a hung
// server. It returns once every thread of influxd has stopped (on Linux),
// since SIGSTOP itself completes asynchronously. Resume undoes it; Stop and
// Close also work on a paused server. It returns an error if the server is
// not running or does not stop within 10 s, or ErrExternal.
func (s *Server) Pause() error {
	if s.external {
		return ErrExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errors.New("influxtest: pause: influxd is not running")
	}
	if err := signalGroup(s.proc.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("influxtest: pause: %w", err)
	}
	s.paused = true
	if err := waitStopped(s.proc.cmd.Process.Pid, 10*time.Second); err != nil {
		return fmt.Errorf("influxtest: pause: %w", err)
	}
	return nil
}

// Resume continues a server frozen by Pause with SIGCONT; requests that were
// waiting are then answered. Resuming a running server that is not paused
// does nothing. It returns an error if the server is not running, or
// ErrExternal.
func (s *Server) Resume() error {
	if s.external {
		return ErrExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errors.New("influxtest: resume: influxd is not running")
	}
	if err := signalGroup(s.proc.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("influxtest: resume: %w", err)
	}
	s.paused = false
	return nil
}

// Close stops the server as Stop does, releases the client's connections and
// removes the directory Start created (a caller's Options.Dir is kept). The
// Server cannot be used afterwards. It returns Stop's error or the removal's;
// for an external server it only releases connections and returns nil.
func (s *Server) Close() error {
	s.client.Close()
	s.http.CloseIdleConnections()
	if s.external {
		return nil
	}
	err := s.Stop()
	if s.ownDir {
		if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("influxtest: remove %s: %w", s.dir, rmErr)
		}
	}
	return err
}

// running reports whether the process runs and is not paused, so a request
// can be expected to be answered.
func (s *Server) running() bool {
	if s.external {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.paused
}

// logTail returns the last 20 lines of the server's log.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if len(b) == 0 {
		return "(log is empty)"
	}
	return tail(b, 20)
}

// waitDone waits up to d for the process to be reaped and reports whether it was.
func waitDone(p *process, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// signalGroup signals influxd's process group (it was started with Setpgid).
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// cleanEnv drops INFLUXDB_* variables, which influxd 1.8 reads as config
// overrides (INFLUXDB_HTTP_BIND_ADDRESS...) and which would defeat the config file.
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "INFLUXDB_") {
			out = append(out, kv)
		}
	}
	return out
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
//
// They are picked below the kernel's ephemeral range when it is known, so
// that while a test has the server stopped, no outgoing connection can be
// given its port as a source port: that would either take the port from
// Restart or, dialling the port itself, connect to itself (TCP simultaneous
// open) and look like a live server.
func freePorts(n int) ([]int, error) {
	lo := ephemeralLow()
	var ports []int
	seen := map[int]bool{}
	for tries := 0; len(ports) < n && tries < 200; tries++ {
		p := 0
		if lo > 12000 {
			p = 10000 + rand.IntN(lo-10000)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		p = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		return nil, errors.New("influxtest: no free port on 127.0.0.1")
	}
	return ports, nil
}

// ephemeralLow returns the lowest port of the kernel's ephemeral range, or 0
// if it is unknown (then freePorts lets the kernel choose).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}
