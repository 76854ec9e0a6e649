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
// On start-up, for what the state file does not cover (below), and whenever
// a new period begins, the worker recovers each
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
// # The state file
//
// With [Config.StateFile] set, every rollup writes the tracked periods'
// accumulators to that file (layout in state.go), and Run reads it before
// its first rollup and publishes its totals at once (Current), before any
// query. For each gateway and tracked period at the start:
//
//   - the period is in the file: it continues from it. When the file was
//     written by the last rollup of a run that stopped (clean), nothing
//     else is needed: the batcher stopped before that rollup, so every
//     reading written to InfluxDB was observed.
//   - the period is not in the file and ended before it was written: the
//     run that wrote it wrote its final value and retired it; it is left
//     alone (closed: no point, late readings ignored).
//   - the period began after a clean file was written (a stop across
//     midnight, or of days): its baselines are the file's last reading of
//     each register, as the rule says, since nothing was written while the
//     worker was stopped. This needs the gateway's state in the day and
//     month that contained the save (verified), so that those last
//     readings are the gateway's newest.
//   - anything else (no file, a damaged one, a gateway not in it, a period
//     beginning after a file that is not clean) is recovered from InfluxDB
//     as without a file.
//
// Readings the state does not hold. A file that is not clean (the run
// crashed) misses the readings observed after its last rollup, which the
// ingest wrote to InfluxDB. Baselines do not move, and a register that
// only grew in that window is right again at its next reading; but a
// segment break there (a meter swap or reset) is not visible from the
// file, and the last reading before a boundary could be missing. So such a
// period is tail-recovered: InfluxDB's readings from the oldest of the
// file's last readings (the period's start for a register with a baseline
// but no reading in it yet: old gas meters capture hourly) to the period's
// end, compressed as a recovery compresses them (first, last, drops,
// runs), are filed after the file's readings, only those later than the
// file's last reading of each register (one at the same time may be the
// low side of a drop the file already cut at), then the readings observed
// since the start. One series query per batch of gateways, over minutes of
// data, and no baseline query. Until it succeeds the points and Current
// show the file's values with the observed readings; a later rollup writes
// the tail-pending snapshot again as it was read, so a second crash still
// tails from the same place. The final rollup of a run does not query: it
// finishes, from what it saw, the periods that began while it ran (as a
// failed recovery does), so that a clean file covers a day that began
// just before the stop.
//
// A file is refused, with the reason logged, when its magic, version,
// length or checksum is wrong, a period in it is not a local day or month
// of the worker's zone, a sample is out of its period, it was written for
// another zone or bucket, or later than now (the clock went back). A file
// that cannot be written is removed, so that an old clean file is never
// taken for this run's; when it cannot be removed either, the worker stops
// writing it and logs an error.
//
// Query failures leave the period unrecovered (no point is written for it,
// rather than a wrong one) and are retried every interval; a period that
// began while the worker was watching continues from the readings it saw.
// Write failures are logged, rate-limited, and the points are written again
// at the next interval.
package rollup
