package sim

import (
	"strconv"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// appendTelegram appends the telegram for the meter's current time and state
// to b and records its values in r. Widths follow real meters of each
// profile: 000301.548*kWh, 00.338*kW, 232.9*V, 000.27*A, 00092.287*m3.
func (m *Meter) appendTelegram(b []byte, r *Reading) []byte {
	start := len(b)
	*r = Reading{Profile: m.cfg.Profile, Header: m.header, MeterID: m.id, CRC: m.lay.crc}
	b = append(b, '/')
	b = append(b, m.header...)
	b = append(b, "\r\n\r\n"...)
	switch m.cfg.Profile {
	case ProfileNL5:
		b = m.appendNL5(b, r)
	case ProfileNL22:
		b = m.appendNL22(b, r)
	default:
		b = m.appendBE(b, r)
	}
	b = append(b, '!')
	if m.lay.crc {
		crc := parser.CRC16(b[start:])
		const hex = "0123456789ABCDEF"
		b = append(b, hex[crc>>12], hex[crc>>8&15], hex[crc>>4&15], hex[crc&15])
	}
	return append(b, "\r\n"...)
}

// energy appends the four energy registers with intDigits before the point.
func (m *Meter) energy(b []byte, r *Reading, intDigits int) []byte {
	b = appendReg(b, "1-0:1.8.1(", m.taken[0], intDigits, 3, "*kWh)")
	b = appendReg(b, "1-0:1.8.2(", m.taken[1], intDigits, 3, "*kWh)")
	b = appendReg(b, "1-0:2.8.1(", m.injected[0], intDigits, 3, "*kWh)")
	b = appendReg(b, "1-0:2.8.2(", m.injected[1], intDigits, 3, "*kWh)")
	r.put(parser.TakenT1, m.taken[0], 3)
	r.put(parser.TakenT2, m.taken[1], 3)
	r.put(parser.Taken, m.taken[0]+m.taken[1], 3)
	r.put(parser.InjectedT1, m.injected[0], 3)
	r.put(parser.InjectedT2, m.injected[1], 3)
	r.put(parser.Injected, m.injected[0]+m.injected[1], 3)
	return b
}

func (m *Meter) tariff(b []byte, r *Reading) []byte {
	t := int64(m.tariffAt(m.last))
	b = appendReg(b, "0-0:96.14.0(", t, 4, 0, ")")
	r.put(parser.Tariff, t, 0)
	return b
}

func (m *Meter) clock(b []byte, r *Reading) []byte {
	b = append(b, "0-0:1.0.0("...)
	b = m.appendTime(b, m.last)
	b = append(b, ")\r\n"...)
	r.Time = m.last.In(m.loc)
	return b
}

// power appends 1.7.0 and 2.7.0 with intDigits and dec digits of kW.
func (m *Meter) power(b []byte, r *Reading, intDigits, dec int) []byte {
	div := int64(1)
	for range 3 - dec {
		div *= 10
	}
	b = appendReg(b, "1-0:1.7.0(", m.now.takenW/div, intDigits, dec, "*kW)")
	b = appendReg(b, "1-0:2.7.0(", m.now.injW/div, intDigits, dec, "*kW)")
	r.put(parser.PowerTaken, m.now.takenW, 0)
	r.put(parser.PowerInjected, m.now.injW, 0)
	r.put(parser.PowerNet, m.now.takenW-m.now.injW, 0)
	return b
}

var (
	phaseTaken    = [3]string{"1-0:21.7.0(", "1-0:41.7.0(", "1-0:61.7.0("}
	phaseInjected = [3]string{"1-0:22.7.0(", "1-0:42.7.0(", "1-0:62.7.0("}
	phaseVoltage  = [3]string{"1-0:32.7.0(", "1-0:52.7.0(", "1-0:72.7.0("}
	phaseCurrent  = [3]string{"1-0:31.7.0(", "1-0:51.7.0(", "1-0:71.7.0("}
	phaseSags     = [3]string{"1-0:32.32.0(", "1-0:52.32.0(", "1-0:72.32.0("}
	phaseSwells   = [3]string{"1-0:32.36.0(", "1-0:52.36.0(", "1-0:72.36.0("}

	fTaken    = [3]parser.Field{parser.PowerTakenL1, parser.PowerTakenL2, parser.PowerTakenL3}
	fInjected = [3]parser.Field{parser.PowerInjectedL1, parser.PowerInjectedL2, parser.PowerInjectedL3}
	fVoltage  = [3]parser.Field{parser.VoltageL1, parser.VoltageL2, parser.VoltageL3}
	fCurrent  = [3]parser.Field{parser.CurrentL1, parser.CurrentL2, parser.CurrentL3}
	fSags     = [3]parser.Field{parser.VoltageSagsL1, parser.VoltageSagsL2, parser.VoltageSagsL3}
	fSwells   = [3]parser.Field{parser.VoltageSwellsL1, parser.VoltageSwellsL2, parser.VoltageSwellsL3}
)

func (m *Meter) phasePower(b []byte, r *Reading) []byte {
	n := m.lay.phases
	for i := range n {
		b = appendReg(b, phaseTaken[i], m.now.phTaken[i], 2, 3, "*kW)")
		r.put(fTaken[i], m.now.phTaken[i], 0)
	}
	for i := range n {
		b = appendReg(b, phaseInjected[i], m.now.phInj[i], 2, 3, "*kW)")
		r.put(fInjected[i], m.now.phInj[i], 0)
	}
	return b
}

func (m *Meter) voltages(b []byte, r *Reading) []byte {
	for i := range m.lay.phases {
		b = appendReg(b, phaseVoltage[i], m.now.deciV[i], 3, 1, "*V)")
		r.put(fVoltage[i], m.now.deciV[i], 1)
	}
	return b
}

// currents appends the phase currents with dec (0 or 2) decimals; whole
// amperes are truncated, as the Iskra meters do.
func (m *Meter) currents(b []byte, r *Reading, dec int) []byte {
	for i := range m.lay.phases {
		v := m.now.centiA[i]
		if dec == 0 {
			v /= 100
		}
		b = appendReg(b, phaseCurrent[i], v, 3, dec, "*A)")
		r.put(fCurrent[i], v, uint8(dec))
	}
	return b
}

func (m *Meter) appendBE(b []byte, r *Reading) []byte {
	r.Version = "50217"
	b = append(b, "0-0:96.1.4(50217)\r\n0-0:96.1.1("...)
	b = append(b, m.idHex...)
	b = append(b, ")\r\n"...)
	b = m.clock(b, r)
	b = m.energy(b, r, 6)
	b = m.tariff(b, r)
	avg := m.currentDemand()
	b = appendReg(b, "1-0:1.4.0(", avg, 2, 3, "*kW)")
	r.put(parser.DemandAvg, avg, 0)
	b = append(b, "1-0:1.6.0("...)
	b = m.appendTime(b, m.monthMaxAt)
	b = appendReg(b, ")(", m.monthMaxW, 2, 3, "*kW)")
	r.put(parser.DemandMaxMonth, m.monthMaxW, 0)
	r.DemandMaxAt = m.monthMaxAt.In(m.loc)
	b = append(b, m.peaksLine...)
	r.Peaks = m.peaks
	b = m.power(b, r, 2, 3)
	b = m.phasePower(b, r)
	b = m.voltages(b, r)
	b = m.currents(b, r, 2)
	b = append(b, "0-0:96.3.10(1)\r\n0-0:17.0.0(999.9*kW)\r\n1-0:31.4.0(999*A)\r\n0-0:96.13.0()\r\n"...)
	r.put(parser.BreakerState, 1, 0)
	r.put(parser.LimiterW, 999900, 0)
	r.put(parser.FuseA, 999, 0)

	b = append(b, "0-1:24.1.0(003)\r\n0-1:96.1.1("...)
	b = append(b, m.gasHex...)
	b = append(b, ")\r\n0-1:24.4.0(1)\r\n0-1:24.2.3("...)
	b = m.appendTime(b, m.gasCapAt)
	b = appendReg(b, ")(", m.gasCapL, 5, 3, "*m3)")
	r.Gas = MBusReading{Channel: 1, Type: 3, Kind: parser.KindGas, ID: m.gasID,
		Value: parser.Decimal{Int: m.gasCapL, Scale: 3}, Unit: "m3", Time: m.gasCapAt.In(m.loc)}
	if m.cfg.Water {
		b = append(b, "0-2:24.1.0(007)\r\n0-2:96.1.1("...)
		b = append(b, m.waterHex...)
		b = append(b, ")\r\n0-2:24.2.1("...)
		b = m.appendTime(b, m.waterCapT)
		b = appendReg(b, ")(", m.waterCapL, 5, 3, "*m3)")
		r.Water = MBusReading{Channel: 2, Type: 7, Kind: parser.KindWater, ID: m.waterID,
			Value: parser.Decimal{Int: m.waterCapL, Scale: 3}, Unit: "m3", Time: m.waterCapT.In(m.loc)}
	}
	return b
}

func (m *Meter) appendNL5(b []byte, r *Reading) []byte {
	r.Version = "50"
	b = append(b, "1-3:0.2.8(50)\r\n"...)
	b = m.clock(b, r)
	b = append(b, "0-0:96.1.1("...)
	b = append(b, m.idHex...)
	b = append(b, ")\r\n"...)
	b = m.energy(b, r, 6)
	b = m.tariff(b, r)
	b = m.power(b, r, 2, 3)
	b = appendReg(b, "0-0:96.7.21(", int64(m.failures), 5, 0, ")")
	b = appendReg(b, "0-0:96.7.9(", int64(m.longFailures), 5, 0, ")")
	r.put(parser.PowerFailures, int64(m.failures), 0)
	r.put(parser.LongPowerFailures, int64(m.longFailures), 0)
	b = append(b, m.failLine...)
	r.FailureLog = m.failLog
	for i := range 3 {
		b = appendReg(b, phaseSags[i], int64(m.sags[i]), 5, 0, ")")
		r.put(fSags[i], int64(m.sags[i]), 0)
	}
	for i := range 3 {
		b = appendReg(b, phaseSwells[i], int64(m.swells[i]), 5, 0, ")")
		r.put(fSwells[i], int64(m.swells[i]), 0)
	}
	b = append(b, "0-0:96.13.0()\r\n"...)
	b = m.voltages(b, r)
	b = m.currents(b, r, 0)
	b = m.phasePower(b, r)
	b = append(b, "0-1:24.1.0(003)\r\n0-1:96.1.0("...)
	b = append(b, m.gasHex...)
	b = append(b, ")\r\n0-1:24.2.1("...)
	b = m.appendTime(b, m.gasCapAt)
	b = appendReg(b, ")(", m.gasCapL, 5, 3, "*m3)")
	r.Gas = MBusReading{Channel: 1, Type: 3, Kind: parser.KindGas, ID: m.gasID,
		Value: parser.Decimal{Int: m.gasCapL, Scale: 3}, Unit: "m3", Time: m.gasCapAt.In(m.loc)}
	return b
}

func (m *Meter) appendNL22(b []byte, r *Reading) []byte {
	b = append(b, "0-0:96.1.1("...)
	b = append(b, m.idHex...)
	b = append(b, ")\r\n"...)
	b = m.energy(b, r, 5)
	b = m.tariff(b, r)
	b = m.power(b, r, 4, 2)
	b = append(b, "0-0:96.13.1()\r\n0-0:96.13.0()\r\n0-1:24.1.0(3)\r\n0-1:96.1.0("...)
	b = append(b, m.gasHex...)
	b = append(b, ")\r\n0-1:24.3.0("...)
	b = m.appendTimeNoFlag(b, m.gasCapAt)
	b = append(b, ")(00)(60)(1)(0-1:24.2.1)(m3)\r\n"...)
	b = appendReg(b, "(", m.gasCapL, 5, 3, ")")
	r.Gas = MBusReading{Channel: 1, Type: 3, Kind: parser.KindGas, ID: m.gasID,
		Value: parser.Decimal{Int: m.gasCapL, Scale: 3}, Unit: "m3", Time: m.gasCapAt.In(m.loc)}
	return b
}

// appendReg appends prefix, v as a fixed-point number and suffix, then CRLF.
func appendReg(b []byte, prefix string, v int64, intDigits, dec int, suffix string) []byte {
	b = append(b, prefix...)
	b = appendFixed(b, v, intDigits, dec)
	b = append(b, suffix...)
	return append(b, "\r\n"...)
}

// appendFixed appends v×10^-dec with at least intDigits digits before the
// point (zero-padded) and exactly dec after it. v must not be negative.
func appendFixed(b []byte, v int64, intDigits, dec int) []byte {
	if dec == 0 {
		return appendInt(b, v, intDigits)
	}
	p := int64(1)
	for range dec {
		p *= 10
	}
	b = appendInt(b, v/p, intDigits)
	b = append(b, '.')
	return appendInt(b, v%p, dec)
}

// appendInt appends v zero-padded to width digits.
func appendInt(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendInt(tmp[:0], v, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// appendTime appends t as the meter's YYMMDDhhmmssX, X being S in summer
// time and W in winter time of the meter's location.
func (m *Meter) appendTime(b []byte, t time.Time) []byte {
	lt := t.In(m.loc)
	b = m.appendTimeNoFlag(b, lt)
	if lt.IsDST() {
		return append(b, 'S')
	}
	return append(b, 'W')
}

// appendTimeNoFlag appends YYMMDDhhmmss, as DSMR 2.2 meters print it.
func (m *Meter) appendTimeNoFlag(b []byte, t time.Time) []byte {
	lt := t.In(m.loc)
	y, mo, d := lt.Date()
	h, mi, s := lt.Clock()
	for _, v := range [...]int{y % 100, int(mo), d, h, mi, s} {
		b = append(b, byte('0'+v/10), byte('0'+v%10))
	}
	return b
}
