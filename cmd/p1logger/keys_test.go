package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/p1logger/p1logger/ingest/dlms"
)

const (
	smartyKeyHex = "D491470F47126332B07D1923B3504188" // NEXXTLAB's published test key
	authKeyHex   = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
)

// TestKeysFile: P1_KEYS_FILE gives each named gateway its key, with or
// without an authentication key, comments and blank lines allowed, keys in
// groups of digits accepted.
func TestKeysFile(t *testing.T) {
	file := writeFile(t, "keys", "# Creos letter of 2024-03-01\n\nlux = "+smartyKeyHex+"  # kitchen\n graz=D491 470F 4712 6332 B07D 1923 B350 4188,"+authKeyHex+"\n")
	cfg, err := loadConfig([]string{"P1_GATEWAYS=lux=127.0.0.1:8001,graz=127.0.0.1:8002,plain=127.0.0.1:8003", "P1_KEYS_FILE=" + file})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Keys) != 2 {
		t.Fatalf("%d keys, want 2", len(cfg.Keys))
	}
	want := map[string]struct {
		enc, auth string
	}{"lux": {smartyKeyHex, ""}, "graz": {smartyKeyHex, authKeyHex}}
	for name, w := range want {
		k, ok := cfg.Keys[name]
		wk, _ := dlms.ParseKey(w.enc, w.auth)
		if !ok || k != wk {
			t.Errorf("gateway %s: key %v (found %v), want the file's", name, k, ok)
		}
		if k.HasAuth() != (w.auth != "") {
			t.Errorf("gateway %s: HasAuth %v", name, k.HasAuth())
		}
	}
	if _, ok := cfg.Keys["plain"]; ok {
		t.Error("gateway plain has a key")
	}
	// The whole config printed, as a careless log line would: no key.
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(strings.ToUpper(s), "D491") || strings.Contains(strings.ToUpper(s), "0F1E") {
			t.Errorf("Sprintf(%q, cfg) shows a key: %s", verb, s)
		}
	}
}

// TestKeysFileErrors: each mistake is one line naming the file, the line
// and what is wrong, and never the key, not even a part of it.
func TestKeysFileErrors(t *testing.T) {
	const secret = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
	tests := []struct {
		name, content string
		want          string
	}{
		{"short key", "lux=" + secret[:31] + "\n", "line 1: gateway \"lux\": the key has 31 characters; want 32 hexadecimal digits"},
		{"long key", "\n\nlux=" + secret + "0\n", "line 3: gateway \"lux\": the key has 33 characters"},
		{"not hex", "lux=" + secret[:20] + "XY" + secret[22:] + "\n", "line 1: gateway \"lux\": the key has a character that is not a hexadecimal digit at position 21"},
		{"bad auth key", "lux=" + secret + "," + secret[:16] + "\n", "line 1: gateway \"lux\": the authentication key has 16 characters"},
		{"no =", "# x\n" + secret + "\n", "line 2: has no \"=\""},
		{"empty name", "=" + secret + "\n", "line 1: has an empty gateway name"},
		{"unknown gateway", "lux=" + secret + "\nkitchen=" + secret + "\n", "line 2: gateway \"kitchen\" is not configured"},
		{"twice", "lux=" + secret + "\nlux=" + secret + "\n", "line 2: gateway \"lux\" has a key already on line 1"},
		{"empty", "# nothing yet\n\n", "holds no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, "keys", tt.content)
			_, err := loadConfig([]string{"P1_GATEWAYS=lux=127.0.0.1:8001", "P1_KEYS_FILE=" + file})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "P1_KEYS_FILE: ") || !strings.Contains(msg, file) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q\nwant P1_KEYS_FILE:, the file and %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error has more than one line: %q", msg)
			}
			for i := 0; i+8 <= len(secret); i += 4 {
				if strings.Contains(strings.ToUpper(msg), secret[i:i+8]) {
					t.Errorf("error %q quotes the key", msg)
				}
			}
		})
	}
	_, err := loadConfig([]string{"P1_GATEWAYS=lux=127.0.0.1:8001", "P1_KEYS_FILE=/nonexistent/keys"})
	if err == nil || !strings.Contains(err.Error(), `P1_KEYS_FILE: "/nonexistent/keys" cannot be read`) {
		t.Errorf("missing file: %v", err)
	}
}

// TestKeyFileBare: decode and capture accept one bare key, not two.
func TestKeyFileBare(t *testing.T) {
	file := writeFile(t, "k", smartyKeyHex+"\n")
	keys, err := readKeysFile("--key-file", file, true)
	if err != nil || len(keys) != 1 || keys[0].name != "" {
		t.Fatalf("bare key: %v %v", keys, err)
	}
	file = writeFile(t, "k", smartyKeyHex+"\n"+smartyKeyHex+"\n")
	if _, err := readKeysFile("--key-file", file, true); err == nil || !strings.Contains(err.Error(), "line 2: a second key without a name") {
		t.Fatalf("two bare keys: %v", err)
	}
}
