package ingest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkGateways measures what one connected gateway costs this process:
// p1sim runs in a separate process with a meter per connection, one
// telegram per second each; N Readers (P1_BENCH_GATEWAYS, default 1000)
// connect to it and a Batcher encodes a cycle every second into a
// discarding writer. Each b.N iteration is 10 ms of steady state, so that
// CI's -benchtime 100x stays short; measure with at least 500x (5 s):
//
//	go test ./ingest -run '^$' -bench Gateways -benchtime 500x
//
// Reported: heap+stack bytes per connected gateway, and CPU (user+system)
// per telegram read, parsed, stored and encoded.
func BenchmarkGateways(b *testing.B) {
	n := 1000
	if v := os.Getenv("P1_BENCH_GATEWAYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	bin := filepath.Join(b.TempDir(), "p1sim")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/p1sim").CombinedOutput(); err != nil {
		b.Fatalf("build p1sim: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sim := exec.Command(bin, "-listen", addr, "-per-conn", "-interval", "1s", "-log-level", "error")
	sim.Stderr = os.Stderr
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sim.Process.Signal(syscall.SIGTERM)
		sim.Wait()
	}()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			b.Fatalf("p1sim does not listen: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	limit := make(chan struct{}, 256)
	gws := make([]*Gateway, n)
	quiet := ReaderConfig{Location: brussels, DialLimit: limit, Logger: discardLogger()}
	for i := range gws {
		gws[i] = tcpGateway(fmt.Sprint("gw", i), addr)
	}
	rs := NewReaders(gws, quiet)
	wg.Add(1)
	go func() { defer wg.Done(); rs.Run(ctx) }()
	bt := NewBatcher(BatcherConfig{Cycle: time.Second, Location: brussels, Logger: discardLogger()}, gws, discard{}, nil)
	wg.Add(1)
	go func() { defer wg.Done(); bt.Run(ctx) }()

	t0 := time.Now()
	deadline := t0.Add(60 * time.Second)
	for {
		all := true
		for _, g := range gws {
			if g.Stats().Telegrams == 0 {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not all %d gateways delivered a telegram within 60s", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	connectTime := time.Since(t0)
	time.Sleep(2 * time.Second) // every slot, pool and stack at its steady size
	runtime.GC()
	runtime.ReadMemStats(&after)
	perGW := float64(int64(after.HeapInuse+after.StackInuse)-int64(before.HeapInuse+before.StackInuse)) / float64(n)
	stackGW := float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)

	telegrams := func() (sum int64) {
		for _, g := range gws {
			sum += g.Stats().Telegrams
		}
		return sum
	}
	ru0, tel0 := rusage(), telegrams()
	b.ResetTimer()
	for b.Loop() {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cpu, tel := rusage()-ru0, telegrams()-tel0
	b.ReportMetric(perGW, "B/gateway")
	b.ReportMetric(stackGW, "stack-B/gateway")
	b.ReportMetric(float64(cpu.Microseconds())/float64(tel), "µs-cpu/telegram")
	b.ReportMetric(float64(tel)/b.Elapsed().Seconds(), "telegrams/s")
	b.ReportMetric(connectTime.Seconds(), "s-to-connect-all")
}

func rusage() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandle measures the per-telegram work of the pipeline without
// the network: a Reader's hand-over of a framed telegram through the frame
// channel (pooled copy, send) and a parser's work on it (parse, CRC
// included, and the swap into the gateway's slot).
func BenchmarkHandle(b *testing.B) {
	tg := belgian(7, time.Date(2026, 3, 14, 18, 45, 12, 0, brussels))
	g := tcpGateway("home", "x:1")
	cfg := ReaderConfig{Location: brussels, Logger: discardLogger()}
	cfg.setDefaults()
	ch := make(chan frame, 1)
	r := newReader(g, &cfg, ch)
	p := parsePool{cfg: &cfg}
	for range 2 {
		r.send(tg)
		p.parse(<-ch)
	}
	b.SetBytes(int64(len(tg)))
	b.ReportAllocs()
	n := g.Stats().Telegrams
	for b.Loop() {
		r.send(tg)
		p.parse(<-ch)
	}
	if g.Stats().Telegrams-n != int64(b.N) {
		b.Fatalf("%d telegrams accepted of %d", g.Stats().Telegrams-n, b.N)
	}
}
