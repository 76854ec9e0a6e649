// monthly-peaks.flux: the Belgian capacity tariff's monthly peaks of the 12
// months ending with a given month, for one gateway, and their average: the
// kW the capacity tariff of that month is charged on.
//
// Runs on InfluxDB 1.8 (Flux 0.65) and 2.x. Set the parameters below, one per
// line as "name: value," (p1logger report and the tests replace them by name).
//
// Results: "peaks", one row per month (_time = the local month start) with
// peak_kw, peak_at (when the peak quarter-hour happened) and billed_kw (the
// peak, but at least capacity_min_kw); "average", one row with the number of
// months, their average peak_kw and average billed_kw.
import "experimental"

option params = {
    // InfluxDB 2.x: the bucket name; 1.8: "database/retention-policy".
    bucket: "p1",
    gateway: "home",
    // The last month of the 12, as the instants of its local start and of the
    // next month's start (Flux 0.65 has no time zones).
    start: 2026-02-01T00:00:00+01:00,
    stop: 2026-03-01T00:00:00+01:00,
    // Fluvius counts a monthly peak below 2.5 kW as 2.5 kW.
    capacity_min_kw: 2.5,
}

// Points sit at local month starts; start minus 11 months (UTC calendar)
// lands within a few days of the oldest of the 12, and the week's margin takes
// it whatever the offsets, while the month before lies four weeks further back.
peakStart = experimental.subDuration(d: 7d, from: experimental.subDuration(d: 11mo, from: params.start))

peaks = from(bucket: params.bucket)
    |> range(start: peakStart, stop: params.stop)
    |> filter(fn: (r) => r._time < params.stop) // InfluxDB 1.8 includes stop
    |> filter(fn: (r) => r._measurement == "p1_peak" and r.gateway == params.gateway)
    |> filter(fn: (r) => r._field == "peak_w" or r._field == "peak_at")
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> group()
    |> map(fn: (r) => ({
        _time: r._time,
        gateway: r.gateway,
        peak_kw: r.peak_w / 1000.0,
        peak_at: r.peak_at,
        billed_kw: if r.peak_w / 1000.0 < params.capacity_min_kw then params.capacity_min_kw else r.peak_w / 1000.0,
    }))
    |> sort(columns: ["_time"])

peaks |> yield(name: "peaks")

peaks
    |> reduce(
        fn: (r, accumulator) => ({
            months: accumulator.months + 1,
            peak_kw: accumulator.peak_kw + r.peak_kw,
            billed_kw: accumulator.billed_kw + r.billed_kw,
        }),
        identity: {months: 0, peak_kw: 0.0, billed_kw: 0.0},
    )
    |> map(fn: (r) => ({
        gateway: params.gateway,
        months: r.months,
        average_kw: r.peak_kw / float(v: r.months),
        billed_average_kw: r.billed_kw / float(v: r.months),
    }))
    |> yield(name: "average")
