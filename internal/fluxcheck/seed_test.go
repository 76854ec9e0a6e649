package fluxcheck

import (
	"fmt"
	"time"
	_ "time/tzdata" // the seed's calendar must not depend on the test machine

	"github.com/p1logger/p1logger/internal/lineproto"
)

// gateway is one seeded P1 gateway: "home" is a Belgian three-phase meter
// with solar injection, a gas meter and capacity-tariff peaks; "garage" a
// one-phase meter with neither, whose gateway is down at the end.
type gateway struct {
	name    string
	meterID string
	phases  int
	belgian bool // gas on M-Bus, injection, p1_peak points
}

var gateways = []gateway{
	{name: "home", meterID: "1SAG1100000292", phases: 3, belgian: true},
	{name: "garage", meterID: "E0043007052870318", phases: 1},
}

// energy is one p1_energy point's values.
type energy struct {
	t1, t2, i1, i2, gas float64
}

func (e energy) add(o energy) energy {
	return energy{e.t1 + o.t1, e.t2 + o.t2, e.i1 + o.i1, e.i2 + o.i2, e.gas + o.gas}
}

// dayEnergy is what gateway g took, injected and burned on local date y-m-d.
// Every value is a multiple of 0.25, so sums are exact in float64 and in Flux.
func dayEnergy(g gateway, m time.Month, d int) energy {
	if !g.belgian {
		return energy{t1: 1 + 0.25*float64(d%3), t2: 0.5 + 0.25*float64(d%2)}
	}
	return energy{
		t1:  4 + 0.25*float64(d%8) + 0.5*float64(int(m)%3),
		t2:  3 + 0.5*float64(d%5),
		i1:  0.75 * float64(d%6),
		i2:  0.25 * float64(d%4),
		gas: 1.5 + 0.25*float64(d%7) + 0.25*float64(int(m)%4),
	}
}

// peakW is the Belgian gateway's capacity-tariff peak of month y-m, in W:
// 1800 to 3900, so some months lie below the 2.5 kW minimum.
func peakW(y int, m time.Month) float64 {
	return 1800 + 350*float64((y*12+int(m))%7)
}

// peakAt is when that peak's quarter-hour began, as the meter reports it.
func peakAt(y int, m time.Month, loc *time.Location) string {
	return time.Date(y, m, 10, 18, 15, 0, 0, loc).Format(time.RFC3339)
}

// seedMonths is how many months before now's month the p1_energy and p1_peak
// history starts: two years, so a bill of any month of the last year has its
// full 12-month peak window.
const seedMonths = 24

// seed returns line protocol for all five measurements as p1logger writes
// them, for both gateways, with now as the present in loc:
//   - p1_energy day points for every local day from seedMonths months before
//     now's month up to today, stamped at local midnight, and month points
//     (the sum of the month's days so far) stamped at the local 1st;
//   - p1_peak for each of those months (Belgian gateway);
//   - p1 every minute over the last three hours, p1_mbus gas every hour over
//     the last two days, p1_gateway every minute over the last three hours
//     (the one-phase gateway disconnected at the last).
func seed(now time.Time, loc *time.Location) []byte {
	var b lineproto.Builder
	now = now.In(loc)
	first := time.Date(now.Year(), now.Month()-seedMonths, 1, 0, 0, 0, 0, loc)
	for _, g := range gateways {
		for ms := first; !ms.After(now); ms = ms.AddDate(0, 1, 0) {
			next := ms.AddDate(0, 1, 0)
			var month energy
			for day := ms; day.Before(next) && !day.After(now); day = day.AddDate(0, 0, 1) {
				e := dayEnergy(g, day.Month(), day.Day())
				writeEnergy(&b, g, "day", day, e)
				month = month.add(e)
			}
			writeEnergy(&b, g, "month", ms, month)
			if g.belgian {
				b.Measurement("p1_peak")
				b.Tag("gateway", g.name)
				b.FieldString("peak_at", peakAt(ms.Year(), ms.Month(), loc))
				b.FieldFloat("peak_w", peakW(ms.Year(), ms.Month()))
				b.End(ms)
			}
		}

		const minutes = 180
		for i := 0; i < minutes; i++ {
			at := now.Add(-time.Duration(minutes-i) * time.Minute)
			writeReading(&b, g, i, at)
			b.Measurement("p1_gateway")
			b.Tag("gateway", g.name)
			b.FieldBool("connected", g.belgian || i < minutes-1)
			b.FieldInt("crc_errors", int64(i/60))
			b.FieldInt("parse_errors", 0)
			b.FieldInt("reconnects", 1)
			b.FieldInt("telegrams", int64(60*(i+1)))
			b.End(at)
		}
		if g.belgian {
			for i := 0; i < 48; i++ {
				b.Measurement("p1_mbus")
				b.Tag("channel", "1")
				b.Tag("gateway", g.name)
				b.Tag("kind", "gas")
				b.Tag("meter_id", "G0012345678901234")
				b.Tag("unit", "m3")
				b.FieldFloat("value", gasReading(i))
				b.End(now.Truncate(time.Hour).Add(-time.Duration(47-i) * time.Hour))
			}
		}
	}
	return b.Buf
}

