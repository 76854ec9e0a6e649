// Package flux embeds the billing queries shipped in deploy/flux and sets
// their parameters, for p1logger report and the tests that prove the queries
// against a real InfluxDB.
//
// Every query starts with an "option params = {...}" record, one parameter per
// line as "name: value,", so that a user can edit it by hand and a program can
// replace values by name without a Flux parser.
package flux

import (
	"embed"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Files holds the shipped queries: monthly-bill.flux, daily-energy.flux and
// monthly-peaks.flux.
//
//go:embed *.flux
var Files embed.FS

// Query returns the embedded query name (such as "monthly-bill.flux") with
// the parameters in params set, as SetParams does. It returns an error if
// there is no such query or SetParams fails.
func Query(name string, params map[string]any) (string, error) {
	src, err := Files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("flux query %s: %w", name, err)
	}
	q, err := SetParams(string(src), params)
	if err != nil {
		return "", fmt.Errorf("flux query %s: %w", name, err)
	}
	return q, nil
}

var (
	paramsStart = regexp.MustCompile(`(?m)^option params = \{\s*$`)
	paramLine   = regexp.MustCompile(`^(\s*)([A-Za-z_][A-Za-z0-9_]*):\s*(.+?),\s*$`)
)

// SetParams returns src with the value of each parameter named in params
// replaced in its "option params = {...}" record. Values are Go strings, bools,
// ints, float64s (always written with a decimal point, so Flux reads a float)
// and time.Times (written as RFC 3339 instants). It returns an error, naming
// the parameter, if src has no params record, a name is not in it, or a value
// has another type.
func SetParams(src string, params map[string]any) (string, error) {
	loc := paramsStart.FindStringIndex(src)
	if loc == nil {
		return "", errors.New(`no "option params = {" line`)
	}
	end := strings.Index(src[loc[1]:], "\n}")
	if end < 0 {
		return "", errors.New(`"option params = {" is not closed by a "}" line`)
	}
	head, body, tail := src[:loc[1]], src[loc[1]:loc[1]+end], src[loc[1]+end:]

	lines := strings.Split(body, "\n")
	index := make(map[string]int)
	for i, l := range lines {
		if m := paramLine.FindStringSubmatch(l); m != nil {
			index[m[2]] = i
		}
	}
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names) // report the same error every run
	for _, name := range names {
		i, ok := index[name]
		if !ok {
			return "", fmt.Errorf("no parameter %q in option params", name)
		}
		lit, err := literal(params[name])
		if err != nil {
			return "", fmt.Errorf("parameter %s: %w", name, err)
		}
		m := paramLine.FindStringSubmatch(lines[i])
		lines[i] = m[1] + name + ": " + lit + ","
	}
	return head + strings.Join(lines, "\n") + tail, nil
}

// literal writes v as a Flux literal.
func literal(v any) (string, error) {
	switch v := v.(type) {
	case string:
		if strings.Contains(v, "${") {
			// Interpolation in Flux 2.x; Flux 0.65 has no escape for "$".
			return "", fmt.Errorf("string %q contains \"${\"", v)
		}
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range v {
			switch r {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case '\n':
				b.WriteString(`\n`)
			default:
				if r < 0x20 {
					return "", fmt.Errorf("string %q has a control character", v)
				}
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
		return b.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", fmt.Errorf("%v is not a Flux float", v)
		}
		s := strconv.FormatFloat(v, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s, nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	default:
		return "", fmt.Errorf("unsupported type %T; want string, bool, int, float64 or time.Time", v)
	}
}
