package parser

import (
	"math"
	"strconv"
)

// Decimal is an exact decimal number, Int × 10^-Scale. Registers are kept as
// Decimals so that "001234.567" stays 1234.567 all the way to InfluxDB and
// to JSON, without binary floating-point rounding on the way.
type Decimal struct {
	Int   int64
	Scale uint8 // number of digits after the decimal point, at most 18
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

var pow10f = [...]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// Float64 returns the nearest float64. Because both Int and 10^Scale are exact
// in a float64 for every register a meter sends, the division is correctly
// rounded and formats back to the same digits (1234.567, not 1234.5669999).
func (d Decimal) Float64() float64 {
	return float64(d.Int) / pow10f[d.Scale]
}

// String returns the exact decimal text, with Scale digits after the point.
func (d Decimal) String() string {
	return string(d.AppendText(nil))
}

// AppendText appends the exact decimal text of d to b (no exponent, Scale
// digits after the point, no leading zeros) and returns the extended slice.
func (d Decimal) AppendText(b []byte) []byte {
	v := d.Int
	if v < 0 {
		b = append(b, '-')
		if v == math.MinInt64 {
			return append(b, "9223372036854775808"...)
		}
		v = -v
	}
	if d.Scale == 0 {
		return strconv.AppendInt(b, v, 10)
	}
	p := pow10[d.Scale]
	b = strconv.AppendInt(b, v/p, 10)
	b = append(b, '.')
	frac := v % p
	var tmp [20]byte
	digits := strconv.AppendInt(tmp[:0], frac, 10)
	for i := len(digits); i < int(d.Scale); i++ {
		b = append(b, '0')
	}
	return append(b, digits...)
}

// Add returns d + e at the larger of the two scales.
func (d Decimal) Add(e Decimal) Decimal {
	for d.Scale < e.Scale {
		d.Int *= 10
		d.Scale++
	}
	for e.Scale < d.Scale {
		e.Int *= 10
		e.Scale++
	}
	return Decimal{Int: d.Int + e.Int, Scale: d.Scale}
}

// Neg returns -d.
func (d Decimal) Neg() Decimal { return Decimal{Int: -d.Int, Scale: d.Scale} }

// shift multiplies d by 10^n exactly (n may be negative: the scale grows).
func (d Decimal) shift(n int) Decimal {
	for ; n > 0; n-- {
		if d.Scale > 0 {
			d.Scale--
		} else {
			d.Int *= 10
		}
	}
	for ; n < 0; n++ {
		d.Scale++
	}
	return d
}

// maxDigits bounds the digits of a Decimal so that Int never overflows and
// Scale stays within the tables above.
const maxDigits = 18

// parseDecimal parses an optionally signed decimal number with at most 18
// digits ("001234.567", "-00.024", "000"). ok is false for anything else.
func parseDecimal(s []byte) (d Decimal, ok bool) {
	d, n, ok := scanDecimal(s)
	if n != len(s) {
		return Decimal{}, false
	}
	return d, ok
}

// digitRun reads the digits of s from i on into v, as v×10+digit each, and
// returns where they end and the new v.
func digitRun(s []byte, i int, v int64) (int, int64) {
	for i < len(s) && s[i]-'0' <= 9 {
		v = v*10 + int64(s[i]-'0')
		i++
	}
	return i, v
}

// scanDecimal reads a number as parseDecimal does from the start of s, up to
// the first byte that cannot continue it, and returns how many bytes that
// was; ok tells whether those bytes are a number parseDecimal accepts.
func scanDecimal(s []byte) (d Decimal, n int, ok bool) {
	i := 0
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		i++
	}
	start := i
	// Leading zeros do not count against precision; every digit after
	// them and after the point does.
	for i < len(s) && s[i] == '0' {
		i++
	}
	sig := i
	i, d.Int = digitRun(s, i, 0)
	digits, frac := i-sig, 0
	if i < len(s) && s[i] == '.' {
		f := i + 1
		i, d.Int = digitRun(s, f, d.Int)
		frac = i - f
		if frac == 0 {
			// "12." is not a number a meter sends; refuse rather than guess.
			return Decimal{}, i, false
		}
	}
	// Past maxDigits, Int may have wrapped: it is not returned.
	if i == start || digits+frac > maxDigits {
		return Decimal{}, i, false
	}
	d.Scale = uint8(frac)
	if neg {
		d.Int = -d.Int
	}
	return d, i, true
}
