package sim_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

// A test starts a gateway whose every second telegram has a bad CRC, reads
// two telegrams like p1logger does, and compares them with the server's
// records of what it sent.
func Example() {
	srv, err := sim.NewServer(sim.Config{
		Interval: 20 * time.Millisecond,
		Meter:    sim.MeterConfig{Profile: sim.ProfileBE3, Seed: 1, Loc: brussels},
		Now:      sim.StepClock(time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), time.Second),
		Faults:   sim.Faults{BadCRCEvery: 2},
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()

	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		panic(err)
	}
	var sp parser.Splitter
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 4096), parser.MaxTelegramSize)
	sc.Split(sp.Split)
	for range 2 {
		sc.Scan()
		_, err := parser.Parse(sc.Bytes(), brussels)
		fmt.Println("crc error:", errors.Is(err, parser.ErrCRC))
	}
	conn.Close()
	cancel()
	fmt.Println(<-done)

	for _, s := range srv.Recent()[:2] {
		kwh, _ := s.Get(parser.TakenT1)
		fmt.Println(s.Seq, s.Time.UTC(), s.BadCRC, s.Corrupt(), kwh.Int > 0)
	}
	// Output:
	// crc error: false
	// crc error: true
	// <nil>
	// 1 2026-10-25 01:00:00 +0000 UTC false false true
	// 2 2026-10-25 01:00:01 +0000 UTC true true true
}
