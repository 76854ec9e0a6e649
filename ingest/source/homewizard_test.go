package source_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

func startHomeWizard(t *testing.T, cfg sim.HomeWizardConfig, log *sentLog) *sim.HomeWizard {
	t.Helper()
	cfg.OnSend = log.add
	if cfg.Interval == 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	h, err := sim.NewHomeWizard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, h.Run)
	return h
}

// TestHomeWizardV1 polls the v1 emulation: every telegram arrives once, in
// order, byte for byte, and passes its CRC.
func TestHomeWizardV1(t *testing.T) {
	var log sentLog
	h := startHomeWizard(t, sim.HomeWizardConfig{}, &log)
	src, c := open(t, "homewizard://"+h.Addr().String()+"?interval=100ms")
	if got, want := src.String(), "homewizard://"+h.Addr().String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := src.Kind(); got != "homewizard" {
		t.Errorf("Kind() = %q, want homewizard", got)
	}
	got := frames(t, c, 4, 3*time.Second)
	// The meter's clock has whole seconds, so at 200 ms it renders the
	// same telegram several times over; polled every 100 ms, each distinct
	// telegram arrives once.
	sent := distinct(log.frames())
	for i, f := range got {
		if !bytes.Equal(f, sent[i]) {
			t.Fatalf("telegram %d:\n got %q\nwant %q", i, f, sent[i])
		}
		var tg parser.Telegram
		if err := parser.ParseInto(&tg, f, time.UTC); err != nil || tg.CRC != parser.CRCOK {
			t.Errorf("telegram %d: err %v, crc %v; want a good CRC", i, err, tg.CRC)
		}
	}
}

