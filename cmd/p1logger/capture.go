package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/p1logger/p1logger/ingest/dlms"
	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/parser"
)

const captureUsage = `usage: p1logger capture ADDRESS [-o FILE] [-n N] [-d DURATION] [--key-file F] [--max-bytes SIZE]

Connects to the gateway at ADDRESS (any form P1_GATEWAYS takes: host:port,
tcp://…, and the other kinds) and writes the raw bytes it sends to FILE, or
to standard output, until N telegrams were seen, DURATION passed, SIZE bytes
were written or the gateway closed the connection; then prints a summary on
standard error: bytes, telegrams seen, how many had a valid CRC. Send the
file with a bug report, or read it with "p1logger decode FILE".

Encrypted meters (Luxembourg Smarty, Austria): with --key-file, or else
P1_KEYS_FILE, the frames are decrypted before they are written (each key of
the file is tried on every frame); without, the encrypted bytes are written
as they came, for "p1logger decode --key-file".

  -o FILE          write to FILE (created or truncated) instead of standard output
  -n N             stop after N telegrams (default 0: no limit)
  -d DURATION      stop after DURATION (default 30s)
  --key-file F     keys file: name=KEY[,AUTHKEY] lines, or one bare KEY[,AUTHKEY]
  --max-bytes SIZE stop after SIZE bytes, such as 16MiB (default 16MiB)

Exit status: 0 when bytes arrived, 1 when none did or the gateway could not
be reached, 2 on bad usage.
`

// runCapture implements "p1logger capture". It returns the exit status.
func runCapture(args, environ []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return capture(ctx, args, environ, stdout, stderr)
}

// captureOptions are capture's flags.
type captureOptions struct {
	addr     string
	out      string
	n        int
	d        time.Duration
	keyFile  string
	maxBytes int64
}

func parseCaptureFlags(args []string, stderr io.Writer) (*captureOptions, error) {
	o := &captureOptions{maxBytes: 16 << 20}
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.out, "o", "", "output file")
	fs.IntVar(&o.n, "n", 0, "telegrams")
	fs.DurationVar(&o.d, "d", 30*time.Second, "duration")
	fs.StringVar(&o.keyFile, "key-file", "", "keys file")
	fs.Func("max-bytes", "size", func(s string) error {
		n, ok := parseSize(s)
		if !ok || n <= 0 {
			return errors.New("want a positive size, such as 16MiB")
		}
		o.maxBytes = n
		return nil
	})
	// ADDRESS may come before the flags or after them.
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stderr, captureUsage)
			}
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if o.addr != "" {
			return nil, fmt.Errorf("one ADDRESS only; %q is a second", args[0])
		}
		o.addr, args = args[0], args[1:]
	}
	switch {
	case o.addr == "":
		return nil, errors.New("no ADDRESS; want p1logger capture host:port (or another address form), see -h")
	case o.n < 0:
		return nil, fmt.Errorf("-n: want 0 (no limit) or a positive count, got %d", o.n)
	case o.d <= 0:
		return nil, fmt.Errorf("-d: want a positive duration, got %v", o.d)
	}
	return o, nil
}

// capture runs "p1logger capture" until ctx is done or a bound is reached.
func capture(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	o, err := parseCaptureFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "p1logger capture: %v\n", err)
		return 2
	}
	src, err := source.Parse(o.addr, source.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "p1logger capture: address %q %v\n", o.addr, err)
		return 2
	}
	keyFile, where := o.keyFile, "p1logger capture: --key-file"
	if keyFile == "" {
		keyFile, where = envValue(environ, "P1_KEYS_FILE"), "p1logger capture: P1_KEYS_FILE"
	}
	st := captureStats{start: time.Now()}
	if keyFile != "" {
		named, err := readKeysFile(where, keyFile, true)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		keys := make([]dlms.Key, len(named))
		for i, k := range named {
			keys[i] = k.key
		}
		src = dlms.Wrap(src, keys, func(err error) {
			st.rejected++
			fmt.Fprintf(stderr, "p1logger capture: %v\n", err)
		})
	}
	out := stdout
	if o.out != "" && o.out != "-" {
		f, err := os.Create(o.out)
		if err != nil {
			fmt.Fprintf(stderr, "p1logger capture: -o: %v\n", err)
			return 2
		}
		defer f.Close()
		out = f
	}

	ctx, cancel := context.WithTimeout(ctx, o.d)
	defer cancel()
	conn, err := src.Open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "p1logger capture: %s: %v\n", src, err)
		return 1
	}
	// Close unblocks a Read when ctx ends first.
	stopClose := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopClose()
	defer conn.Close()

	reason := st.copy(ctx, conn, out, o)
	if f, ok := out.(*os.File); ok && f != os.Stdout {
		if err := f.Close(); err != nil && reason == "" {
			reason = "write failed: " + err.Error()
		}
	}
	fmt.Fprintf(stderr, "p1logger capture: %s: %s\n", src, st.summary(reason, o.out))
	if st.bytes == 0 {
		return 1
	}
	return 0
}

