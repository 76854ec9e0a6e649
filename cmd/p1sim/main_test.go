package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/dlms"
	"github.com/p1logger/p1logger/parser"
)

// TestMain lets a test run the real main in a child process.
func TestMain(m *testing.M) {
	if os.Getenv("P1SIM_RUN_MAIN") == "1" {
		os.Args = append([]string{"p1sim"}, strings.Fields(os.Getenv("P1SIM_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-interval", "soon"}, "-interval"},
		{[]string{"-interval", "0s"}, "-interval"},
		{[]string{"-profile", "de"}, "-profile"},
		{[]string{"-tz", "Mars/Olympus"}, "-tz"},
		{[]string{"-fault-silence", "2m@30s"}, "-fault-silence"},
		{[]string{"-fault-refuse", "10s"}, "-fault-refuse"},
		{[]string{"-fault-cut-every", "-1"}, "-fault-cut-every"},
		{[]string{"-speed", "0"}, "-speed"},
		{[]string{"-start", "yesterday"}, "-start"},
		{[]string{"-log-format", "xml"}, "-log-format"},
		{[]string{"-log-level", "loud"}, "-log-level"},
		{[]string{"-no-such-flag"}, "-no-such-flag"},
		{[]string{"extra"}, "extra"},
		{[]string{"-key", "0011"}, "-key"},
		{[]string{"-key", "000102030405060708090A0B0C0D0E0F", "-auth-key", "zz"}, "-auth-key"},
		{[]string{"-auth-key", "000102030405060708090A0B0C0D0E0F"}, "-auth-key"},
		{[]string{"-key", "000102030405060708090A0B0C0D0E0F", "-system-title", "SAG"}, "-system-title"},
		{[]string{"-key", "000102030405060708090A0B0C0D0E0F", "-security", "10"}, "-security"},
	} {
		var stderr bytes.Buffer
		code := serve(context.Background(), tc.args, &stderr)
		msg := stderr.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.flag) || !strings.HasPrefix(msg, "p1sim: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %s", tc.args, code, msg, tc.flag)
		}
	}
	var stderr bytes.Buffer
	if code := serve(context.Background(), []string{"-h"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "-fault-badcrc-every") {
		t.Errorf("-h: exit %d, %q", code, stderr.String())
	}
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog polls the JSON log for a message and returns its "addr".
func waitLog(t *testing.T, logs interface{ String() string }, msg string) string {
	t.Helper()
	re := regexp.MustCompile(`"msg":"` + msg + `".*?"addr":"([^"]+)"`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %q in the log:\n%s", msg, logs.String())
	return ""
}

func readTelegrams(t *testing.T, conn net.Conn, n int) []error {
	t.Helper()
	var sp parser.Splitter
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 4096), parser.MaxTelegramSize)
	sc.Split(sp.Split)
	var errs []error
	for range n {
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if !sc.Scan() {
			t.Fatalf("no telegram: %v", sc.Err())
		}
		_, err := parser.Parse(sc.Bytes(), time.UTC)
		errs = append(errs, err)
	}
	return errs
}

