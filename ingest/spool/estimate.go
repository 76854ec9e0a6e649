package spool

import "time"

// Outage sizing. A buffer is sized for an outage of a given length (P1_SPOOL_MAX_AGE) from
// these figures, measured on the line protocol p1logger writes for
// simulated meters (Belgian three-phase with gas, one p1 point per gateway
// per cycle, plus the p1_mbus, p1_peak, p1_gateway and p1_energy points,
// about 1.1 points per gateway-cycle in all; about 500 bytes of line
// protocol per point):
//
//   - per gateway-cycle: 35 bytes stored at 10 gateways
//     (TestSpoolDictionary), 38 at 100, 56 at 5,000 (p1soak, half of the
//     meters with a water meter besides gas): the more gateways a cycle
//     holds, the less of it the segment's dictionary covers, and the
//     values (registers, voltages, currents, timestamps) are most of what
//     is left. The estimate takes 64, a seventh over the worst measured.
//   - per cycle: one record header (48 bytes) and a zstd frame (about 20).
//
// A fleet whose meters send more registers than these (many M-Bus devices,
// long text messages) fills the buffer faster; the live figure
// (Stats.TimeLeft, measured from what was appended) is what /readyz and
// /metrics report.
const (
	estGatewayCycleBytes = 64
	estCycleBytes        = recHeaderLen + 20
)

// EstimateBytes returns the bytes a buffer needs to hold an outage of d
// for gateways written every cycle.
func EstimateBytes(gateways int, cycle, d time.Duration) int64 {
	if gateways <= 0 || cycle <= 0 || d <= 0 {
		return 0
	}
	cycles := int64(d / cycle)
	if d%cycle != 0 {
		cycles++
	}
	return cycles * (estCycleBytes + int64(gateways)*estGatewayCycleBytes)
}

// EstimateAge returns how long an outage bytes of buffer hold for gateways
// written every cycle: the inverse of EstimateBytes.
func EstimateAge(gateways int, cycle time.Duration, bytes int64) time.Duration {
	if gateways <= 0 || cycle <= 0 || bytes <= 0 {
		return 0
	}
	perCycle := estCycleBytes + int64(gateways)*estGatewayCycleBytes
	return time.Duration(bytes/perCycle) * cycle
}
