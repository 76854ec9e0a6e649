package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/internal/mosquittotest"
	"github.com/p1logger/p1logger/parser"
)

func TestNetBadFlags(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(tok, []byte("T"), 0o600)
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-mode", "serial"}, "-mode"},
		{[]string{"-mode", "ws", "-fault-cut-every", "3"}, "-fault-cut-every"},
		{[]string{"-mode", "mqtt", "-per-conn"}, "-per-conn"},
		{[]string{"-ws-text"}, "-ws-text"},
		{[]string{"-mode", "ws", "-hw-api", "2"}, "-hw-api"},
		{[]string{"-mode", "homewizard", "-hw-api", "3"}, "-hw-api"},
		{[]string{"-mode", "homewizard", "-hw-api", "2"}, "-hw-token-file"},
		{[]string{"-mode", "homewizard", "-hw-token-file", tok}, "-hw-token-file"},
		{[]string{"-mode", "mqtt", "-mqtt-topic", "p1/#"}, "-mqtt-topic"},
		{[]string{"-mode", "mqtt", "-mqtt-split", "0"}, "-mqtt-split"},
		{[]string{"-mode", "ws", "-ws-max-clients", "0"}, "-ws-max-clients"},
	} {
		var stderr bytes.Buffer
		code := serve(context.Background(), tc.args, &stderr)
		msg := stderr.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.flag) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %s", tc.args, code, msg, tc.flag)
		}
	}
	var stderr bytes.Buffer
	if code := serve(context.Background(), []string{"-h"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "-mqtt-tasmota") {
		t.Errorf("-h: exit %d, %q", code, stderr.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runSim runs p1sim with args until the test ends.
func runSim(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	var log syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- serve(ctx, args, &log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("p1sim %v: exit %d\n%s", args, code, log.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("p1sim %v did not stop", args)
		}
	})
	return &log
}

// readFromSource opens address (retrying while the simulator starts) and
// returns n telegrams, each checked against its CRC.
func readFromSource(t *testing.T, address string, n int) {
	t.Helper()
	src, err := source.Parse(address, source.Options{DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var c source.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err = src.Open(context.Background()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open(%s): %v", address, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sp parser.Splitter
	sc := bufio.NewScanner(c)
	sc.Buffer(nil, parser.MaxTelegramSize)
	sc.Split(sp.Split)
	for i := 0; i < n; i++ {
		if !sc.Scan() {
			t.Fatalf("%s: telegram %d: %v", address, i, sc.Err())
		}
		var tg parser.Telegram
		if err := parser.ParseInto(&tg, sc.Bytes(), time.UTC); err != nil || tg.CRC != parser.CRCOK {
			t.Fatalf("%s: telegram %d: %v (crc %v)", address, i, err, tg.CRC)
		}
	}
}

// TestNetModes runs each mode of p1sim and reads it with p1logger's source.
func TestNetModes(t *testing.T) {
	t.Run("homewizard-v1", func(t *testing.T) {
		addr := freeAddr(t)
		runSim(t, "-mode", "homewizard", "-listen", addr, "-interval", "200ms")
		readFromSource(t, "homewizard://"+addr+"?interval=100ms", 2)
	})
	t.Run("homewizard-v2", func(t *testing.T) {
		addr := freeAddr(t)
		tok := filepath.Join(t.TempDir(), "tok")
		os.WriteFile(tok, []byte("TOKEN-xyz\n"), 0o600)
		log := runSim(t, "-mode", "homewizard", "-hw-api", "2", "-hw-token-file", tok, "-listen", addr, "-interval", "200ms")
		readFromSource(t, "homewizards://"+addr+"?interval=100ms&token_file="+tok, 2)
		if strings.Contains(log.String(), "TOKEN-xyz") {
			t.Errorf("p1sim logged the token:\n%s", log.String())
		}
	})
	t.Run("ws", func(t *testing.T) {
		addr := freeAddr(t)
		runSim(t, "-mode", "ws", "-listen", addr, "-interval", "200ms", "-ws-split", "64")
		readFromSource(t, "ws://"+addr+"/ws", 2)
	})
	t.Run("mqtt-tasmota", func(t *testing.T) {
		b := mosquittotest.Start(t, mosquittotest.Config{})
		runSim(t, "-mode", "mqtt", "-mqtt-broker", b.URL(), "-mqtt-topic", "tele/p1/RESULT", "-mqtt-tasmota", "-interval", "200ms")
		readFromSource(t, "mqtt://"+b.Addr()+"/tele/p1/RESULT", 2)
	})
}
