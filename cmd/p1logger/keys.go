package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/p1logger/p1logger/ingest"
	"github.com/p1logger/p1logger/ingest/dlms"
	"github.com/p1logger/p1logger/ingest/source"
)

const keysForm = "want name=KEY or name=KEY,AUTHKEY per line, KEY and AUTHKEY 32 hexadecimal digits"

// namedKey is one line of a keys file. name is empty for a bare KEY line
// (accepted by "decode" and "capture" only).
type namedKey struct {
	name string
	line int
	key  dlms.Key
}

// readKeysFile reads a keys file (P1_KEYS_FILE, or --key-file): lines
// name=KEY or name=KEY,AUTHKEY, # comments, blank lines; spaces inside a
// key are dropped, as operators print keys in groups. With bare, a line may
// be KEY or KEY,AUTHKEY alone. Its errors start with where (the variable
// or flag and the file) and the line number, say what is wrong, and never
// quote a key: the line is not echoed.
func readKeysFile(where, file string, bare bool) ([]namedKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %q cannot be read (%v); %s", where, file, unwrapPath(err), keysForm)
	}
	var out []namedKey
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<16)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		at := fmt.Sprintf("%s: %s line %d", where, file, line)
		name, keys, named := strings.Cut(l, "=")
		if !named {
			if !bare {
				return nil, fmt.Errorf("%s: has no \"=\"; %s", at, keysForm)
			}
			name, keys = "", l
		}
		name = strings.TrimSpace(name)
		if named && name == "" {
			return nil, fmt.Errorf("%s: has an empty gateway name; %s", at, keysForm)
		}
		if prev, dup := seen[name]; dup {
			if name == "" {
				return nil, fmt.Errorf("%s: a second key without a name (line %d has one); want one bare key, or name=KEY lines", at, prev)
			}
			return nil, fmt.Errorf("%s: gateway %q has a key already on line %d; want one line per gateway", at, name, prev)
		}
		seen[name] = line
		enc, auth, _ := strings.Cut(keys, ",")
		k, err := dlms.ParseKey(squeeze(enc), squeeze(auth))
		if err != nil {
			return nil, fmt.Errorf("%s: gateway %q: %v; %s", at, name, unwrapKeyForm(err), keysForm)
		}
		out = append(out, namedKey{name: name, line: line, key: k})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s line %d: %v; %s", where, file, line+1, err, keysForm)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %q holds no key; %s", where, file, keysForm)
	}
	return out, nil
}

// squeeze drops the spaces and tabs of a key ("AE BD 21 …" as printed).
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

// unwrapKeyForm drops the "not a key: " of dlms.ErrKeyForm, which the
// message says better.
func unwrapKeyForm(err error) string {
	return strings.TrimPrefix(err.Error(), dlms.ErrKeyForm.Error()+": ")
}

// gatewayKeys reads P1_KEYS_FILE and returns each named gateway's key; a
// name that is not a configured gateway is an error (a typo would
// otherwise leave a meter undecrypted without a word).
func gatewayKeys(file string, gateways []gatewaySpec) (map[string]dlms.Key, error) {
	if file == "" {
		return nil, nil
	}
	keys, err := readKeysFile("P1_KEYS_FILE", file, false)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(gateways))
	for _, g := range gateways {
		known[g.Name] = true
	}
	out := make(map[string]dlms.Key, len(keys))
	for _, k := range keys {
		if !known[k.name] {
			return nil, fmt.Errorf("P1_KEYS_FILE: %s line %d: gateway %q is not configured (P1_GATEWAYS, P1_GATEWAYS_FILE); want the name of a gateway", file, k.line, k.name)
		}
		out[k.name] = k.key
	}
	return out, nil
}

// decrypting wraps a gateway's source with its key. A frame that fails to
// decrypt is counted and logged like a bad telegram: a crc_error when the
// frame failed its own check (authentication, truncation), a parse_error
// when it is a form p1logger cannot read (binary DLMS, an unknown security
// byte). *gw is the Gateway, set once it exists: frames arrive only after
// the daemon has started its readers. Gateways without a key are not
// wrapped, so their TCP readers keep reading straight from the socket.
func decrypting(src source.Source, k dlms.Key, gw **ingest.Gateway, log *slog.Logger) source.Source {
	return dlms.Wrap(src, []dlms.Key{k}, func(err error) {
		crc := errors.Is(err, dlms.ErrAuth) || errors.Is(err, dlms.ErrTruncated)
		(*gw).RejectFrame(log, err, crc, time.Now())
	})
}
