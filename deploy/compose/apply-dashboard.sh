#!/bin/sh
# Applies the p1logger dashboard template to InfluxDB 2 through a stack named
# p1logger, so that running it again (every `docker compose up`) updates the
# dashboard and its variables in place instead of adding copies.
# Runs in the influxdb:2 image; INFLUX_HOST, INFLUX_ORG and INFLUX_TOKEN
# configure the influx CLI.
set -eu

template=${1:-/p1logger/p1logger-dashboard.json}

# The first column of `influx stacks` is the stack ID.
# shellcheck disable=SC2046 # word splitting is the point
set -- $(influx stacks --stack-name p1logger --hide-headers)
stack=${1:-}
if [ -z "$stack" ]; then
	# shellcheck disable=SC2046
	set -- $(influx stacks init --stack-name p1logger \
		--stack-description "p1logger dashboard (deploy/influxdb)" --hide-headers)
	stack=${1:?influx stacks init printed no stack ID}
	echo "apply-dashboard: created stack $stack"
fi
influx apply --stack-id "$stack" --file "$template" --force yes
echo "apply-dashboard: applied $template to stack $stack"
