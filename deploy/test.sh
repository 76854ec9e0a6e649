#!/usr/bin/env bash
# The project's test command (see README): formatting, vet, staticcheck, all
# tests with the race detector against a real InfluxDB 1.8, and one short
# pass over every benchmark so they keep compiling and stay correct.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

for tool in staticcheck influxd; do
	if ! command -v "$tool" >/dev/null; then
		echo "test: $tool not found; run .ci/run once, or see README (Tests)" >&2
		exit 2
	fi
done

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
staticcheck ./...
echo "== docker compose: the three situations (deploy/compose/test.sh)"
if command -v docker-compose >/dev/null; then
	./deploy/compose/test.sh
else
	echo "docker-compose not installed: compose files not validated (.ci/run installs it)"
fi
echo "== snapshot release: binaries, .deb/.rpm, checksums, systemd unit (deploy/package/test.sh)"
if command -v nfpm >/dev/null || [ "${CI:-}" = true ]; then
	./deploy/package/test.sh
else
	echo "nfpm not installed: packages not built (.ci/run installs it)"
fi
echo "== benchmarks (100 iterations each, correctness only; numbers: README, Performance)"
go test -short -run '^$' -bench . -benchtime 100x ./... > /tmp/p1logger-bench.$$ 2>&1 || { cat /tmp/p1logger-bench.$$; exit 1; }
grep -E '^(Benchmark|ok|FAIL)' /tmp/p1logger-bench.$$ || true
rm -f /tmp/p1logger-bench.$$
echo "== go test -race"
go test -race -count=1 -timeout 15m ./...
