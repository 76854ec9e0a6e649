package ingest

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/internal/serialtest"
)

// TestReaderSerialUnplug: a serial P1 cable (a real pseudo-terminal behind
// a /dev/serial/by-id-like symlink) delivers telegrams; unplugged, the
// gateway shows disconnected with the reason, is retried with backoff while
// the device is missing, and read again once it is plugged back in, with
// the setting found the first time.
func TestReaderSerialUnplug(t *testing.T) {
	dev := serialtest.New(t)
	src, err := source.Parse("serial://"+dev.Path, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGateway("usb", src)
	if g.Kind() != "serial" || g.Addr() != "serial://"+dev.Path {
		t.Fatalf("kind %q addr %q", g.Kind(), g.Addr())
	}
	var n atomic.Int64
	stopWriting := make(chan struct{})
	writerDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(writerDone)
		for i := 0; i < 2000; i++ {
			select {
			case <-stopWriting:
				return
			case <-time.After(20 * time.Millisecond):
			}
			k := int(n.Add(1))
			dev.Write(belgian(k, start.Add(time.Duration(k)*time.Second))) // fails while unplugged
		}
	}()
	defer func() { close(stopWriting); <-writerDone }()

	runInBackground(t, fastReader(t, g, 5*time.Second).Run)
	waitFor(t, 10*time.Second, "5 telegrams", func() bool { return g.Stats().Telegrams >= 5 })

	dev.Unplug()
	waitFor(t, 5*time.Second, "disconnected", func() bool { return !g.Stats().Connected })
	before := g.Stats()
	if !strings.Contains(before.LastError, dev.Path) {
		t.Errorf("last error %q, want it to name the device", before.LastError)
	}
	// Missing: redialled with backoff (20 ms doubling to 100 ms), each time
	// told the device does not exist.
	waitFor(t, 5*time.Second, "redials while missing", func() bool { return g.Stats().Reconnects >= before.Reconnects+3 })
	if s := g.Stats(); s.Connected || !strings.Contains(s.LastError, "does not exist (unplugged?") {
		t.Errorf("while unplugged: connected %v, last error %q", s.Connected, s.LastError)
	}

	if err := dev.Plug(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "telegrams after the replug", func() bool {
		s := g.Stats()
		return s.Connected && s.Telegrams >= before.Telegrams+5
	})
	if s := g.Stats(); s.CRCErrors != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v, want no telegram dropped", s)
	}
	// The newest telegram is one the meter sent after the replug.
	k := int(n.Load())
	waitFor(t, 2*time.Second, "a recent telegram in the slot", func() bool {
		got := latestJSON(g)
		for i := k - 3; i <= k+3; i++ {
			if got == frameJSON(t, belgian(i, start.Add(time.Duration(i)*time.Second))) {
				return true
			}
		}
		return false
	})
}
