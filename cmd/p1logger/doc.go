// Command p1logger reads DSMR/P1 smart-meter telegrams from TCP gateways
// and writes them to InfluxDB.
//
// Usage:
//
//	p1logger                 run the daemon
//	p1logger decode [FILE…]  print raw telegrams as JSON (see -h)
//
// The daemon is configured only by environment variables (DESIGN.md):
//
//	P1_GATEWAYS          name=ADDRESS[,...]: host:port (TCP), serial://, homewizard(s)://, mqtt(s)://, ws(s)://
//	P1_GATEWAYS_FILE     one name=ADDRESS per line, # comments; combined with P1_GATEWAYS
//	P1_KEYS_FILE         name=KEY[,AUTHKEY] per line: keys of encrypted meters (Luxembourg, Austria)
//	P1_CYCLE             5s    newest telegram of each gateway → one p1 point per cycle
//	P1_INFLUX_URL        http://localhost:8086
//	P1_INFLUX_TOKEN      API token (1.8: user:password); or P1_INFLUX_TOKEN_FILE
//	P1_INFLUX_ORG        organisation (ignored by 1.8)
//	P1_INFLUX_BUCKET     p1    (1.8: database/retention-policy)
//	P1_INFLUX_QUERY      auto  flux, influxql or auto (detected; InfluxQL on InfluxDB 3)
//	P1_TIMEZONE          IANA zone for day and month boundaries; default the host's
//	P1_ROLLUP_INTERVAL   1m    p1_energy rollups and p1_gateway health points
//	P1_IDLE_TIMEOUT      10s   a gateway silent this long is redialled
//	P1_SPOOL_DIR         durable write buffer for InfluxDB outages and the rollup's state; empty: memory only
//	P1_SPOOL_MAX_AGE     24h   outage the write buffer is sized to hold (within half the free disk, 1/8 of memory)
//	P1_SPOOL_MAX_BYTES   derived  bound of the spool instead of the size derived from P1_SPOOL_MAX_AGE; 500MB, 2GiB…
//	P1_COUNTRY           auto  tariff names and bill rules: auto (from the telegrams) or be, nl, lu…
//	P1_HTTP_ADDR         :9188 status page, /healthz, /readyz, /metrics, /api/v1/gateways; empty disables
//	P1_HTTP_TOKEN        every HTTP path but /healthz needs it (bearer or basic auth); or P1_HTTP_TOKEN_FILE
//	P1_LOG_LEVEL         info  debug, info, warn, error
//	P1_LOG_FORMAT        text  text or json
//
// A bad value exits with status 2 and one line on stderr naming the
// variable, the value and the expected form. SIGINT or SIGTERM stops the
// readers, writes the last cycle, drains the write buffer to InfluxDB for
// at most 10 s (with P1_SPOOL_DIR, what InfluxDB does not take stays in the
// spool for the next start), and exits 0.
//
// Goroutines, in the order they stop: one ingest.Reader per gateway and the
// HTTP server (stopped by the signal); the ingest.Batcher and the
// rollup.Worker (stopped once the readers are, each writing a last time);
// the ingest.Writer (stopped last, draining). A component that fails stops
// them all the same way and makes the exit status 1.
package main
