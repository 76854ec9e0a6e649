// Package fluxcheck proves, against a real InfluxDB 1.8 (Flux 0.65), every
// Flux query that p1logger ships for users to run: each cell and variable of
// the dashboard template in deploy/influxdb and each billing query in
// deploy/flux. The tests seed a bucket with points of all five measurements
// exactly as DESIGN.md names them, run every query with its dashboard
// variables or parameters set, fail on an error or an empty result, and check
// the billing numbers against values worked out by hand. They also check that
// docker-compose.yml and .env.example document every environment variable.
//
// The package has no code of its own; it exists for its tests.
package fluxcheck
