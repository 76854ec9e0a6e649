//go:build pprof

// Built with -tags pprof, p1logger serves net/http/pprof on the address in
// P1_PPROF_ADDR (e.g. 127.0.0.1:6060), for profiling load runs. Release
// builds do not contain it.

package main

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("P1_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() {
		err := http.ListenAndServe(addr, nil)
		slog.Error("pprof listener stopped", "addr", addr, "err", err)
	}()
}
