// Package lineproto appends InfluxDB line protocol without maps, reflection
// or per-field allocations. It is shared by ingest (p1, p1_mbus, p1_peak,
// p1_gateway points) and rollup (p1_energy points), which both hand lines to
// the same durable writer.
//
// A line is built in order: Measurement, then Tag for each tag (sorted by key
// for best InfluxDB performance), then one or more Field* calls, then End with
// the timestamp. Builder does not validate that order; tests do.
package lineproto

import (
	"strconv"
	"time"
)

// Builder appends lines to Buf. The zero value is ready to use; Reset keeps
// the capacity so a Builder reused per cycle does not allocate.
type Builder struct {
	Buf    []byte
	fields int // fields written on the current line
}

// Reset empties the buffer, keeping its capacity.
func (b *Builder) Reset() { b.Buf = b.Buf[:0]; b.fields = 0 }

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
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' {
			b.Buf = append(b.Buf, '\\')
		}
		b.Buf = append(b.Buf, c)
	}
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
	escKey                // commas, equals signs and spaces
)

func appendEscaped(dst []byte, s string, kind int) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ',', ' ':
			dst = append(dst, '\\')
		case '=':
			if kind == escKey {
				dst = append(dst, '\\')
			}
		case '\n', '\r', '\t':
			// Line protocol cannot carry these in names; a space keeps the
			// line parseable and the value recognisable.
			dst = append(dst, '\\', ' ')
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