// TestHomeWizardV1NoCRC: old firmware left the CRC out. The source hands
// the bytes on unchanged (no CRC made up), so a DSMR 2.2 telegram parses
// and a DSMR 5 one fails with the parser's clear reason.
func TestHomeWizardV1NoCRC(t *testing.T) {
	for _, tc := range []struct {
		profile sim.Profile
		wantErr string
	}{
		{sim.ProfileNL22, ""},
		{sim.ProfileNL5, `requires a CRC after "!"; none was sent`},
	} {
		t.Run(string(tc.profile), func(t *testing.T) {
			var log sentLog
			h := startHomeWizard(t, sim.HomeWizardConfig{NoCRC: true, FeedConfig: sim.FeedConfig{Meter: sim.MeterConfig{Profile: tc.profile}}}, &log)
			_, c := open(t, "homewizard://"+h.Addr().String()+"?interval=100ms")
			f := frames(t, c, 1, 3*time.Second)[0]
			if !bytes.HasSuffix(f, []byte("\n!\r\n")) {
				t.Fatalf("telegram ends %q, want no CRC", f[len(f)-10:])
			}
			if !bytes.Equal(f, log.frames()[0]) {
				t.Errorf("got %q, want %q", f, log.frames()[0])
			}
			var tg parser.Telegram
			err := parser.ParseInto(&tg, f, time.UTC)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("parse: %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("parse: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestHomeWizardV2 polls the v2 emulation over HTTPS with its self-signed
// certificate, with and without pinning it.
func TestHomeWizardV2(t *testing.T) {
	var log sentLog
	h := startHomeWizard(t, sim.HomeWizardConfig{API: 2, Token: "0123456789ABCDEF0123456789ABCDEF"}, &log)
	tok := writeFile(t, "token", "0123456789ABCDEF0123456789ABCDEF\n")
	for _, q := range []string{"", "&cert_sha256=" + h.CertSHA256()} {
		src, c := open(t, "homewizards://"+h.Addr().String()+"?token_file="+tok+"&interval=100ms"+q)
		if got, want := src.String(), "homewizards://"+h.Addr().String(); got != want {
			t.Errorf("String() = %q, want %q (no token file, no pin)", got, want)
		}
		got := frames(t, c, 2, 3*time.Second)
		sent := log.frames()
		for _, f := range got {
			if !containsFrame(sent, f) {
				t.Errorf("got a telegram the device never served: %q", f)
			}
		}
		if bytes.Equal(got[0], got[1]) {
			t.Error("the same telegram arrived twice")
		}
		c.Close()
	}
}

// distinct drops frames equal to the one before.
func distinct(fs [][]byte) [][]byte {
	var out [][]byte
	for _, f := range fs {
		if len(out) == 0 || !bytes.Equal(out[len(out)-1], f) {
			out = append(out, f)
		}
	}
	return out
}

func containsFrame(sent [][]byte, f []byte) bool {
	for _, s := range sent {
		if bytes.Equal(s, f) {
			return true
		}
	}
	return false
}

// TestHomeWizardV2Refusals: each way the device or its certificate says no
// fails Open with a reason the user can act on, and no secret.
func TestHomeWizardV2Refusals(t *testing.T) {
	const token = "SECRET0123456789SECRET0123456789"
	var log sentLog
	h := startHomeWizard(t, sim.HomeWizardConfig{API: 2, Token: token, FirstAfter: time.Hour}, &log)
	good := writeFile(t, "good", token)
	bad := writeFile(t, "bad", "WRONGTOKEN")
	addr := h.Addr().String()
	otherPin := strings.Repeat("ab", 32)
	v1 := "homewizard://" + addr // plain HTTP to a TLS port
	for _, tc := range []struct{ address, want string }{
		{"homewizards://" + addr + "?token_file=" + good, "503"},
		{"homewizards://" + addr + "?token_file=" + bad, "refused the token (HTTP 401)"},
		{"homewizards://" + addr + "?token_file=" + good + "&cert_sha256=" + otherPin, "not the cert_sha256 in the address"},
		{v1, "/api/v1/telegram answered HTTP 400"},
	} {
		src, err := source.Parse(tc.address, source.Options{DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.address, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := src.Open(ctx)
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("Open(%s) succeeded, want an error with %q", tc.address, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) = %v, want %q", tc.address, err, tc.want)
		}
		if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "WRONGTOKEN") {
			t.Errorf("error shows the token: %v", err)
		}
	}
	if served, refused := h.Requests(); served != 0 || refused < 2 {
		t.Errorf("device served %d, refused %d; want 0 and at least 2", served, refused)
	}
}

// TestHomeWizardFirstTelegram: Open fails with the 503 while the device has
// none, and succeeds once it has.
func TestHomeWizardFirstTelegram(t *testing.T) {
	var log sentLog
	h := startHomeWizard(t, sim.HomeWizardConfig{API: 2, Token: "T", FirstAfter: 700 * time.Millisecond}, &log)
	tok := writeFile(t, "token", "T")
	src, err := source.Parse("homewizards://"+h.Addr().String()+"?token_file="+tok, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Open before the first telegram = %v, want the 503", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := src.Open(context.Background())
		if err == nil {
			frames(t, c, 1, 3*time.Second)
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open after the first telegram: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHomeWizardCloseUnblocks: Close ends a Read that waits, and Read then
// says the connection is closed.
func TestHomeWizardCloseUnblocks(t *testing.T) {
	var log sentLog
	h := startHomeWizard(t, sim.HomeWizardConfig{FeedConfig: sim.FeedConfig{Interval: time.Hour}}, &log)
	_, c := open(t, "homewizard://"+h.Addr().String())
	frames(t, c, 1, 3*time.Second) // the first, then nothing for an hour
	c.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 100))
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

// TestHomeWizardDeadline: a Read with nothing to read ends at the deadline
// with a timeout error, as a socket's does.
func TestHomeWizardDeadline(t *testing.T) {
	var log sentLog
	h := startHomeWizard(t, sim.HomeWizardConfig{FeedConfig: sim.FeedConfig{Interval: time.Hour}}, &log)
	_, c := open(t, "homewizard://"+h.Addr().String())
	frames(t, c, 1, 3*time.Second)
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 100))
	if !isTimeout(err) {
		t.Fatalf("Read = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Read returned after %v, want about 100ms", d)
	}
}

func TestHomeWizardBadAddresses(t *testing.T) {
	tok := writeFile(t, "token", "T")
	empty := writeFile(t, "empty", "  \n")
	for _, tc := range []struct{ address, want string }{
		{"homewizard://", "has no host"},
		{"homewizard://h/api", `has a path "/api"`},
		{"homewizard://h?token_file=" + tok, `unknown option "token_file"`},
		{"homewizards://h", "has no token_file"},
		{"homewizards://h?token_file=/nonexistent/t", `token_file "/nonexistent/t" cannot be read`},
		{"homewizards://h?token_file=" + empty, "is empty"},
		{"homewizards://h?token_file=" + tok + "&cert_sha256=xyz", "64 hex digits"},
		{"homewizard://h?interval=1ms", "between 100ms and 1m"},
		{"homewizard://u@h", "has a user name"},
	} {
		_, err := source.Parse(tc.address, source.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.address, err, tc.want)
		}
	}
}
