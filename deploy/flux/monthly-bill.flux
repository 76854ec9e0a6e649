// monthly-bill.flux: one month's electricity bill for one gateway, as a small
// table of invoice lines and a total, from the p1_energy month point and the
// p1_peak monthly peaks that p1logger writes.
//
// Runs on InfluxDB 1.8 (Flux 0.65) and 2.x. Set the parameters below, one per
// line as "name: value," (p1logger report and the tests replace them by name),
// then run it with `influx query --file monthly-bill.flux` or in the Data
// Explorer's script editor.
//
// Amounts are rounded to cents line by line, as invoices are; the total is the
// sum of the rounded lines. Prices are examples: copy yours from your contract.
//
// A month without a p1_energy month point for the gateway (before p1logger
// ran, a misspelt gateway, a start that is not the local month start) gives a
// bill of two lines: line 0 saying why, and a total of 0.
import "csv"
import "experimental"
import "math"

option params = {
    // InfluxDB 2.x: the bucket name; 1.8: "database/retention-policy".
    bucket: "p1",
    gateway: "home",
    // The month, as the instants of its local start and of the next month's
    // start (Flux 0.65 has no time zones). The p1_energy month point is stamped
    // exactly at start, so a UTC midnight here finds nothing and says so.
    start: 2026-02-01T00:00:00+01:00,
    stop: 2026-03-01T00:00:00+01:00,
    // Tariff 1 is the peak ("day") register in Belgium, off-peak ("dal") in the
    // Netherlands.
    tariff1: "peak",
    tariff2: "off-peak",
    // Energy prices in EUR per kWh, excluding VAT.
    price_taken_t1: 0.32,
    price_taken_t2: 0.26,
    price_injected_t1: 0.04,
    price_injected_t2: 0.03,
    // Fixed costs in EUR per month, excluding VAT (subscription, meter rent...).
    fixed_per_month: 9.5,
    // Belgian capacity tariff in EUR per kW per year, excluding VAT; 0.0 where
    // there is none. It is charged monthly on the average of the monthly peaks
    // of the 12 months ending with this one, every peak counted at least
    // capacity_min_kw (Fluvius counts a month below 2.5 kW as 2.5 kW).
    capacity_eur_per_kw_year: 48.0,
    capacity_min_kw: 2.5,
    // VAT rate; 0.06 for electricity in Belgium, 0.21 in the Netherlands.
    vat: 0.06,
    // Whether the injection credit lowers the amount VAT is charged on.
    vat_on_injection: false,
}

cents = (x) => math.round(x: x * 100.0) / 100.0

energy = from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._time < params.stop) // InfluxDB 1.8 includes stop
    |> filter(fn: (r) => r._measurement == "p1_energy" and r.period == "month" and r.gateway == params.gateway)
    |> filter(fn: (r) => r._time == params.start)
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> group()

