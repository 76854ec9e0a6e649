package parser

import "bytes"

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
func (s *Splitter) Split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	start := bytes.IndexByte(data, '/')
	if start < 0 {
		// All garbage: drop it, keep nothing buffered.
		s.Skipped += int64(len(data))
		return len(data), nil, nil
	}
	// Skip the garbage and frame in the same call: at EOF a bufio.Scanner
	// stops at the first call that returns no token, so a skip-only answer
	// there would lose the telegram behind the garbage.
	n := frameEnd(data[start:], atEOF)
	if n == 0 {
		if start > 0 {
			s.Skipped += int64(start)
		}
		return start, nil, nil
	}
	s.Skipped += int64(start)
	return start + n, data[start : start+n], nil
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
