package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gatewayServer listens on loopback and, for the first connection, runs
// script with it; it returns the address.
func gatewayServer(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		script(c)
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("gateway script did not end")
		}
	})
	return ln.Addr().String()
}

func captureRun(t *testing.T, environ []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code = capture(ctx, args, environ, &out, &errb)
	return out.String(), errb.String(), code
}

func readTD(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(td + "telegrams/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCaptureN: -n stops after N telegrams and the summary counts good
// and bad CRCs; the bytes on stdout are the gateway's.
func TestCaptureN(t *testing.T) {
	good := readTD(t, "nl-dsmr50-iskra-am550-3ph-nogas.txt")
	bad := readTD(t, "nl-dsmr50-spec-example-textmsg-badcrc.txt")
	stopped := make(chan struct{})
	addr := gatewayServer(t, func(c net.Conn) {
		c.Write([]byte("noise"))
		c.Write(good)
		time.Sleep(50 * time.Millisecond)
		c.Write(bad)
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
		}
	})
	out, errOut, code := captureRun(t, nil, addr, "-n", "2")
	close(stopped)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := "noise" + string(good) + string(bad)
	if out != want {
		t.Errorf("stdout %d bytes, want the %d the gateway sent", len(out), len(want))
	}
	if !strings.Contains(errOut, "p1logger capture: "+addr+": ") || !strings.Contains(errOut, "2 telegrams, 1 with a valid CRC, 1 with a bad CRC, 0 without CRC; stopped: 2 telegrams seen (-n)") ||
		!strings.Contains(errOut, "to standard output") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("summary %q", errOut)
	}
}

// TestCaptureDuration: -d bounds a gateway that goes silent; --max-bytes
// bounds the bytes written (flags before and after ADDRESS).
func TestCaptureDuration(t *testing.T) {
	good := readTD(t, "nl-dsmr50-iskra-am550-3ph-nogas.txt")
	hold := func(c net.Conn) {
		c.Write(good)
		buf := make([]byte, 1)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(buf) // until the client goes
	}
	file := filepath.Join(t.TempDir(), "cap.bin")
	start := time.Now()
	_, errOut, code := captureRun(t, nil, "-d", "400ms", gatewayServer(t, hold), "-o", file)
	if took := time.Since(start); code != 0 || took > 5*time.Second {
		t.Fatalf("exit %d after %v, stderr %q", code, took, errOut)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, good) {
		t.Errorf("file holds %d bytes, want the telegram's %d", len(got), len(good))
	}
	if !strings.Contains(errOut, "1 telegrams, 1 with a valid CRC") || !strings.Contains(errOut, "stopped: 400ms passed (-d)") || !strings.Contains(errOut, `to "`+file+`"`) {
		t.Errorf("summary %q", errOut)
	}

	out, errOut, code := captureRun(t, nil, gatewayServer(t, hold), "--max-bytes", "100", "-d", "5s")
	if code != 0 || out != string(good[:100]) || !strings.Contains(errOut, "100 bytes in") || !strings.Contains(errOut, "stopped: 100 bytes written (--max-bytes)") {
		t.Errorf("max-bytes: exit %d, %d bytes, stderr %q", code, len(out), errOut)
	}
}

// TestCaptureEncrypted: with --key-file (or P1_KEYS_FILE) the frames are
// decrypted before they are written; without, the bytes are kept as they
// came, for decode --key-file. The gateway closing ends the capture.
func TestCaptureEncrypted(t *testing.T) {
	smarty := encryptedCapture(t, "lu-smarty-nexxtlab.hex")
	graz := encryptedCapture(t, "at-sagemcom-t210d-steiermark.hex")
	send := func(c net.Conn) {
		c.Write(smarty[:200])
		time.Sleep(30 * time.Millisecond)
		c.Write(smarty[200:])
		c.Write(graz)
	}
	keys := writeFile(t, "keys", "lux="+smartyKeyHex+"\ngraz=953E7F1725EA910F26E053813A639094\n")
	want := string(readTD(t, "lu-smarty-nexxtlab-decrypted.txt")) + string(readTD(t, "at-sagemcom-t210d-steiermark-decrypted.txt"))

	out, errOut, code := captureRun(t, nil, gatewayServer(t, send), "--key-file", keys)
	if code != 0 || out != want || !strings.Contains(errOut, "2 telegrams, 2 with a valid CRC") || !strings.Contains(errOut, "stopped: the gateway closed the connection") {
		t.Errorf("--key-file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, errOut, code = captureRun(t, []string{"P1_KEYS_FILE=" + keys}, gatewayServer(t, send))
	if code != 0 || out != want {
		t.Errorf("P1_KEYS_FILE: exit %d, stderr %q", code, errOut)
	}

	bare := writeFile(t, "key", smartyKeyHex+"\n")
	out, errOut, code = captureRun(t, nil, gatewayServer(t, send), "--key-file", bare)
	if code != 0 || out != string(readTD(t, "lu-smarty-nexxtlab-decrypted.txt")) ||
		!strings.Contains(errOut, "authentication failed") || !strings.Contains(errOut, "1 encrypted frames that did not decrypt") {
		t.Errorf("one key of two: exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, smartyKeyHex[:8]) {
		t.Errorf("stderr shows the key: %q", errOut)
	}

	out, errOut, code = captureRun(t, nil, gatewayServer(t, send))
	if code != 0 || out != string(smarty)+string(graz) || !strings.Contains(errOut, "0 telegrams, 0 with a valid CRC, 0 with a bad CRC, 0 without CRC, 2 encrypted frames kept as they came") {
		t.Errorf("no key: exit %d, %d bytes, stderr %q", code, len(out), errOut)
	}
}

// TestCaptureErrors: bad usage exits 2 with one line; an unreachable
// gateway and a silent one exit 1.
func TestCaptureErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "no ADDRESS"},
		{[]string{"a:1", "b:2"}, 2, `one ADDRESS only; "b:2" is a second`},
		{[]string{"nosuch://x"}, 2, `address "nosuch://x" has unknown scheme`},
		{[]string{"127.0.0.1:1", "-n", "-1"}, 2, "-n: want 0"},
		{[]string{"127.0.0.1:1", "-d", "0s"}, 2, "-d: want a positive duration"},
		{[]string{"127.0.0.1:1", "--max-bytes", "lots"}, 2, "max-bytes: want a positive size"},
		{[]string{"127.0.0.1:1", "--key-file", "/nonexistent"}, 2, `--key-file: "/nonexistent" cannot be read`},
		{[]string{closed, "-d", "2s"}, 1, closed},
		{[]string{gatewayServer(t, func(c net.Conn) { time.Sleep(500 * time.Millisecond) }), "-d", "200ms"}, 1, "no byte arrived"},
	}
	for _, tt := range tests {
		_, errOut, code := captureRun(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.msg) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.msg)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"capture", "-h"}, nil, nil, &out, &errb); code != 0 || !strings.Contains(errb.String(), "usage: p1logger capture ADDRESS") {
		t.Errorf("capture -h: exit %d, %q", code, errb.String())
	}
}