type captureStats struct {
	start    time.Time
	bytes    int64
	seen     int // telegrams framed
	crcOK    int
	crcBad   int
	noCRC    int
	other    int // framed, but not a telegram the parser reads
	rejected int // encrypted frames that did not decrypt
	sealed   int // encrypted frames kept as they came (no key)
	dec      dlms.Decoder
	raw      []byte // written bytes not yet through dec
	pending  []byte // dec's output not yet through sp
	sp       parser.Splitter
}

// copy reads conn into out until a bound is reached, counting telegrams,
// and returns why it stopped.
func (st *captureStats) copy(ctx context.Context, conn source.Conn, out io.Writer, o *captureOptions) string {
	buf := make([]byte, 32<<10)
	for {
		// A short deadline, renewed, so that ctx is seen even where Close
		// does not unblock a Read at once.
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if int64(n) > o.maxBytes-st.bytes {
			n = int(o.maxBytes - st.bytes)
		}
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return "write failed: " + werr.Error()
			}
			st.bytes += int64(n)
			if st.count(buf[:n], o.n) {
				return fmt.Sprintf("%d telegrams seen (-n)", o.n)
			}
		}
		switch {
		case st.bytes >= o.maxBytes:
			return fmt.Sprintf("%d bytes written (--max-bytes)", o.maxBytes)
		case ctx.Err() != nil:
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Sprintf("%v passed (-d)", o.d)
			}
			return "interrupted"
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, io.EOF):
			return "the gateway closed the connection"
		default:
			return "read failed: " + err.Error()
		}
	}
}

// count frames the bytes as the daemon does and reports whether limit
// (when not 0) telegrams were seen.
func (st *captureStats) count(b []byte, limit int) bool {
	// Encrypted frames written as they came are counted, not framed: their
	// ciphertext would pass for noise, or worse.
	st.raw = append(st.raw, b...)
	for len(st.raw) > 0 {
		adv, out, err := st.dec.Decode(st.raw, false)
		if adv == 0 {
			break
		}
		if err != nil {
			st.sealed++
		}
		st.pending = append(st.pending, out...)
		st.raw = st.raw[adv:]
	}
	for {
		adv, tok, _ := st.sp.Split(st.pending, false)
		if adv == 0 {
			if len(st.pending) > 2*parser.MaxTelegramSize {
				st.pending = st.pending[:0] // Split never asks this much
			}
			return false
		}
		st.pending = st.pending[adv:]
		if tok == nil {
			continue
		}
		st.seen++
		switch t, err := parser.Parse(tok, time.UTC); {
		case errors.Is(err, parser.ErrCRC):
			st.crcBad++
		case err == nil && t.CRC == parser.CRCOK:
			st.crcOK++
		case err == nil:
			st.noCRC++
		default:
			st.other++
		}
		if limit > 0 && st.seen >= limit {
			return true
		}
	}
}

func (st *captureStats) summary(reason, file string) string {
	to := "standard output"
	if file != "" && file != "-" {
		to = strconv.Quote(file)
	}
	s := fmt.Sprintf("%d bytes in %.1fs to %s: %d telegrams, %d with a valid CRC, %d with a bad CRC, %d without CRC",
		st.bytes, time.Since(st.start).Seconds(), to, st.seen, st.crcOK, st.crcBad, st.noCRC)
	if st.other > 0 {
		s += fmt.Sprintf(", %d unreadable", st.other)
	}
	if st.sealed > 0 {
		s += fmt.Sprintf(", %d encrypted frames kept as they came (decrypt them with --key-file, here or in decode)", st.sealed)
	}
	if st.rejected > 0 {
		s += fmt.Sprintf(", %d encrypted frames that did not decrypt", st.rejected)
	}
	if st.bytes == 0 {
		s += "; no byte arrived"
	}
	return s + "; stopped: " + reason
}

// envValue returns the value of name in environ, or "".
func envValue(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}
