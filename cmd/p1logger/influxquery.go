package main

import (
	"fmt"
	"time"

	"github.com/p1logger/p1logger/internal/influx"
)

// newQueryClient returns the InfluxDB client that p1logger reads with
// (rollup recovery, p1logger report), in the language P1_INFLUX_QUERY names
// or the server speaks. Every answer is bounded by maxAnswer (README:
// "Bounded answers"); timeout bounds one request.
func newQueryClient(cfg *config, timeout time.Duration) (*influx.Client, error) {
	c, err := influx.New(influx.Config{
		URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg, Bucket: cfg.InfluxBucket,
		Query: cfg.InfluxQuery, Timeout: timeout, MaxAnswer: maxAnswer,
	})
	if err != nil {
		return nil, fmt.Errorf("influxdb client: %w", err)
	}
	return c, nil
}
