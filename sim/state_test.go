package sim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

// TestMeterStateAcrossRestarts runs a meter for an hour, "restarts" it (a new
// Meter from the same config and state file) ten minutes later, and checks
// that its first telegram goes on from the last one of the first run: no
// register goes backwards, none jumps. Without the state file the new meter
// starts from its seed's history again, below where the first run ended.
func TestMeterStateAcrossRestarts(t *testing.T) {
	state := filepath.Join(t.TempDir(), "be.state")
	cfg := sim.MeterConfig{Profile: sim.ProfileBE3, Water: true, SolarKWp: 4, StateFile: state}
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, brussels)
	regs := func(r sim.Reading) [7]parser.Decimal {
		var out [7]parser.Decimal
		for i, f := range []parser.Field{parser.TakenT1, parser.TakenT2, parser.InjectedT1, parser.InjectedT2} {
			out[i], _ = r.Get(f)
		}
		out[4], out[5] = r.Gas.Value, r.Water.Value
		return out
	}
	first := newMeter(t, cfg)
	var last sim.Sent
	for s := 0; s <= 3600; s += 10 {
		last = first.Render(t0.Add(time.Duration(s) * time.Second))
	}
	before := regs(last.Reading)
	seeded := regs(newMeter(t, sim.MeterConfig{Profile: sim.ProfileBE3, Water: true, SolarKWp: 4}).Render(t0).Reading)
	if before == seeded {
		t.Fatal("an hour of midday moved no register: the test would prove nothing")
	}

	again := newMeter(t, cfg)
	after := regs(again.Render(t0.Add(70 * time.Minute)).Reading)
	if after != before {
		t.Errorf("after a restart: registers %v, want %v (where the first run stopped)", after, before)
	}
	b, _ := os.ReadFile(state)
	if !strings.HasPrefix(string(b), "p1sim-registers 1 ") {
		t.Errorf("state file %q", b)
	}

	for _, bad := range []string{"garbage\n", "p1sim-registers 1 1 2 3\n", "p1sim-registers 1 1 2 3 4 -5 6\n"} {
		if err := os.WriteFile(state, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := sim.NewMeter(cfg); err == nil || !strings.Contains(err.Error(), state) {
			t.Errorf("state %q: error %v, want one naming the file", bad, err)
		}
	}
}
