#!/usr/bin/env bash
# Quick start without Docker or hardware: a local InfluxDB 1.8, two simulated
# P1 gateways (a Belgian and a Dutch meter) and p1logger, all on loopback.
#
#   ./deploy/quickstart.sh            run until Ctrl-C
#   ./deploy/quickstart.sh --check    run ~25 s, verify readings reached InfluxDB, exit 0/1
#
# Everything lives in .p1logger-local/ (data, logs, binaries, the simulated
# meters' registers); delete it to start over.
# Ports default to 8086 (InfluxDB), 8088/8089 (gateways) and 9188 (status); a
# busy one is replaced by the next free port, and it says so. Set INFLUX_PORT,
# GW1_PORT, GW2_PORT or HTTP_PORT to choose.
# Ctrl-C stops p1logger first (it writes its last readings to InfluxDB), then
# the rest; the simulated meters go on from their registers at the next start.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[ "${1:-}" = "--check" ] && check=true

INFLUX_PORT=${INFLUX_PORT:-8086}
GW1_PORT=${GW1_PORT:-8088}
GW2_PORT=${GW2_PORT:-8089}
HTTP_PORT=${HTTP_PORT:-9188}
state=.p1logger-local
mkdir -p "$state/bin" "$state/influxdb" "$state/logs"
export PATH="$(go env GOPATH)/bin:$PATH"

