package flux

import (
	"io/fs"
	"math"
	"strings"
	"testing"
	"time"
)

const src = `import "math"

option params = {
    // a comment
    bucket: "p1",
    price: 0.32,
    n: 3,
    on: false,
    start: 2026-02-01T00:00:00+01:00,
}

x = params.bucket
`

func TestSetParams(t *testing.T) {
	start := time.Date(2025, 10, 1, 0, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	got, err := SetParams(src, map[string]any{
		"bucket": `p1/"auto"\gen`,
		"price":  2.0,
		"n":      int64(-4),
		"on":     true,
		"start":  start,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer(
		`bucket: "p1",`, `bucket: "p1/\"auto\"\\gen",`,
		`price: 0.32,`, `price: 2.0,`,
		`n: 3,`, `n: -4,`,
		`on: false,`, `on: true,`,
		`start: 2026-02-01T00:00:00+01:00,`, `start: 2025-10-01T00:00:00+02:00,`,
	).Replace(src)
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSetParamsErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		src    string
		params map[string]any
		want   string
	}{
		{"unknown name", src, map[string]any{"buckett": "x"}, `no parameter "buckett"`},
		{"no record", "x = 1\n", map[string]any{"bucket": "x"}, "no \"option params = {\" line"},
		{"unclosed", "option params = {\n    bucket: \"p1\",\n", map[string]any{"bucket": "x"}, "not closed"},
		{"interpolation", src, map[string]any{"bucket": "${x}"}, `contains "${"`},
		{"control character", src, map[string]any{"bucket": "a\tb"}, "control character"},
		{"NaN", src, map[string]any{"price": math.NaN()}, "not a Flux float"},
		{"type", src, map[string]any{"price": float32(1)}, "unsupported type float32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := SetParams(c.src, c.params)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestShippedQueries checks that every embedded query has a params record
// whose every parameter SetParams can find, by setting each to itself.
func TestShippedQueries(t *testing.T) {
	names, err := fs.Glob(Files, "*.flux")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 {
		t.Errorf("embedded %v, want the three billing queries", names)
	}
	for _, name := range names {
		q, err := Query(name, map[string]any{"bucket": "p1/autogen", "gateway": "home"})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.Contains(q, `bucket: "p1/autogen",`) {
			t.Errorf("%s: bucket not set", name)
		}
	}
	if _, err := Query("missing.flux", nil); err == nil {
		t.Error("Query of a missing file: no error")
	}
}
