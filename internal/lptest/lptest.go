// Package lptest reads line protocol back with an independent parser, the
// reference Decoder of github.com/influxdata/line-protocol/v2, so that tests
// check what p1logger writes against InfluxDB's own reading of it rather than
// against p1logger's encoder. Only tests import it.
package lptest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Line is one decoded line.
type Line struct {
	Measurement string
	Tags        map[string]string
	// Fields holds float64, int64, uint64, string or bool values.
	Fields map[string]any
	// Raw holds each field's value as written (strings unquoted, still
	// escaped), for tests that compare the exact decimal text.
	Raw map[string]string
	// FieldOrder lists the field keys in the order they were written.
	FieldOrder []string
	Time       time.Time
}

// Tag returns the value of tag key, and whether the line has it.
func (l Line) Tag(key string) (string, bool) { v, ok := l.Tags[key]; return v, ok }

// Decode parses buf, which must be whole lines of nanosecond-precision line
// protocol, each with a timestamp. It returns the lines, or the first syntax
// error with the number of the line it is on.
func Decode(buf []byte) ([]Line, error) {
	d := lineprotocol.NewDecoderWithBytes(buf)
	var out []Line
	for n := 1; d.Next(); n++ {
		l, err := decodeLine(d)
		if err != nil {
			return out, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, l)
	}
	if err := d.Err(); err != nil {
		return out, err
	}
	return out, nil
}

func decodeLine(d *lineprotocol.Decoder) (Line, error) {
	m, err := d.Measurement()
	if err != nil {
		return Line{}, err
	}
	l := Line{Measurement: string(m), Tags: map[string]string{}, Fields: map[string]any{}, Raw: map[string]string{}}
	for {
		k, v, err := d.NextTag()
		if err != nil {
			return l, err
		}
		if k == nil {
			break
		}
		if _, dup := l.Tags[string(k)]; dup {
			return l, fmt.Errorf("tag %q twice", k)
		}
		l.Tags[string(k)] = string(v)
	}
	for {
		k, kind, raw, err := d.NextFieldBytes()
		if err != nil {
			return l, err
		}
		if k == nil {
			break
		}
		if _, dup := l.Fields[string(k)]; dup {
			return l, fmt.Errorf("field %q twice", k)
		}
		v, err := lineprotocol.NewValueFromBytes(kind, raw)
		if err != nil {
			return l, fmt.Errorf("field %q: %w", k, err)
		}
		l.Fields[string(k)] = v.Interface()
		l.Raw[string(k)] = string(raw)
		l.FieldOrder = append(l.FieldOrder, string(k))
	}
	if len(l.Fields) == 0 {
		return l, fmt.Errorf("no fields")
	}
	tb, err := d.TimeBytes()
	if err != nil {
		return l, err
	}
	if tb == nil {
		return l, fmt.Errorf("no timestamp")
	}
	ns, err := strconv.ParseInt(string(tb), 10, 64)
	if err != nil {
		return l, fmt.Errorf("timestamp %q: %w", tb, err)
	}
	l.Time = time.Unix(0, ns)
	return l, nil
}
