package ingest

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestStoreSeq: of frames of one gateway parsed out of order, the slot
// keeps the one its Reader sent last; every accepted frame is counted.
func TestStoreSeq(t *testing.T) {
	at := time.Date(2026, 3, 14, 18, 45, 0, 0, brussels)
	tests := []struct {
		name string
		seqs []uint64 // in the order the parsers finish
		want uint64   // the seq left in the slot
	}{
		{"in order", []uint64{1, 2, 3}, 3},
		{"last two swapped", []uint64{1, 3, 2}, 3},
		{"reversed", []uint64{3, 2, 1}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tcpGateway("g", "x:1")
			for _, s := range tt.seqs {
				g.storeSeq(belgian(int(s), at), brussels, at.Add(time.Duration(s)*time.Second), s)
			}
			if got := latestJSON(g); got != frameJSON(t, belgian(int(tt.want), at)) {
				t.Errorf("slot holds %s, want the telegram of seq %d", got, tt.want)
			}
			if got, want := g.Stats().Telegrams, int64(len(tt.seqs)); got != want {
				t.Errorf("telegrams %d, want %d", got, want)
			}
		})
	}
}

// TestReadersNewestManyParsers: gateways that send bursts, read by Readers
// with several parsers that take frames of one gateway at once, end with
// the last telegram each sent in its slot, and nothing lost or counted
// twice; Run returns only once the channel is drained.
func TestReadersNewestManyParsers(t *testing.T) {
	start := time.Now()
	const perConn = 15 // within the budget's burst of 20: all parsed
	var gws []*Gateway
	var srcs []*gateway
	for i := range 4 {
		src := startGateway(t, func(gw *gateway, c net.Conn, n int) {
			var b []byte
			for k := range perConn {
				f := belgian(i*1000+k, start.Add(time.Duration(k)*time.Second))
				gw.record(f)
				b = append(b, f...)
			}
			c.Write(b) // one burst: the frames reach the channel together
			gw.hold()
		})
		srcs = append(srcs, src)
		gws = append(gws, tcpGateway(string(rune('a'+i)), src.addr()))
	}
	rd := fastReaders(t, 10*time.Second, gws...)
	rd.cfg.Parsers, rd.cfg.FrameQueue = 4, 2
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx) }()
	waitFor(t, 5*time.Second, "every telegram", func() bool {
		for _, g := range gws {
			if g.Stats().Telegrams < perConn {
				return false
			}
		}
		return true
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for i, g := range gws {
		sent := srcs[i].sentFrames()
		s := g.Stats()
		if s.Telegrams != perConn || s.Dropped != 0 || s.SkippedTelegrams != 0 {
			t.Errorf("%s: %+v, want %d telegrams, none dropped or skipped", s.Name, s, perConn)
		}
		if got, want := latestJSON(g), frameJSON(t, sent[len(sent)-1]); got != want {
			t.Errorf("%s: latest\ngot  %s\nwant %s", s.Name, got, want)
		}
	}
}

// TestSendStamps: frames of one read get distinct, growing stamps, even
// from a clock that does not move: a stamp is a point's time, and two
// points of one gateway at one instant are one point in InfluxDB (a cycle
// that took the first and the next that took the second would lose one).
func TestSendStamps(t *testing.T) {
	at := time.Date(2026, 3, 14, 18, 45, 0, 0, brussels)
	cfg := ReaderConfig{Location: brussels, Logger: discardLogger(), Now: func() time.Time { return at }}
	cfg.setDefaults()
	ch := make(chan frame, 4)
	r := newReader(tcpGateway("g", "x:1"), &cfg, ch)
	two := append(belgian(1, at), belgian(2, at)...)
	if n := r.frames(two, false); n != 2 {
		t.Fatalf("%d frames sent, want 2", n)
	}
	r.frames(belgian(3, at), false)
	var stamps []time.Time
	for range 3 {
		f := <-ch
		stamps = append(stamps, f.at)
		putFrame(f.buf)
	}
	for i := 1; i < len(stamps); i++ {
		if !stamps[i].After(stamps[i-1]) {
			t.Errorf("stamps %v: frame %d not after the one before", stamps, i)
		}
	}
	if !stamps[0].Equal(at) {
		t.Errorf("first stamp %v, want the clock's %v", stamps[0], at)
	}
}
