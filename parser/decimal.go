package parser

import (
	"errors"
	"math"
	"math/bits"
	"strconv"
)

// Decimal is an exact decimal number, Int × 10^-Scale. Registers are kept as
// Decimals so that "001234.567" stays 1234.567 all the way to InfluxDB and
// to JSON, without binary floating-point rounding on the way.
//
// The parser only makes Decimals of at most [MaxDigits] digits (|Int| <
// 10^18, Scale ≤ 18), and the arithmetic below keeps to that range or
// returns [ErrDecimalRange]: a result is exact or it is an error, never a
// wrapped integer. Formatting (String, AppendText, Float64) accepts any
// Decimal, in range or not, and never panics.
type Decimal struct {
	Int   int64
	Scale uint8 // number of digits after the decimal point, at most 18
}

// MaxDigits bounds the digits of a Decimal (leading zeros not counted), so
// that Int never overflows and Scale stays within pow10.
const MaxDigits = 18

// maxInt is the largest |Int| of a Decimal of MaxDigits digits.
const maxInt = 999_999_999_999_999_999

// ErrDecimalRange is returned by Decimal arithmetic whose exact result does
// not fit MaxDigits digits: too large, or too many digits after the point.
var ErrDecimalRange = errors.New("decimal out of range: more than 18 digits")

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

var pow10f = [...]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// Float64 returns the nearest float64. Because both Int and 10^Scale are exact
// in a float64 for every register a meter sends, the division is correctly
// rounded and formats back to the same digits (1234.567, not 1234.5669999).
func (d Decimal) Float64() float64 {
	if int(d.Scale) < len(pow10f) {
		return float64(d.Int) / pow10f[d.Scale]
	}
	return float64(d.Int) / math.Pow10(int(d.Scale))
}

// String returns the exact decimal text, with Scale digits after the point.
func (d Decimal) String() string {
	return string(d.AppendText(nil))
}

// AppendText appends the exact decimal text of d to b (no exponent, Scale
// digits after the point, no leading zeros) and returns the extended slice.
// Every Decimal has such a text, so this never fails.
func (d Decimal) AppendText(b []byte) []byte {
	var tmp [20]byte
	var digits []byte
	if d.Int < 0 {
		b = append(b, '-')
		// uint64 holds -MinInt64; the digits are those of |Int|.
		digits = strconv.AppendUint(tmp[:0], uint64(-(d.Int+1))+1, 10)
	} else {
		digits = strconv.AppendInt(tmp[:0], d.Int, 10)
	}
	s := int(d.Scale)
	if s == 0 {
		return append(b, digits...)
	}
	if len(digits) <= s {
		b = append(b, '0', '.')
		for i := len(digits); i < s; i++ {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	b = append(b, digits[:len(digits)-s]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-s:]...)
}

// valid reports whether d is within the Decimal range.
func (d Decimal) valid() bool {
	return d.Scale <= MaxDigits && d.Int >= -maxInt && d.Int <= maxInt
}

// scaleTo returns d with Scale s ≥ d.Scale, the same number, or false when
// Int would leave the range.
func (d Decimal) scaleTo(s uint8) (Decimal, bool) {
	if s > MaxDigits || d.Scale > s {
		return d, false
	}
	p := pow10[s-d.Scale]
	if d.Int > maxInt/p || d.Int < -maxInt/p {
		return d, false
	}
	return Decimal{Int: d.Int * p, Scale: s}, true
}

// Add returns d + e at the larger of the two scales, or ErrDecimalRange
// when an operand is out of range or the exact sum has more than MaxDigits
// digits.
func (d Decimal) Add(e Decimal) (Decimal, error) {
	if !d.valid() || !e.valid() {
		return Decimal{}, ErrDecimalRange
	}
	s := max(d.Scale, e.Scale)
	d, ok1 := d.scaleTo(s)
	e, ok2 := e.scaleTo(s)
	if !ok1 || !ok2 {
		return Decimal{}, ErrDecimalRange
	}
	// Both are within ±(10^18-1): their sum cannot overflow an int64.
	r := Decimal{Int: d.Int + e.Int, Scale: s}
	if !r.valid() {
		return Decimal{}, ErrDecimalRange
	}
	return r, nil
}

// Sub returns d − e as Add does.
func (d Decimal) Sub(e Decimal) (Decimal, error) {
	if !e.valid() {
		return Decimal{}, ErrDecimalRange
	}
	return d.Add(e.Neg())
}

// Neg returns -d. For a Decimal in range the result is in range.
func (d Decimal) Neg() Decimal { return Decimal{Int: -d.Int, Scale: d.Scale} }

// Cmp compares d and e exactly, whatever their scales and range, and
// returns -1, 0 or +1 as d is less than, equal to or greater than e.
func (d Decimal) Cmp(e Decimal) int {
	switch {
	case d.Int < 0 && e.Int >= 0:
		return -1
	case d.Int >= 0 && e.Int < 0:
		return 1
	case d.Int < 0:
		return cmpAbs(e, d)
	}
	return cmpAbs(d, e)
}

// cmpAbs compares |d| and |e|: the one with the smaller scale is brought to
// the other's in 128 bits. Once that needs more than 64 bits it exceeds the
// other, which is an int64.
func cmpAbs(d, e Decimal) int {
	a, b := abs64(d.Int), abs64(e.Int)
	sign := 1
	if d.Scale > e.Scale {
		a, b, sign = b, a, -1
		d, e = e, d
	}
	for s := d.Scale; s < e.Scale; {
		k := min(e.Scale-s, 18)
		hi, lo := bits.Mul64(a, uint64(pow10[k]))
		if hi != 0 {
			return sign
		}
		a, s = lo, s+k
	}
	return sign * cmpU(a, b)
}

func abs64(v int64) uint64 {
	if v < 0 {
		return uint64(-(v + 1)) + 1
	}
	return uint64(v)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Shift returns d × 10^n exactly: n > 0 moves the point right (kW to W), n <
// 0 left (Wh to kWh). Trailing zero digits are given up where the result
// would otherwise need more than MaxDigits digits; when it still does, the
// result is ErrDecimalRange.
func (d Decimal) Shift(n int) (Decimal, error) {
	if !d.valid() || n > MaxDigits || n < -MaxDigits {
		return Decimal{}, ErrDecimalRange
	}
	for ; n > 0; n-- {
		if d.Scale > 0 {
			d.Scale--
			continue
		}
		if d.Int > maxInt/10 || d.Int < -maxInt/10 {
			return Decimal{}, ErrDecimalRange
		}
		d.Int *= 10
	}
	d.Scale += uint8(-n)
	return d.fitScale(MaxDigits)
}

// fitScale drops trailing zero digits after the point until d has at most s
// of them, and returns ErrDecimalRange when a non-zero digit is in the way.
func (d Decimal) fitScale(s uint8) (Decimal, error) {
	for d.Scale > s && d.Int%10 == 0 {
		d.Int /= 10
		d.Scale--
	}
	if d.Scale > s {
		return Decimal{}, ErrDecimalRange
	}
	return d, nil
}

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
	// Past MaxDigits, Int may have wrapped: it is not returned.
	if i == start || digits+frac > MaxDigits {
		return Decimal{}, i, false
	}
	d.Scale = uint8(frac)
	if neg {
		d.Int = -d.Int
	}
	return d, i, true
}
