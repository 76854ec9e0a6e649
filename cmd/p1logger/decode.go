package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/p1logger/p1logger/ingest"
	"github.com/p1logger/p1logger/ingest/dlms"
	"github.com/p1logger/p1logger/parser"
)

const decodeUsage = `usage: p1logger decode [-tz ZONE] [--key-file F] [FILE...]

Reads raw P1 telegram bytes from the files (or standard input when there are
none, or for "-") and prints one JSON object per telegram on standard output.
Noise between telegrams is skipped. A telegram that fails its CRC or cannot be
decoded is reported on standard error with the reason. A telegram whose CRC
matched but with lines that cannot be decoded is printed as the daemon would
write it, without those lines, and with an "errors" list naming each; each bad
line is also reported on standard error. The exit status is 1 if any telegram
or line failed or a file held none, 2 on bad usage.

  -tz ZONE   IANA time zone of the meter's clock (default: $P1_TIMEZONE, else
             the host's zone)
  --key-file F
             decrypt the encrypted frames of Luxembourg Smarty and Austrian
             meters (DLMS general-glo-ciphering) with the keys in F: lines
             name=KEY or name=KEY,AUTHKEY as in P1_KEYS_FILE (each key is
             tried on every frame), or one bare KEY[,AUTHKEY] line. A frame
             that fails to decrypt is reported on standard error and counts
             as a failed telegram; without --key-file, so is every
             encrypted frame.
`

// runDecode implements "p1logger decode". It returns the process exit status.
func runDecode(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, decodeUsage) }
	tz := fs.String("tz", os.Getenv("P1_TIMEZONE"), "time zone")
	keyFile := fs.String("key-file", "", "keys file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	loc := time.Local
	if *tz != "" {
		var err error
		if loc, err = time.LoadLocation(*tz); err != nil {
			fmt.Fprintf(stderr, "p1logger decode: -tz %q: unknown time zone; want an IANA name such as Europe/Brussels\n", *tz)
			return 2
		}
	}
	var keys []dlms.Key
	if *keyFile != "" {
		named, err := readKeysFile("p1logger decode: --key-file", *keyFile, true)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		for _, k := range named {
			keys = append(keys, k.key)
		}
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	d := decoder{loc: loc, out: out, errOut: stderr, keys: keys}
	for _, name := range files {
		if name == "-" {
			d.stream("stdin", stdin)
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "p1logger decode: %v\n", err)
			d.failed++
			continue
		}
		d.stream(name, f)
		f.Close()
	}
	if d.failed > 0 {
		return 1
	}
	return 0
}

type decoder struct {
	keys   []dlms.Key
	loc    *time.Location
	out    *bufio.Writer
	errOut io.Writer
	failed int
	t      parser.Telegram
	buf    []byte
}

// stream decodes every telegram in r, reporting each failure with the
// telegram's number and byte offset in the input.
func (d *decoder) stream(name string, r io.Reader) {
	var sp parser.Splitter
	// Encrypted frames are decrypted (or, without a key that fits,
	// reported) before the framing; plain bytes pass through unchanged.
	frames := 0
	r = dlms.NewReader(r, d.keys, func(err error) {
		d.failed++
		frames++
		fmt.Fprintf(d.errOut, "%s: %v\n", name, err)
	})
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), parser.MaxTelegramSize)
	// consumed counts input bytes handed out so far; a token is the tail of
	// what its call consumed (the Splitter skips garbage in the same call).
	var consumed, at int64
	n := 0
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		adv, tok, err := sp.Split(data, atEOF)
		consumed += int64(adv)
		if tok != nil {
			at = consumed - int64(len(tok))
		}
		return adv, tok, err
	})
	for sc.Scan() {
		frame := sc.Bytes()
		n++
		// The daemon's rule, through the daemon's function: a telegram
		// whose CRC matched is printed (and would be written) without its
		// bad lines, which are listed under "errors" and on stderr.
		use, err := ingest.Decode(&d.t, frame, d.loc)
		if err != nil {
			d.failed++
			d.report(name, n, at, use, err)
		}
		if !use {
			continue
		}
		d.buf = d.t.AppendJSON(d.buf[:0])
		d.buf = append(d.buf, '\n')
		d.out.Write(d.buf)
	}
	if err := sc.Err(); err != nil {
		d.failed++
		fmt.Fprintf(d.errOut, "%s: read: %v\n", name, err)
		return
	}
	if n == 0 && frames == 0 {
		d.failed++
		// "/" alone does not make a telegram: a frame without a CRC that
		// does not have a telegram's shape was skipped too, so say both.
		fmt.Fprintf(d.errOut, "%s: no telegram found (%d bytes skipped: no \"/\" that starts a frame with a CRC or with a telegram's header and OBIS lines)\n", name, sp.Skipped)
	}
}

// report writes err on stderr, one line per bad line of the telegram, saying
// whether the telegram's other registers were used.
func (d *decoder) report(name string, n int, at int64, used bool, err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if used {
			fmt.Fprintf(d.errOut, "%s: telegram %d at byte %d: %v (other lines used)\n", name, n, at, e)
		} else {
			fmt.Fprintf(d.errOut, "%s: telegram %d at byte %d: %v\n", name, n, at, e)
		}
	}
}
