// Package lineproto appends InfluxDB line protocol without maps, reflection
// or per-field allocations. It is shared by ingest (p1, p1_mbus, p1_peak,
// p1_gateway points) and rollup (p1_energy points), which both hand lines to
// the same durable writer.
//
// A line is built in order: Measurement, then Tag for each tag (sorted by key
// for best InfluxDB performance), then one or more Field* calls, then End with
// the timestamp. Builder does not validate that order; tests do.
//
// Every name, tag value and string field is written so that InfluxDB (1.8,
// 2.x, and the reference parser github.com/influxdata/line-protocol/v2) reads
// back a line, and the same value, whatever bytes a meter sent:
//
//   - commas and spaces (and equals signs in keys and tag values) are escaped
//     with a backslash; a backslash inside a name is written as it is, since
//     line protocol only reads it as an escape before those characters, and
//     \\, then reads as a backslash and an escaped comma;
//   - a backslash at the end of a name, key or tag value would escape the
//     comma, equals sign or space that follows it, and line protocol has no
//     way to write it there (\\ is not an escape outside strings), so it is
//     replaced by U+FFFD;
//   - control characters (0x00-0x1F, 0x7F) and bytes that are not UTF-8 are
//     replaced by U+FFFD everywhere, strings included: a newline ends a line
//     and cannot be escaped in names, InfluxDB 2.x refuses the others in tags,
//     and 1.8 and 2.x read escapes such as \n in strings differently.
//     Replacing rather than refusing keeps the point, and the value stays
//     recognisable; gateway names, the one tag a user chooses, are refused at
//     configuration instead (cmd/p1logger), so only meter-sent text is ever
//     replaced;
//   - string fields escape double quotes and backslashes.
package lineproto

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Builder appends lines to Buf. The zero value is ready to use; Reset keeps
// the capacity so a Builder reused per cycle does not allocate.
type Builder struct {
	Buf    []byte
	fields int // fields written on the current line
}

// Reset empties the buffer, keeping its capacity.
func (b *Builder) Reset() { b.Buf = b.Buf[:0]; b.fields = 0 }

// Truncate drops what was appended after the first n bytes, which must end a
// line (n is a Len taken between lines): a caller that fails halfway through
// a line takes it back this way.
func (b *Builder) Truncate(n int) { b.Buf = b.Buf[:n]; b.fields = 0 }

// Len returns the number of bytes buffered.
func (b *Builder) Len() int { return len(b.Buf) }

// Measurement starts a new line.
func (b *Builder) Measurement(name string) {
	b.fields = 0
	b.Buf = appendEscaped(b.Buf, name, escMeasurement)
}

// Tag appends ",key=value". An empty value is skipped: InfluxDB rejects
// empty tag values, and DESIGN.md says such tags are omitted.
func (b *Builder) Tag(key, value string) {
	if value == "" {
		return
	}
	b.Buf = append(b.Buf, ',')
	b.Buf = appendEscaped(b.Buf, key, escKey)
	b.Buf = append(b.Buf, '=')
	b.Buf = appendEscaped(b.Buf, value, escKey)
}

func (b *Builder) fieldKey(key string) {
	if b.fields == 0 {
		b.Buf = append(b.Buf, ' ')
	} else {
		b.Buf = append(b.Buf, ',')
	}
	b.fields++
	b.Buf = appendEscaped(b.Buf, key, escKey)
	b.Buf = append(b.Buf, '=')
}

// FieldFloat appends a float field in the shortest text that reads back as v.
func (b *Builder) FieldFloat(key string, v float64) {
	b.fieldKey(key)
	b.Buf = strconv.AppendFloat(b.Buf, v, 'g', -1, 64)
}

// FieldDecimalText appends a float field whose value is already exact decimal
// text (such as parser.Decimal.AppendText output). The text must be a number.
func (b *Builder) FieldDecimalText(key string, text []byte) {
	b.fieldKey(key)
	b.Buf = append(b.Buf, text...)
}

// FieldInt appends an integer field ("12i").
func (b *Builder) FieldInt(key string, v int64) {
	b.fieldKey(key)
	b.Buf = strconv.AppendInt(b.Buf, v, 10)
	b.Buf = append(b.Buf, 'i')
}

// FieldBool appends a boolean field.
func (b *Builder) FieldBool(key string, v bool) {
	b.fieldKey(key)
	b.Buf = strconv.AppendBool(b.Buf, v)
}

// FieldString appends a string field, quoted and escaped.
func (b *Builder) FieldString(key, v string) {
	b.fieldKey(key)
	b.Buf = append(b.Buf, '"')
	b.Buf = appendEscaped(b.Buf, v, escString)
	b.Buf = append(b.Buf, '"')
}

// Fields reports how many fields the current line has; a line with none must
// not be ended (InfluxDB rejects it), so callers check before End.
func (b *Builder) Fields() int { return b.fields }

// End appends the timestamp in nanoseconds and the newline.
func (b *Builder) End(t time.Time) {
	b.Buf = append(b.Buf, ' ')
	b.Buf = strconv.AppendInt(b.Buf, t.UnixNano(), 10)
	b.Buf = append(b.Buf, '\n')
	b.fields = 0
}

const (
	escMeasurement = iota // commas and spaces
	escKey                // commas, equals signs and spaces (keys and tag values)
	escString             // double quotes and backslashes, inside quotes
)

// replacement is what stands for a byte line protocol cannot carry (see the
// package comment): U+FFFD, the Unicode replacement character.
const replacement = "\uFFFD"

// appendEscaped appends s to dst escaped as kind says, replacing what cannot
// be escaped. It allocates only to grow dst.
func appendEscaped(dst []byte, s string, kind int) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, replacement...)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
			continue
		}
		i++
		switch {
		case c < 0x20 || c == 0x7f:
			dst = append(dst, replacement...)
			continue
		case kind == escString:
			if c == '"' || c == '\\' {
				dst = append(dst, '\\')
			}
		case c == ',' || c == ' ' || (c == '=' && kind == escKey):
			dst = append(dst, '\\')
		case c == '\\' && i == len(s):
			dst = append(dst, replacement...)
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
