package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	_ "time/tzdata" // P1_TIMEZONE must work in a scratch image too
)

const usage = `usage: p1logger              run the daemon (configured by P1_* environment variables)
       p1logger decode ...   decode raw telegrams to JSON (p1logger decode -h)
       p1logger capture ADDRESS ...  save a gateway's raw bytes to a file (p1logger capture -h)
       p1logger report ...   print a month's electricity bill from InfluxDB (p1logger report -h)
       p1logger healthcheck  exit 0 if the running daemon's /healthz answers 200
       p1logger version      print the version and VCS revision (also --version)
`

func main() { os.Exit(run(os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)) }

// run is the whole program: it returns the exit status. Bad configuration
// exits 2 with one line on stderr; a failure while running exits 1; a
// SIGINT or SIGTERM stops the daemon cleanly with 0.
func run(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "decode":
			return runDecode(args[1:], stdin, stdout, stderr)
		case "capture":
			return runCapture(args[1:], environ, stdout, stderr)
		case "report":
			return runReport(args[1:], environ, stdout, stderr)
		case "healthcheck":
			return runHealthcheck(args[1:], environ, stdout, stderr)
		case "version", "--version", "-version":
			return runVersion(args[1:], stdout, stderr)
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, usage)
			return 0
		default:
			fmt.Fprintf(stderr, "p1logger: unknown command %q\n%s", args[0], usage)
			return 2
		}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintf(stderr, "p1logger: %v\n", err)
		return 2
	}
	if !hasEnv(environ, "GOGC") {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger(cfg, stderr)
	if err := daemon(ctx, cfg, log, nil); err != nil {
		log.Error("p1logger stopped", "reason", err)
		return 1
	}
	return 0
}

// gcPercent is the daemon's garbage collection target when GOGC is not set:
// collect when the heap has grown by half of what was live, not by all of it
// as Go's default does. The daemon's heap is mostly long-lived state per
// gateway and it allocates little, so at thousands of gateways the default
// would hold tens of megabytes of garbage to save a fraction of a percent of
// a core. GOGC and GOMEMLIMIT, when set, work as documented for Go.
const gcPercent = 50

// hasEnv reports whether environ sets the variable name.
func hasEnv(environ []string, name string) bool {
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && k == name {
			return true
		}
	}
	return false
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// errStopped is the cause of a normal shutdown.
var errStopped = errors.New("stopped")