// TestServeWithControl runs p1sim on loopback, reads telegrams, injects bad
// CRCs over the control endpoint and reads the status.
func TestServeWithControl(t *testing.T) {
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	args := []string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0", "-interval", "20ms",
		"-profile", "nl5", "-tz", "Europe/Amsterdam", "-speed", "60", "-start", "2026-03-29T01:59:00", "-log-format", "json"}
	go func() { done <- serve(ctx, args, &logs) }()
	addr := waitLog(t, &logs, "gateway listening")
	ctl := waitLog(t, &logs, "control listening")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, err := range readTelegrams(t, conn, 3) {
		if err != nil {
			t.Fatalf("clean telegram: %v", err)
		}
	}
	resp, err := http.Post("http://"+ctl+"/fault?kind=badcrc&count=2", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /fault: %s", resp.Status)
	}
	bad := 0
	for _, err := range readTelegrams(t, conn, 6) {
		if errors.Is(err, parser.ErrCRC) {
			bad++
		} else if err != nil {
			t.Errorf("unexpected %v", err)
		}
	}
	if bad != 2 {
		t.Errorf("%d CRC errors after injecting 2", bad)
	}
	resp, err = http.Get("http://" + ctl + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Clients int               `json:"clients"`
		Profile string            `json:"profile"`
		Faults  map[string]uint64 `json:"faults"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Clients != 1 || st.Profile != "nl5" || st.Faults["badcrc"] != 2 {
		t.Errorf("status %+v, %v", st, err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d on cancel, want 0\n%s", code, logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
}

func TestListenFailureExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	if code := serve(context.Background(), []string{"-listen", ln.Addr().String()}, &stderr); code != 1 {
		t.Errorf("exit %d for a taken port, want 1: %s", code, stderr.String())
	}
}

// TestSignalExitsZero runs main in a child process and stops it with
// SIGTERM, as a container runtime does.
func TestSignalExitsZero(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "P1SIM_RUN_MAIN=1", "P1SIM_ARGS=-listen 127.0.0.1:0 -interval 50ms -log-format json")
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	addr := waitLog(t, &logs, "gateway listening")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readTelegrams(t, conn, 1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("p1sim did not stop on SIGTERM")
	}
}

// TestServeEncrypted: with -key, p1sim sends general-glo-ciphering frames
// with the given system title and a frame counter that grows by one; they
// decrypt with the key (and the authentication key, checked) to telegrams
// with valid CRCs, and the wrong key gets none of them.
func TestServeEncrypted(t *testing.T) {
	const key, auth = "000102030405060708090A0B0C0D0E0F", "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
	for _, sec := range []string{"30", "20"} {
		t.Run(sec, func(t *testing.T) {
			var logs syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan int, 1)
			args := []string{"-listen", "127.0.0.1:0", "-interval", "20ms", "-log-format", "json",
				"-key", key, "-auth-key", auth, "-system-title", "4C475A0102030405", "-security", sec}
			go func() { done <- serve(ctx, args, &logs) }()
			addr := waitLog(t, &logs, "gateway listening")
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			raw := make([]byte, 0, 16<<10)
			for len(raw) < 4000 {
				buf := make([]byte, 4096)
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				raw = append(raw, buf[:n]...)
			}
			if bytes.Contains(raw, []byte("1-0:1.8.1")) {
				t.Fatal("plain text on the wire")
			}
			// Frame counters: big-endian after the security byte.
			var counters []uint32
			for i := 0; i+20 < len(raw); i++ {
				if raw[i] == 0xDB && raw[i+1] == 8 && bytes.Equal(raw[i+2:i+10], []byte{0x4C, 0x47, 0x5A, 1, 2, 3, 4, 5}) && raw[i+10] == 0x82 {
					if fmt.Sprintf("%02x", raw[i+13]) != sec {
						t.Fatalf("security byte %02x, want %s", raw[i+13], sec)
					}
					counters = append(counters, uint32(raw[i+14])<<24|uint32(raw[i+15])<<16|uint32(raw[i+16])<<8|uint32(raw[i+17]))
				}
			}
			if len(counters) < 3 {
				t.Fatalf("%d frames in %d bytes", len(counters), len(raw))
			}
			for i := 1; i < len(counters); i++ {
				if counters[i] != counters[i-1]+1 {
					t.Fatalf("frame counters %v: want +1 each", counters)
				}
			}
			k, _ := dlms.ParseKey(key, auth)
			var rejected []error
			plain, _ := io.ReadAll(dlms.NewReader(bytes.NewReader(raw), []dlms.Key{k}, func(err error) { rejected = append(rejected, err) }))
			// The first and last frame may be cut by where the read began
			// and ended; the whole ones in between must all decrypt.
			if len(rejected) > 1 {
				t.Fatalf("rejected %v", rejected)
			}
			var sp parser.Splitter
			sc := bufio.NewScanner(bytes.NewReader(plain))
			sc.Split(sp.Split)
			good := 0
			for sc.Scan() {
				if tg, err := parser.Parse(sc.Bytes(), time.UTC); err == nil && tg.CRC == parser.CRCOK {
					good++
				}
			}
			if good < len(counters)-1 {
				t.Fatalf("%d good telegrams from %d frames", good, len(counters))
			}
			wrong, _ := dlms.ParseKey("0F0E0D0C0B0A09080706050403020100", "")
			plain, _ = io.ReadAll(dlms.NewReader(bytes.NewReader(raw), []dlms.Key{wrong}, nil))
			if bytes.Contains(plain, []byte("1-0:1.8.1")) {
				t.Fatal("the wrong key decrypted a telegram")
			}
			cancel()
			<-done
		})
	}
}
