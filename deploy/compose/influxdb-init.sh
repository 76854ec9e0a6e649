#!/bin/sh
# influxdb-init: the one-shot job that runs before p1logger on every
# `docker compose up` (docker-compose.yml). In the influxdb:2 image, with
# the influx CLI. It
#   1. gets an admin token: INFLUXDB_SETUP=local sets up a new InfluxDB
#      with a generated password and token, kept in /p1logger/admin (a
#      volume), and reuses them on later runs; INFLUXDB_SETUP=existing reads
#      the token of a server you run from INFLUX_SETUP_TOKEN_FILE (a secret);
#   2. creates the bucket P1_BUCKET if the organisation has none by that name;
#   3. writes /p1logger/token/token: a token that may only write and read that
#      bucket, for p1logger (kept while it still works; a new one otherwise);
#   4. applies the dashboard (apply-dashboard.sh).
# Each step is idempotent. A problem is one line naming it, and exit 1, so
# that compose does not start p1logger with a token that does not work.
set -eu

: "${INFLUX_HOST:?}" "${INFLUX_ORG:?}" "${P1_BUCKET:?}"
# Where the compose files mount things; variables for deploy/compose/test.sh.
admin=${INIT_ADMIN_DIR:-/p1logger/admin}
out=${INIT_TOKEN_FILE:-/p1logger/token/token}
dashboard=${INIT_DASHBOARD:-/p1logger/p1logger-dashboard.json}
# The user p1logger's image runs as (distroless nonroot).
p1logger_uid=65532

fail() {
	echo "influxdb-init: $*" >&2
	exit 1
}

# placeholder TOKEN WHERE: refuse the example values of .env.example and of
# guides, which InfluxDB would reject (or, set up with the same example,
# accept).
placeholder() {
	case $(printf %s "$1" | tr '[:upper:]' '[:lower:]') in
	change-me* | changeme* | change_me* | replace-me* | your-token* | "<"*)
		fail "$2 is a placeholder, not a token; put the real token there (InfluxDB UI: Load Data > API Tokens)" ;;
	esac
}

# random N: N random bytes as hex.
random() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

i=0
until influx ping --host "$INFLUX_HOST" >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -lt 60 ] || fail "InfluxDB at $INFLUX_HOST does not answer its ping after 2 minutes; check P1_INFLUX_URL"
	sleep 2
done

case ${INFLUXDB_SETUP:-} in
local)
	if [ ! -s "$admin/token" ]; then
		password=$(random 18)
		token=$(random 32)
		set -- --host "$INFLUX_HOST" --username "${INFLUXDB_USERNAME:-admin}" --password "$password" \
			--org "$INFLUX_ORG" --bucket "$P1_BUCKET" --token "$token" --force
		[ -n "${INFLUXDB_RETENTION:-}" ] && set -- "$@" --retention "$INFLUXDB_RETENTION"
		influx setup "$@" >/dev/null ||
			fail "InfluxDB at $INFLUX_HOST refused the set-up (already set up, but its admin token is not in the influxdb-admin volume?); 'docker compose down -v' starts over and deletes the data"
		(umask 077 && printf '%s\n' "$password" >"$admin/password" && printf '%s\n' "$token" >"$admin/token")
		echo "influxdb-init: set up InfluxDB: organisation $INFLUX_ORG, bucket $P1_BUCKET, user ${INFLUXDB_USERNAME:-admin}"
	fi
	INFLUX_TOKEN=$(cat "$admin/token")
	;;
existing)
	f=${INFLUX_SETUP_TOKEN_FILE:?}
	[ -f "$f" ] || fail "the setup token $f is not a file: create secrets/influxdb-setup-token (deploy/compose/existing.yml)"
	INFLUX_TOKEN=$(tr -d '\r\n' <"$f")
	[ -n "$INFLUX_TOKEN" ] || fail "the setup token file $f is empty"
	placeholder "$INFLUX_TOKEN" "the setup token in $f"
	;;
*)
	fail "INFLUXDB_SETUP is '${INFLUXDB_SETUP:-}': choose a situation with COMPOSE_FILE in .env (.env.example: demo, local or existing)"
	;;
esac
export INFLUX_HOST INFLUX_ORG INFLUX_TOKEN

# bucket_id: the ID of P1_BUCKET in the organisation, or nothing.
bucket_id() { influx bucket list --name "$P1_BUCKET" --hide-headers 2>/dev/null | awk 'NR == 1 { print $1 }'; }
id=$(bucket_id)
if [ -z "$id" ]; then
	set -- --name "$P1_BUCKET"
	[ -n "${INFLUXDB_RETENTION:-}" ] && set -- "$@" --retention "$INFLUXDB_RETENTION"
	influx bucket create "$@" >/dev/null || fail "cannot create bucket $P1_BUCKET in organisation $INFLUX_ORG at $INFLUX_HOST (does the token have the permission?)"
	id=$(bucket_id)
	[ -n "$id" ] || fail "bucket $P1_BUCKET was created but is not listed"
	echo "influxdb-init: created bucket $P1_BUCKET"
fi

# The token already written is kept while it can still read the bucket on
# this server (a token of another server, or deleted in the UI, cannot).
if [ -s "$out" ] && INFLUX_TOKEN=$(cat "$out") influx bucket list --name "$P1_BUCKET" --hide-headers 2>/dev/null | grep -q "^$id[[:space:]]"; then
	echo "influxdb-init: p1logger's token for bucket $P1_BUCKET is valid"
else
	json=$(influx auth create --description "p1logger: write and read bucket $P1_BUCKET" \
		--write-bucket "$id" --read-bucket "$id" --json) ||
		fail "cannot create a token for bucket $P1_BUCKET (does the setup token have the permission?)"
	token=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"token":[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
	[ -n "$token" ] || fail "influx auth create printed no token"
	(umask 077 && printf '%s\n' "$token" >"$out.new")
	chown "$p1logger_uid:$p1logger_uid" "$out.new"
	mv "$out.new" "$out"
	echo "influxdb-init: created p1logger's token (write and read bucket $P1_BUCKET only)"
fi

sh "$(dirname "$0")/apply-dashboard.sh" "$dashboard"
if [ "$INFLUXDB_SETUP" = local ]; then
	echo "influxdb-init: InfluxDB UI http://localhost:${INFLUXDB_PORT:-8086}, user ${INFLUXDB_USERNAME:-admin}; password: docker compose exec influxdb cat /etc/p1logger-admin/password"
fi