// gasReading is the gas meter's i-th hourly reading, in m³.
func gasReading(i int) float64 { return 4321.25 + 0.125*float64(i) }

func writeEnergy(b *lineproto.Builder, g gateway, period string, at time.Time, e energy) {
	b.Measurement("p1_energy")
	b.Tag("gateway", g.name)
	b.Tag("period", period)
	if g.belgian {
		b.FieldFloat("gas_m3", e.gas)
	}
	b.FieldFloat("injected_kwh", e.i1+e.i2)
	b.FieldFloat("injected_t1_kwh", e.i1)
	b.FieldFloat("injected_t2_kwh", e.i2)
	b.FieldFloat("taken_kwh", e.t1+e.t2)
	b.FieldFloat("taken_t1_kwh", e.t1)
	b.FieldFloat("taken_t2_kwh", e.t2)
	b.End(at)
}

// reading is the i-th p1 point of gateway g: power in W, per phase too.
type reading struct {
	taken, injected float64
}

func readingAt(g gateway, i int) reading {
	if !g.belgian {
		return reading{taken: 120 + float64(i%4)*30}
	}
	r := reading{taken: 300 + float64(i%10)*150}
	if i%3 == 0 { // the sun comes out: injecting, taking nothing
		r = reading{injected: 900 + float64(i%5)*60}
	}
	return r
}

func writeReading(b *lineproto.Builder, g gateway, i int, at time.Time) {
	r := readingAt(g, i)
	b.Measurement("p1")
	b.Tag("gateway", g.name)
	b.Tag("meter_id", g.meterID)
	for p := 1; p <= g.phases; p++ {
		v := 229 + float64(p) + 0.5*float64(i%6)
		share := (r.taken + r.injected) / float64(g.phases)
		b.FieldFloat(fmt.Sprintf("current_l%d_a", p), float64(int(share/v*100))/100)
		b.FieldFloat(fmt.Sprintf("power_injected_l%d_w", p), r.injected/float64(g.phases))
		b.FieldFloat(fmt.Sprintf("power_taken_l%d_w", p), r.taken/float64(g.phases))
		b.FieldFloat(fmt.Sprintf("voltage_l%d_v", p), v)
	}
	if g.belgian {
		b.FieldFloat("demand_avg_w", 1500+float64(i%15)*40)
		b.FieldFloat("demand_max_month_w", 3200)
		b.FieldFloat("injected_kwh", 2345.5+0.01*float64(i))
		b.FieldFloat("injected_t1_kwh", 1345.5+0.01*float64(i))
		b.FieldFloat("injected_t2_kwh", 1000)
	}
	b.FieldFloat("power_injected_w", r.injected)
	b.FieldFloat("power_net_w", r.taken-r.injected)
	b.FieldFloat("power_taken_w", r.taken)
	b.FieldInt("tariff", int64(1+i/120))
	b.FieldFloat("taken_kwh", 8765.25+0.02*float64(i))
	b.FieldFloat("taken_t1_kwh", 4765.25+0.02*float64(i))
	b.FieldFloat("taken_t2_kwh", 4000)
	b.End(at)
}
