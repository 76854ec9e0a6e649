package source_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/sim"
)

func startWebSocket(t *testing.T, cfg sim.WebSocketConfig, log *sentLog) *sim.WebSocket {
	t.Helper()
	cfg.OnSend = log.add
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	s, err := sim.NewWebSocket(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s.Run)
	return s
}

// TestWebSocket reads the dongle's stream, whole binary messages and text
// messages that each carry a piece of a telegram: the telegrams come out
// byte for byte.
func TestWebSocket(t *testing.T) {
	for _, cfg := range []sim.WebSocketConfig{{}, {Text: true, Split: 100}} {
		var log sentLog
		s := startWebSocket(t, cfg, &log)
		src, c := open(t, s.URL())
		if got := src.String(); got != s.URL() {
			t.Errorf("String() = %q, want %q", got, s.URL())
		}
		if got := src.Kind(); got != "websocket" {
			t.Errorf("Kind() = %q", got)
		}
		got := frames(t, c, 3, 3*time.Second)
		time.Sleep(50 * time.Millisecond) // OnSend runs after the write
		sent := log.frames()
		// The first telegram may have gone out before the client was
		// registered, never after: what arrived is a run of what was sent.
		start := -1
		for i := range sent {
			if bytes.Equal(sent[i], got[0]) {
				start = i
				break
			}
		}
		if start < 0 || len(sent) < start+len(got) {
			t.Fatalf("split %d: got telegrams that were not sent in order", cfg.Split)
		}
		for i, f := range got {
			if !bytes.Equal(f, sent[start+i]) {
				t.Errorf("split %d: telegram %d:\n got %q\nwant %q", cfg.Split, i, f, sent[start+i])
			}
		}
	}
}

// TestWebSocketThirdClient: the dongle serves two clients; the third is
// closed with 1008, and its Read says why in words.
func TestWebSocketThirdClient(t *testing.T) {
	var log sentLog
	s := startWebSocket(t, sim.WebSocketConfig{}, &log)
	_, c1 := open(t, s.URL())
	_, c2 := open(t, s.URL())
	frames(t, c1, 1, 3*time.Second)
	frames(t, c2, 1, 3*time.Second)
	_, c3 := open(t, s.URL())
	c3.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := c3.Read(make([]byte, 4096))
	if err == nil || !strings.Contains(err.Error(), "1008") || !strings.Contains(err.Error(), "as many clients as it allows") {
		t.Fatalf("third client's Read = %v, want the 1008 explained", err)
	}
	if got := s.Refused(); got != 1 {
		t.Errorf("refused %d clients, want 1", got)
	}
	// Closing one frees a place.
	c1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.Clients() > 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_, c4 := open(t, s.URL())
	frames(t, c4, 1, 3*time.Second)
}

// TestWebSocketClose: Close unblocks a Read; the server's going away ends
// the stream with an error.
func TestWebSocketClose(t *testing.T) {
	var log sentLog
	s := startWebSocket(t, sim.WebSocketConfig{FeedConfig: sim.FeedConfig{Interval: time.Hour}}, &log)
	_, c := open(t, s.URL())
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("Read = %v, want a deadline error", err)
	}
	c.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Read after Close returned no error")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

func TestWebSocketRefused(t *testing.T) {
	src, err := source.Parse("ws://127.0.0.1:1/ws", source.Options{DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connect ws://127.0.0.1:1/ws") {
		t.Errorf("Open = %v, want the connect error", err)
	}
	for _, tc := range []struct{ address, want string }{
		{"ws:///ws", "has no host"},
		{"ws://u@h/ws", "has a user name"},
	} {
		if _, err := source.Parse(tc.address, source.Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.address, err, tc.want)
		}
	}

}
