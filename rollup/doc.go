// Package rollup computes how much energy each gateway's meter took from
// and injected into the grid (and how much gas it used) over the current
// local day and month, and writes it as the p1_energy points of DESIGN.md,
// so that dashboards and bills never do time-zone arithmetic in Flux.
//
// In the pipeline it sits beside the ingest writer: the ingest batcher hands
// every telegram that becomes a p1 point to [Worker.Observe], and
// [Worker.Run] writes, every interval, one point per gateway and period
// (tags gateway and period=day|month, time = the local start of the period)
// through the same [PointWriter]. Rewriting the same series and time
// upserts the point, so it converges to the period's final value.
//
// # The rule
//
// A period is a local calendar day, [midnight, next midnight), or month,
// [the 1st 00:00, the next 1st 00:00), in [Config.Location], computed with
// time.Date and date arithmetic: days of 23 and 25 hours at DST changes,
// months of 28 to 31 days, zones with offsets such as +05:45, and zones
// whose clock skips midnight (the day then starts at the jump).
//
// For each register (taken_kwh, injected_kwh, the four per-tariff ones, and
// gas_m3 from the p1_mbus gas device), the period's value is
//
//	value = register now − register at the baseline
//
// where the baseline is the last reading of that register before the period
// began, however old (a logger that was down from 23:00 to 02:00 still books
// the night into the right day), or, only when no reading before the period
// exists, the first reading inside it. A field is written only when the register
// has a reading inside the period; a gateway with no reading in the period
// gets no point. Values are exact decimals (34.444, never 34.443999…).
//
// A register that goes down (a meter replaced or reset), or a meter_id
// that changes, ends a segment and starts a new one at the next reading;
// the value is the sum over segments of (last reading − first reading), the
// first segment starting at the baseline. So a period is never negative.
// Energy used between the old meter's last reading and the new meter's
// first one (at most a cycle when the logger kept running, longer if it was
// down across the swap) is not counted: the new meter's register at the
// moment of the swap is not known, and guessing it (as zero, say) would book
// a factory or installer reading as consumption. Segments are per register:
// a reset of one tariff register does not cut the others, so after such a
// reset taken_kwh can differ from taken_t1_kwh + taken_t2_kwh by that gap.
// A meter_id change cuts every register.
//
// # State and recovery
//
// On start-up, and whenever a new period begins, the worker recovers each
// gateway's state for the period from the p1 and p1_mbus points in
// InfluxDB: the baseline (searched in windows of 2, 40 and 400 days before
// the period, then since 1970) and the readings inside the period,
// compressed on the server to each series' first and last reading and the
// places where a register went down. Recovering a month of 5-second
// readings takes a few seconds per gateway on InfluxDB 1.8; days are
// recovered before months, and gateways in batches. A restart mid-day therefore continues
// the same numbers, and a gateway whose history is in InfluxDB gets its
// points even before it sends anything. At start-up the previous day and
// month are recovered and written too, so a worker started after midnight
// books yesterday's final value. The p1 retention must therefore cover at
// least the previous month and its baseline.
//
// A period that just ended stays tracked for a grace time (two intervals,
// at least two minutes): its point is written again at the first rollup
// after the boundary with the last reading before the boundary as closing
// value, and readings stamped before the boundary but delivered late still
// count for it (and become the new period's baseline). Observed readings
// count for the period of their time stamp: the p1 point's time, or the gas
// device's capture time.
//
// Query failures leave the period unrecovered (no point is written for it,
// rather than a wrong one) and are retried every interval; a period that
// began while the worker was watching continues from the readings it saw.
// Write failures are logged, rate-limited, and the points are written again
// at the next interval.
package rollup
