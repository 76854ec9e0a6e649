package parser

import (
	"bytes"
	"fmt"
)

// Splitter frames a byte stream into telegrams. Its Split method is a
// [bufio.SplitFunc]:
//
//	var sp parser.Splitter
//	sc := bufio.NewScanner(conn)
//	sc.Buffer(make([]byte, 0, 4096), parser.MaxTelegramSize)
//	sc.Split(sp.Split)
//
// Each token starts at a "/" and, for a whole telegram, ends with the line
// that starts with "!" (CRC digits and line end included). Bytes before a "/"
// are skipped and counted in Skipped. A telegram interrupted by a new "/"
// (a gateway that reconnected mid-frame) or running past MaxTelegramSize
// without an end line is still returned as a token, so that [Parse] reports
// it as a [FrameError] while the next telegram is framed normally. At EOF,
// whatever follows the last "/" is returned the same way. Memory is bounded by
// the Scanner's buffer; Split never asks for more than MaxTelegramSize bytes.
type Splitter struct {
	Skipped int64 // bytes discarded because they were not inside a telegram
}

// Split implements bufio.SplitFunc. It never returns an error.
//
// A whole frame without a CRC (DSMR 2.2 and 3 send none) has only its shape
// to vouch for it: one that does not look like a telegram (see
// [shapeError]) is garbage, skipped and counted in Skipped like any other
// byte outside a telegram, and Split looks on behind it in the same call.
func (s *Splitter) Split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	// Each pass skips at least one garbage frame, so the loop ends within
	// len(data) passes.
	for {
		start := bytes.IndexByte(data[advance:], '/')
		if start < 0 {
			// All garbage: drop it, keep nothing buffered.
			s.Skipped += int64(len(data) - advance)
			return len(data), nil, nil
		}
		start += advance
		// Skip the garbage and frame in the same call: at EOF a
		// bufio.Scanner stops at the first call that returns no token, so a
		// skip-only answer there would lose the telegram behind the garbage.
		n := frameEnd(data[start:], atEOF)
		if n == 0 {
			s.Skipped += int64(start - advance)
			return start, nil, nil
		}
		tok := data[start : start+n]
		if !shapeless(tok) {
			s.Skipped += int64(start - advance)
			return start + n, tok, nil
		}
		s.Skipped += int64(start + n - advance)
		advance = start + n
	}
}

// shapeless reports whether tok is a whole frame without a CRC that does not
// have the shape of a telegram. Cut frames and frames with a CRC are left to
// [Parse], which reports them.
func shapeless(tok []byte) bool {
	bang := bytes.Index(tok, []byte("\n!"))
	if bang < 0 {
		return false
	}
	bang++
	for _, c := range tok[bang+1:] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' && c != 0 {
			return false // CRC digits, or something Parse reports
		}
	}
	return shapeError(tok[:bang]) != nil
}

// shapeError checks that body, a frame up to its "!" end line, looks like
// a telegram, the only check a frame without a CRC gets. IEC 62056-21 and
// DSMR fix the header as "/XXXZ" and an identification: three letters for
// the manufacturer (its FLAG id: "ISk", "KMP", "ESY"), one digit for the
// baud rate (5 on every P1 port), then printable text ("\2MT382-1004",
// " KA6U001660297912"). Every other line is empty, an OBIS object
// "A-B:C.D.E(…)" or a DSMR 2.2 value line "(…)", in printable ASCII, and at
// least one is an object. Binary noise that happens to hold "/" and "\n!"
// fails at once. It returns nil or a *FrameError naming the first byte
// that does not fit.
func shapeError(body []byte) error {
	nl := bytes.IndexByte(body, '\n')
	if nl < 0 {
		return &FrameError{Offset: len(body), Msg: "no CRC, and no line after the header"}
	}
	h := trimCR(body[:nl])
	ok := len(h) >= 5 && isLetter(h[1]) && isLetter(h[2]) && isLetter(h[3]) && h[4] >= '0' && h[4] <= '9'
	if bad := firstUnprintable(h[1:]); !ok || bad >= 0 {
		return &FrameError{Offset: 0, Msg: fmt.Sprintf("no CRC, and header %q is not \"/XXXZ\" plus identification (three letters, a baud digit, printable text)", clip(h, 24))}
	}
	objects := 0
	for pos := nl + 1; pos < len(body); {
		end := bytes.IndexByte(body[pos:], '\n')
		if end < 0 {
			end = len(body) - pos
		}
		l := trimCR(body[pos : pos+end])
		if bad := firstUnprintable(l); bad >= 0 {
			return &FrameError{Offset: pos + bad, Msg: fmt.Sprintf("no CRC, and byte %#02x is not printable ASCII", l[bad])}
		}
		if len(l) > 0 && l[0] != '(' {
			_, n, ok := parseOBIS(l)
			if !ok || n >= len(l) || l[n] != '(' {
				return &FrameError{Offset: pos, Msg: fmt.Sprintf("no CRC, and line %q is not an OBIS object A-B:C.D.E(…)", clip(l, 24))}
			}
			objects++
		}
		pos += end + 1
	}
	if objects == 0 {
		return &FrameError{Offset: len(body), Msg: "no CRC, and no OBIS object"}
	}
	return nil
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// firstUnprintable returns the index of the first byte of b outside
// printable ASCII (0x20-0x7e), or -1.
func firstUnprintable(b []byte) int {
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			return i
		}
	}
	return -1
}

// frameEnd returns the length of the frame at the start of data (data[0] is
// '/'), or 0 when more data is needed to tell.
func frameEnd(data []byte, atEOF bool) int {
	// Look for the end line "\n!" … "\n", or a new "/" that means this frame
	// was cut.
	limit := min(len(data), MaxTelegramSize)
	body := data[1:limit]
	next := bytes.IndexByte(body, '/')
	bang := bytes.Index(body, []byte("\n!"))
	if bang >= 0 && (next < 0 || bang < next) {
		end := 1 + bang + 2 // index just past '!'
		if nl := bytes.IndexByte(data[end:limit], '\n'); nl >= 0 {
			return end + nl + 1
		}
		// The CRC line has not ended yet. A "/" after the "!" starts the
		// next telegram: the CRC line was cut off or had no line end.
		if slash := bytes.IndexByte(data[end:limit], '/'); slash >= 0 {
			return end + slash
		}
		if end+8 <= limit {
			// "!" plus at most 4 hex digits and CR LF fit in 7 bytes;
			// anything longer is not a CRC line. Hand it over as is.
			return end + 7
		}
	} else if next >= 0 {
		// A new telegram began before this one ended.
		return 1 + next
	}
	if len(data) >= MaxTelegramSize {
		return MaxTelegramSize
	}
	if atEOF {
		return len(data)
	}
	return 0
}