pids=() names=()
cleanup() {
	# Stop in reverse order: p1logger first, so it can flush to a live InfluxDB
	# (it drains for at most 10 s), then the gateways, then InfluxDB.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || continue
		for _ in $(seq 1 150); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME LOG CMD...: run CMD in the background and fail loudly if it dies at once.
# Each runs in a session of its own (setsid): Ctrl-C in the terminal signals
# only this script, whose cleanup then stops them in order, instead of every
# process at once (InfluxDB gone before p1logger's last write).
start() {
	local name=$1 log=$2
	shift 2
	setsid "$@" > "$log" 2>&1 &
	pids+=($!) names+=("$name")
	sleep 0.3
	if ! kill -0 "$!" 2>/dev/null; then
		echo "quickstart: $name exited at once:" >&2
		tail -n 5 "$log" >&2
		exit 1
	fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=" "
pick_port() { # pick_port VAR DEFAULT WHAT: first free port at or above DEFAULT not already picked
	local p=$2
	while port_busy "$p" || [[ $taken == *" $p "* ]]; do p=$((p + 1)); done
	taken+="$p "
	[ "$p" = "$2" ] || echo "quickstart: port $2 is busy; $3 uses port $p instead"
	printf -v "$1" %s "$p"
}
pick_port INFLUX_PORT "$INFLUX_PORT" InfluxDB
pick_port GW1_PORT "$GW1_PORT" "the Belgian gateway"
pick_port GW2_PORT "$GW2_PORT" "the Dutch gateway"
pick_port HTTP_PORT "$HTTP_PORT" "p1logger's status page"
pick_port RPC_PORT 18087 "InfluxDB's backup RPC (unused here)"
echo "quickstart: ports: InfluxDB $INFLUX_PORT, gateways $GW1_PORT and $GW2_PORT, status page $HTTP_PORT"
command -v setsid >/dev/null || { echo "quickstart: needs setsid (util-linux)" >&2; exit 1; }

if ! command -v influxd >/dev/null; then
	echo "quickstart: building InfluxDB 1.8.10 from the Go module proxy (once; about a minute)..."
	go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10
fi
echo "quickstart: building p1logger and p1sim..."
go build -buildvcs=auto -o "$state/bin/" ./cmd/p1logger ./cmd/p1sim

cat > "$state/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$RPC_PORT"
[meta]
  dir = "$PWD/$state/influxdb/meta"
[data]
  dir = "$PWD/$state/influxdb/data"
  wal-dir = "$PWD/$state/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  flux-enabled = true
  log-enabled = false
[logging]
  level = "warn"
CONF
start influxd "$state/logs/influxd.log" influxd -config "$state/influxdb.conf"
influx="http://127.0.0.1:$INFLUX_PORT"
for i in $(seq 1 100); do
	curl -fs "$influx/ping" >/dev/null 2>&1 && break
	[ "$i" = 100 ] && { echo "quickstart: InfluxDB did not start; see $state/logs/influxd.log" >&2; exit 1; }
	sleep 0.2
done
curl -fsS -XPOST "$influx/query" --data-urlencode "q=CREATE DATABASE p1" >/dev/null

start "p1sim (Belgian meter)" "$state/logs/p1sim-be.log" "$state/bin/p1sim" -listen "127.0.0.1:$GW1_PORT" -profile be3 -interval 1s -tz Europe/Brussels -water -state "$state/p1sim-be.state"
start "p1sim (Dutch meter)" "$state/logs/p1sim-nl.log" "$state/bin/p1sim" -listen "127.0.0.1:$GW2_PORT" -profile nl5 -interval 1s -tz Europe/Amsterdam -seed 2 -state "$state/p1sim-nl.state"

export P1_GATEWAYS="brussels=127.0.0.1:$GW1_PORT,amsterdam=127.0.0.1:$GW2_PORT"
export P1_INFLUX_URL="$influx" P1_INFLUX_BUCKET="p1/autogen" P1_INFLUX_TOKEN=""
export P1_CYCLE=${P1_CYCLE:-5s} P1_ROLLUP_INTERVAL=${P1_ROLLUP_INTERVAL:-10s} P1_TIMEZONE=${P1_TIMEZONE:-Europe/Brussels}
export P1_SPOOL_DIR="$PWD/$state/spool" P1_HTTP_ADDR="127.0.0.1:$HTTP_PORT"
start p1logger "$state/logs/p1logger.log" "$state/bin/p1logger"

cat <<MSG

p1logger is running (logs in $state/logs/):
  status page     http://127.0.0.1:$HTTP_PORT/
  gateways JSON   http://127.0.0.1:$HTTP_PORT/api/v1/gateways
  metrics         http://127.0.0.1:$HTTP_PORT/metrics
  InfluxDB        $influx  (bucket p1/autogen)

Latest readings (Flux):
  curl -s $influx/api/v2/query -H 'Content-Type: application/vnd.flux' \\
    -d 'from(bucket:"p1/autogen") |> range(start:-1m) |> filter(fn:(r) => r._measurement == "p1") |> last()'
Decode raw telegrams from a gateway:
  $state/bin/p1logger capture 127.0.0.1:$GW1_PORT -n 3 | $state/bin/p1logger decode
MSG

if ! $check; then
	echo "Ctrl-C stops everything (p1logger first)."
	wait -n "${pids[@]}" || true
	for i in "${!pids[@]}"; do
		kill -0 "${pids[i]}" 2>/dev/null || echo "quickstart: ${names[i]} exited; see $state/logs/" >&2
	done
	exit 1
fi

echo "quickstart --check: waiting for readings..."
q='from(bucket:"p1/autogen") |> range(start:-5m) |> filter(fn:(r) => r._measurement == "p1" and r._field == "taken_kwh") |> count()'
for i in $(seq 1 25); do
	sleep 1
	for j in "${!pids[@]}"; do
		kill -0 "${pids[j]}" 2>/dev/null || { echo "quickstart --check: ${names[j]} exited; see $state/logs/" >&2; exit 1; }
	done
	out=$(curl -s "$influx/api/v2/query" -H 'Content-Type: application/vnd.flux' -H 'Accept: application/csv' -d "$q" || true)
	gws=$(printf '%s\n' "$out" | grep -c -E ',(brussels|amsterdam),' || true)
	if [ "$gws" -ge 2 ]; then
		echo "quickstart --check: both gateways have p1 points in InfluxDB after ${i}s:"
		printf '%s\n' "$out" | grep -E ',(brussels|amsterdam),' | awk -F, '{print "  " $0}' | cut -c1-160
		curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && echo "  /healthz ok"
		exit 0
	fi
done
echo "quickstart --check: no readings in InfluxDB after 25 s; logs:" >&2
tail -n 20 "$state/logs/p1logger.log" >&2
exit 1
