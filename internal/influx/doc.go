// Package influx is p1logger's InfluxDB wire protocol for everything it
// reads back: which server it talks to (version detection from /ping and
// /health), which query language that server speaks (P1_INFLUX_QUERY:
// flux, influxql or auto), and the questions the rollup recovery and
// p1logger report ask, in both Flux (/api/v2/query, annotated CSV) and
// InfluxQL (the v1 /query API, JSON).
//
// It implements rollup.Querier, whose questions (a period's summary,
// drops, runs, last reading) say what is asked; the query text lives here
// and nowhere else. Both dialects give the same answers on the same data
// (tested on a real InfluxDB 1.8), so a rollup or a bill does not depend on
// which one the server answered.
//
// It lives under internal/ because it is an adapter the commands wire in,
// not an API for other modules: rollup declares the interface, this
// package satisfies it, and nothing in rollup points back here.
//
// Every answer is read through internal/answerlimit: a server (or anything
// in its place) cannot make p1logger hold more than Config.MaxAnswer bytes
// of one answer.
package influx
