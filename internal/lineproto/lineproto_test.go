package lineproto

import (
	"testing"
	"time"

	"github.com/p1logger/p1logger/internal/lptest"
)

func TestBuilder(t *testing.T) {
	var b Builder
	ts := time.Unix(1700000000, 5)
	b.Measurement("p1")
	b.Tag("gateway", "home, 1=x")
	b.Tag("meter_id", "")
	b.FieldFloat("taken_kwh", 1234.567)
	b.FieldInt("tariff", 2)
	b.FieldBool("connected", true)
	b.FieldString("peak_at", `a"b\c`)
	b.FieldDecimalText("power_w", []byte("611"))
	b.End(ts)
	got := string(b.Buf)
	want := `p1,gateway=home\,\ 1\=x taken_kwh=1234.567,tariff=2i,connected=true,peak_at="a\"b\\c",power_w=611 1700000000000000005` + "\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	b.Reset()
	if b.Len() != 0 || b.Fields() != 0 {
		t.Fatalf("Reset left %d bytes, %d fields", b.Len(), b.Fields())
	}
}

func TestBuilderNoAllocs(t *testing.T) {
	var b Builder
	ts := time.Unix(1700000000, 0)
	build := func() {
		b.Reset()
		b.Measurement("p1")
		b.Tag("gateway", "home")
		b.FieldFloat("taken_kwh", 1234.567)
		b.FieldInt("tariff", 2)
		b.End(ts)
	}
	build()
	if n := testing.AllocsPerRun(100, build); n != 0 {
		t.Fatalf("allocs per line = %v, want 0", n)
	}
}

// TestBuilderHostile writes names, tags and strings that a meter could send
// and reads them back with the reference parser: every line must parse, and
// each value must come back as sent, except for what the package comment
// says is replaced.
func TestBuilderHostile(t *testing.T) {
	const r = "\uFFFD"
	tests := []struct {
		name      string
		value     string // tag value and string field
		wantTag   string // as read back
		wantField string
	}{
		{"plain", "E0031003000000", "E0031003000000", "E0031003000000"},
		{"trailing backslash", `AB\`, "AB" + r, `AB\`},
		{"two trailing backslashes", `AB\\`, `AB\` + r, `AB\\`},
		{"only a backslash", `\`, r, `\`},
		{"backslash before comma", `a\,b`, `a\,b`, `a\,b`},
		{"backslash before space", `a\ b`, `a\ b`, `a\ b`},
		{"backslash before equals", `a\=b`, `a\=b`, `a\=b`},
		{"backslash before quote", `a\"b`, `a\"b`, `a\"b`},
		{"inner backslash", `a\b`, `a\b`, `a\b`},
		{"escapables", `x, y=z"`, `x, y=z"`, `x, y=z"`},
		{"newline", "a\nb", "a" + r + "b", "a" + r + "b"},
		{"carriage return", "a\rb\r\n", "a" + r + "b" + r + r, "a" + r + "b" + r + r},
		{"tab and nul", "\ta\x00", r + "a" + r, r + "a" + r},
		{"delete", "a\x7f", "a" + r, "a" + r},
		{"backslash then newline", "a\\\n", `a\` + r, `a\` + r},
		{"not utf-8", "a\xff\xfeb", "a" + r + r + "b", "a" + r + r + "b"},
		{"cut utf-8", "a\xe2\x82", "a" + r + r, "a" + r + r},
		{"utf-8", "m³ Zähler", "m³ Zähler", "m³ Zähler"},
		{"escape-looking", `\n\t`, `\n\t`, `\n\t`},
		{"hash first", "#x", "#x", "#x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Builder
			ts := time.Unix(1700000000, 7)
			b.Measurement("p1")
			b.Tag("a", "first")
			b.Tag("meter_id", tt.value)
			b.Tag("unit", tt.value)
			b.FieldString("s", tt.value)
			b.FieldInt("n", 1)
			b.End(ts)
			// A second line proves the first ended where it should.
			b.Measurement("p1")
			b.Tag("meter_id", tt.value)
			b.FieldFloat("x", 2.5)
			b.End(ts)
			lines, err := lptest.Decode(b.Buf)
			if err != nil {
				t.Fatalf("reference parser: %v\nin %q", err, b.Buf)
			}
			if len(lines) != 2 {
				t.Fatalf("got %d lines, want 2, in %q", len(lines), b.Buf)
			}
			l := lines[0]
			for key, want := range map[string]string{"a": "first", "meter_id": tt.wantTag, "unit": tt.wantTag} {
				if got := l.Tags[key]; got != want {
					t.Errorf("tag %s: got %q, want %q (line %q)", key, got, want, b.Buf)
				}
			}
			if len(l.Tags) != 3 {
				t.Errorf("got tags %q, want 3", l.Tags)
			}
			if got := l.Fields["s"]; got != tt.wantField {
				t.Errorf("field s: got %q, want %q (line %q)", got, tt.wantField, b.Buf)
			}
			if got := l.Fields["n"]; got != int64(1) {
				t.Errorf("field n: got %v, want 1", got)
			}
			if !l.Time.Equal(ts) {
				t.Errorf("time: got %v, want %v", l.Time, ts)
			}
			if got := lines[1].Tags["meter_id"]; got != tt.wantTag {
				t.Errorf("second line tag: got %q, want %q", got, tt.wantTag)
			}
			if got := lines[1].Fields["x"]; got != 2.5 {
				t.Errorf("second line field x: got %v, want 2.5", got)
			}
		})
	}
}

// TestBuilderHostileNames escapes measurement names and keys the same way
// (p1logger's are constants today; the rule is the same for every name).
func TestBuilderHostileNames(t *testing.T) {
	var b Builder
	b.Measurement("m, x\\")
	b.Tag("k=, \\", "v")
	b.FieldFloat("f=, \\", 1)
	b.End(time.Unix(0, 1))
	lines, err := lptest.Decode(b.Buf)
	if err != nil {
		t.Fatalf("reference parser: %v\nin %q", err, b.Buf)
	}
	l := lines[0]
	if got, want := l.Measurement, "m, x\uFFFD"; got != want {
		t.Errorf("measurement: got %q, want %q", got, want)
	}
	if got := l.Tags["k=, \uFFFD"]; got != "v" {
		t.Errorf("tags: got %q", l.Tags)
	}
	if got := l.Fields["f=, \uFFFD"]; got != 1.0 {
		t.Errorf("fields: got %v", l.Fields)
	}
}
