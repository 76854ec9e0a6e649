package rollup

import (
	"math"
	"strconv"
	"strings"

	"github.com/p1logger/p1logger/parser"
)

// Register arithmetic is done in parser.Decimal so that a day of
// 34.444 kWh is written as 34.444, never 34.443999999997.

// sub returns a − b, or an error when the exact difference does not fit a
// Decimal (registers are bounded by the parser, so only a bug gets there).
func sub(a, b parser.Decimal) (parser.Decimal, error) { return a.Sub(b) }

// less reports a < b exactly, whatever their scales.
func less(a, b parser.Decimal) bool { return a.Cmp(b) < 0 }

// normal drops trailing zero digits after the point, so that equal values
// have equal text ("1.500" and "1.5" both print as "1.5").
func normal(d parser.Decimal) parser.Decimal {
	for d.Scale > 0 && d.Int%10 == 0 {
		d.Int /= 10
		d.Scale--
	}
	return d
}

// maxFloatScale bounds the digits kept after the point when a float read
// back from InfluxDB is turned into a Decimal. Registers have at most 7.
const maxFloatScale = 9

// decFromFloat returns the exact decimal that f was written as. InfluxDB
// stores the float64 nearest to the register's text, and the shortest text
// that reads back as that float64 is the register's text again.
func decFromFloat(f float64) (parser.Decimal, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1e9 {
		return parser.Decimal{}, false
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 > maxFloatScale {
		s = strconv.FormatFloat(f, 'f', maxFloatScale, 64)
	}
	var d parser.Decimal
	neg, dot := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '-':
			neg = true
		case c == '.':
			dot = true
		default:
			d.Int = d.Int*10 + int64(c-'0')
			if dot {
				d.Scale++
			}
		}
	}
	if neg {
		d.Int = -d.Int
	}
	return normal(d), true
}

// decFromDiff returns a difference of two registers computed in float64 by
// InfluxDB (difference()) as a Decimal rounded to 1e-7: both registers have
// at most 7 decimals, and the float error of the subtraction is far below
// half of that step for any register below 1e8.
func decFromDiff(f float64) (parser.Decimal, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1e9 {
		return parser.Decimal{}, false
	}
	return normal(parser.Decimal{Int: int64(math.Round(f * 1e7)), Scale: 7}), true
}
