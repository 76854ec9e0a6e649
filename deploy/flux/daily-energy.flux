// daily-energy.flux: the energy of every day of one month for one gateway,
// from the p1_energy day points that p1logger writes (stamped at local
// midnight), and the month's sum of those days.
//
// Runs on InfluxDB 1.8 (Flux 0.65) and 2.x. Set the parameters below, one per
// line as "name: value," (p1logger report and the tests replace them by name).
//
// Results: "days", one row per day with every p1_energy field as a column
// (kWh; gas_m3 in m³ where a gas meter is present), and "total", one row with
// the sum of each column over the month.
option params = {
    // InfluxDB 2.x: the bucket name; 1.8: "database/retention-policy".
    bucket: "p1",
    gateway: "home",
    // The month, as the instants of its local start and of the next month's
    // start (Flux 0.65 has no time zones).
    start: 2026-02-01T00:00:00+01:00,
    stop: 2026-03-01T00:00:00+01:00,
}

days = from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._time < params.stop) // InfluxDB 1.8 includes stop
    |> filter(fn: (r) => r._measurement == "p1_energy" and r.period == "day" and r.gateway == params.gateway)

days
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> drop(columns: ["_start", "_stop", "_measurement", "period"])
    |> group()
    |> sort(columns: ["_time"])
    |> yield(name: "days")

days
    |> sum()
    |> pivot(rowKey: ["gateway"], columnKey: ["_field"], valueColumn: "_value")
    |> drop(columns: ["_start", "_stop", "_measurement", "period"])
    |> group()
    |> yield(name: "total")