// one is a table of one row of zeros. tableFind fails on a stream without a
// table, and Flux 0.65 has neither array.from nor findRecord: so every record
// taken below comes from a union with this row, which also gives the bill's
// lines a row to be mapped from when the month has no data.
one = csv.from(csv: "#datatype,string,long,double,double,double,double,long
#group,false,false,false,false,false,false,false
#default,_result,,,,,,
,result,table,taken_t1_kwh,taken_t2_kwh,injected_t1_kwh,injected_t2_kwh,n
,,0,0.0,0.0,0.0,0.0,0
")
e = union(tables: [
    one,
    energy |> map(fn: (r) => ({
        taken_t1_kwh: r.taken_t1_kwh,
        taken_t2_kwh: r.taken_t2_kwh,
        injected_t1_kwh: r.injected_t1_kwh,
        injected_t2_kwh: r.injected_t2_kwh,
        n: 1,
    })),
])
    |> group()
    |> reduce(
        fn: (r, accumulator) => ({
            taken_t1_kwh: accumulator.taken_t1_kwh + r.taken_t1_kwh,
            taken_t2_kwh: accumulator.taken_t2_kwh + r.taken_t2_kwh,
            injected_t1_kwh: accumulator.injected_t1_kwh + r.injected_t1_kwh,
            injected_t2_kwh: accumulator.injected_t2_kwh + r.injected_t2_kwh,
            n: accumulator.n + r.n,
        }),
        identity: {taken_t1_kwh: 0.0, taken_t2_kwh: 0.0, injected_t1_kwh: 0.0, injected_t2_kwh: 0.0, n: 0},
    )
    |> tableFind(fn: (key) => true)
    |> getRecord(idx: 0)
found = e.n > 0
reason = "no data: no p1_energy month point for gateway \"" + params.gateway + "\" at " + string(v: params.start) + " (a month before p1logger ran, a misspelt gateway, or a start that is not the local start of the month)"

// The 12 months ending with this one. Their points sit at local month starts;
// start minus 11 months (UTC calendar) lands within a few days of the oldest,
// and the week's margin takes it whatever the offsets, while the month before
// it lies four weeks further back.
peakStart = experimental.subDuration(d: 7d, from: experimental.subDuration(d: 11mo, from: params.start))
peaks = from(bucket: params.bucket)
    |> range(start: peakStart, stop: params.stop)
    |> filter(fn: (r) => r._time < params.stop) // InfluxDB 1.8 includes stop
    |> filter(fn: (r) => r._measurement == "p1_peak" and r._field == "peak_w" and r.gateway == params.gateway)
    |> map(fn: (r) => ({kw: if r._value / 1000.0 < params.capacity_min_kw then params.capacity_min_kw else r._value / 1000.0, n: 1}))
    |> group()
// A zero row keeps the sum defined without peaks (meters outside Belgium
// have none).
noPeak = one |> map(fn: (r) => ({kw: 0.0, n: 0}))
ps = union(tables: [peaks, noPeak])
    |> reduce(fn: (r, accumulator) => ({kw: accumulator.kw + r.kw, n: accumulator.n + r.n}), identity: {kw: 0.0, n: 0})
    |> tableFind(fn: (key) => true)
    |> getRecord(idx: 0)
capacityKW = if ps.n > 0 then ps.kw / float(v: ps.n) else params.capacity_min_kw
capacityPrice = params.capacity_eur_per_kw_year / 12.0

takenT1 = cents(x: e.taken_t1_kwh * params.price_taken_t1)
takenT2 = cents(x: e.taken_t2_kwh * params.price_taken_t2)
injectedT1 = 0.0 - cents(x: e.injected_t1_kwh * params.price_injected_t1)
injectedT2 = 0.0 - cents(x: e.injected_t2_kwh * params.price_injected_t2)
fixed = cents(x: params.fixed_per_month)
capacity = cents(x: capacityKW * capacityPrice)
charges = takenT1 + takenT2 + fixed + capacity
vatBase = if params.vat_on_injection then charges + injectedT1 + injectedT2 else charges
vat = cents(x: vatBase * params.vat)
total = if found then cents(x: charges + injectedT1 + injectedT2 + vat) else 0.0

line = (n, item, quantity, unit, price, amount) => one
    |> map(fn: (r) => ({
        gateway: params.gateway,
        line: n,
        item: item,
        quantity: quantity,
        unit: unit,
        price: price,
        amount: amount,
    }))

union(tables: [
    line(n: 0, item: reason, quantity: 0.0, unit: "month", price: 0.0, amount: 0.0),
    line(n: 1, item: "taken " + params.tariff1 + " (tariff 1)", quantity: e.taken_t1_kwh, unit: "kWh", price: params.price_taken_t1, amount: takenT1),
    line(n: 2, item: "taken " + params.tariff2 + " (tariff 2)", quantity: e.taken_t2_kwh, unit: "kWh", price: params.price_taken_t2, amount: takenT2),
    line(n: 3, item: "injected " + params.tariff1 + " (tariff 1)", quantity: e.injected_t1_kwh, unit: "kWh", price: params.price_injected_t1, amount: injectedT1),
    line(n: 4, item: "injected " + params.tariff2 + " (tariff 2)", quantity: e.injected_t2_kwh, unit: "kWh", price: params.price_injected_t2, amount: injectedT2),
    line(n: 5, item: "fixed costs", quantity: 1.0, unit: "month", price: params.fixed_per_month, amount: fixed),
    line(n: 6, item: "capacity tariff (12-month average peak)", quantity: capacityKW, unit: "kW", price: capacityPrice, amount: capacity),
    line(n: 7, item: "VAT", quantity: vatBase, unit: "EUR", price: params.vat, amount: vat),
    line(n: 8, item: "total", quantity: 1.0, unit: "month", price: total, amount: total),
])
    // With data, lines 1 to 8; without, the reason and the total (0).
    |> filter(fn: (r) => if found then r.line > 0 else r.line == 0 or r.line == 8)
    |> sort(columns: ["line"])
    |> yield(name: "bill")
