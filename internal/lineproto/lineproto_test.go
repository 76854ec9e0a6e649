package lineproto

import (
	"testing"
	"time"
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
