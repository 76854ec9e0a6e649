#!/usr/bin/env bash
# Checks the compose files in their three situations (docker-compose.yml),
# without a Docker engine: `docker-compose config` renders each one from
# .env.example as compose would run it, and the rendered file is checked
# for what the situation promises. Run by deploy/test.sh; needs
# docker-compose (v1 or v2) and python3 with PyYAML (docker-compose v1's
# own dependency).
set -euo pipefail
cd "$(dirname "$0")/../.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# render NAME ENVFILE [-f FILE...]: the rendered compose file of a situation.
render() {
	local name=$1 envfile=$2
	shift 2
	if ! docker-compose --env-file "$envfile" "$@" config >"$tmp/$name.yml" 2>"$tmp/$name.err"; then
		echo "compose: situation $name does not render:" >&2
		cat "$tmp/$name.err" >&2
		exit 1
	fi
}

# An .env for the situations that read real gateways: the example with the
# lines a user edits.
sed -e 's|^P1_GATEWAYS=$|P1_GATEWAYS=home=192.168.1.50:8088,garage=p1gw.lan:8088|' \
	-e 's|^COMPOSE_FILE=.*||' .env.example >"$tmp/real.env"
sed -e 's|^# P1_INFLUX_URL=.*|P1_INFLUX_URL=https://influx.example.net:8086|' "$tmp/real.env" >"$tmp/existing.env"

# demo: the unedited .env.example (its COMPOSE_FILE), `docker compose up`.
render demo .env.example
render local "$tmp/real.env" -f docker-compose.yml -f deploy/compose/local.yml
render existing "$tmp/existing.env" -f docker-compose.yml -f deploy/compose/existing.yml

# existing without P1_INFLUX_URL must not render, and must say why.
if docker-compose --env-file "$tmp/real.env" -f docker-compose.yml -f deploy/compose/existing.yml config >/dev/null 2>"$tmp/nourl.err"; then
	echo "compose: situation existing renders without P1_INFLUX_URL" >&2
	exit 1
fi
grep -q "set P1_INFLUX_URL in .env" "$tmp/nourl.err" || {
	echo "compose: situation existing without P1_INFLUX_URL fails without naming it:" >&2
	cat "$tmp/nourl.err" >&2
	exit 1
}

python3 - "$tmp" <<'PY'
import ipaddress, sys, yaml

tmp = sys.argv[1]
failures = []

def check(ok, situation, what):
    if not ok:
        failures.append(f"{situation}: {what}")

def env(svc):
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in e)
    return {k: ("" if v is None else str(v)) for k, v in e.items()}

def deps(svc):
    d = svc.get("depends_on") or {}
    return d if isinstance(d, dict) else {k: {"condition": "service_started"} for k in d}

want_services = {
    "demo": {"influxdb", "influxdb-init", "p1logger", "p1sim"},
    "local": {"influxdb", "influxdb-init", "p1logger"},
    "existing": {"influxdb-init", "p1logger"},
}
for situation, want in want_services.items():
    text = open(f"{tmp}/{situation}.yml").read()
    cfg = yaml.safe_load(text)
    services = cfg["services"]
    check(set(services) == want, situation, f"services {sorted(services)}, want {sorted(want)}")
    check("change-me" not in text, situation, "a change-me placeholder is in the rendered file")
    p1 = services["p1logger"]
    e = env(p1)

    # The image is built once: only p1logger builds; whoever runs the same
    # image does not.
    builders = sorted(n for n, s in services.items() if "build" in s)
    check(builders == ["p1logger"], situation, f"services that build: {builders}, want only p1logger")
    for n, s in services.items():
        if n != "p1logger" and s.get("image") == p1.get("image"):
            check("build" not in s, situation, f"{n} builds p1logger's image again")

    # The daemon refuses a variable together with its _FILE: never both set.
    for n, s in services.items():
        se = env(s)
        for k, v in se.items():
            if k.endswith("_FILE") and v and se.get(k[: -len("_FILE")]):
                check(False, situation, f"{n} sets both {k[:-5]} and {k}")
    check("P1_INFLUX_TOKEN" not in e, situation, "p1logger is given P1_INFLUX_TOKEN (it reads the init job's token file)")
    check(e.get("P1_INFLUX_TOKEN_FILE") == "/run/p1logger/influx/token", situation,
          f"P1_INFLUX_TOKEN_FILE is {e.get('P1_INFLUX_TOKEN_FILE')!r}")
    mounts = [str(v) for v in p1.get("volumes", [])]
    check(any(m.startswith("p1logger-token:/run/p1logger/influx") and m.endswith(":ro") for m in mounts),
          situation, f"p1logger does not mount the token volume read-only: {mounts}")
    check(not p1.get("secrets"), situation, "p1logger is given a secret (the setup token is the init job's only)")

    # p1logger starts after the init job succeeded, which starts after a
    # local InfluxDB is healthy.
    check(deps(p1).get("influxdb-init", {}).get("condition") == "service_completed_successfully",
          situation, f"p1logger depends_on {deps(p1)}")
    init = services["influxdb-init"]
    ie = env(init)
    if "influxdb" in services:
        check(deps(init).get("influxdb", {}).get("condition") == "service_healthy", situation,
              f"influxdb-init depends_on {deps(init)}")
        check(ie.get("INFLUXDB_SETUP") == "local", situation, f"INFLUXDB_SETUP {ie.get('INFLUXDB_SETUP')!r}")
    check(ie.get("INFLUX_HOST") == e.get("P1_INFLUX_URL"), situation,
          f"the init job sets up {ie.get('INFLUX_HOST')!r} but p1logger writes to {e.get('P1_INFLUX_URL')!r}")
    check(ie.get("P1_BUCKET") == e.get("P1_INFLUX_BUCKET") and ie.get("INFLUX_ORG") == e.get("P1_INFLUX_ORG"),
          situation, "the init job's bucket or organisation differ from p1logger's")

    # Every gateway p1logger dials is reachable: a bare host name (no dot,
    # not an address) can only be a service of this stack.
    gws = [g for g in e.get("P1_GATEWAYS", "").split(",") if g]
    check(gws, situation, "no P1_GATEWAYS")
    for g in gws:
        addr = g.split("=", 1)[-1]
        host = addr.rsplit(":", 1)[0]
        try:
            ipaddress.ip_address(host)
            continue
        except ValueError:
            pass
        if "." not in host:
            check(host in services, situation, f"gateway {g} dials {host}, which this stack does not start")

    if situation == "demo":
        check(gws == ["demo=p1sim:8088"], situation, f"P1_GATEWAYS {gws}")
        check(deps(p1).get("p1sim") is not None, situation, "p1logger does not wait for p1sim")
    else:
        check(gws == ["home=192.168.1.50:8088", "garage=p1gw.lan:8088"], situation, f"P1_GATEWAYS {gws}, want the .env's")
    if situation == "existing":
        check(e.get("P1_INFLUX_URL") == "https://influx.example.net:8086", situation, f"P1_INFLUX_URL {e.get('P1_INFLUX_URL')!r}")
        check(ie.get("INFLUXDB_SETUP") == "existing", situation, f"INFLUXDB_SETUP {ie.get('INFLUXDB_SETUP')!r}")
        secrets = [s if isinstance(s, str) else s.get("source") for s in init.get("secrets", [])]
        check(secrets == ["influxdb_setup_token"], situation, f"influxdb-init secrets {secrets}")
        check(ie.get("INFLUX_SETUP_TOKEN_FILE") == "/run/secrets/influxdb_setup_token", situation,
              f"INFLUX_SETUP_TOKEN_FILE {ie.get('INFLUX_SETUP_TOKEN_FILE')!r}")
    else:
        check(e.get("P1_INFLUX_URL") == "http://influxdb:8086", situation, f"P1_INFLUX_URL {e.get('P1_INFLUX_URL')!r}")

if failures:
    print("compose: " + "\ncompose: ".join(failures), file=sys.stderr)
    sys.exit(1)
print("compose: demo (unedited .env.example), local and existing render and keep their promises")
PY

# influxdb-init.sh, run against deploy/compose/testdata/influx (a stand-in
# for the influx CLI that keeps a server's state): the local set-up, the
# reruns of every `up`, an existing server, and the refusals.
if [ "$(id -u)" != 0 ]; then
	echo "compose: influxdb-init.sh not run (it gives p1logger's token to uid 65532, which needs root)"
	exit 0
fi
fake=$PWD/deploy/compose/testdata
init() { # init STATE [VAR=value...]: run influxdb-init.sh as compose does
	local state=$1
	shift
	env -i PATH="$fake:/usr/bin:/bin" FAKE_INFLUX_STATE="$state" INFLUX_HOST=http://influxdb:8086 \
		INFLUX_ORG=home P1_BUCKET=p1 INIT_ADMIN_DIR="$state/admin" INIT_TOKEN_FILE="$state/token/token" \
		INIT_DASHBOARD=$PWD/deploy/influxdb/p1logger-dashboard.json "$@" \
		sh deploy/compose/influxdb-init.sh
}
fail() {
	echo "compose: influxdb-init.sh: $*" >&2
	exit 1
}
s=$tmp/local
mkdir -p "$s/admin" "$s/token"
init "$s" INFLUXDB_SETUP=local >"$s/out1" 2>&1 || fail "first local run failed: $(cat "$s/out1")"
[ -e "$s/setup" ] || fail "did not set InfluxDB up"
admin=$(cat "$s/admin/token")
[ ${#admin} -eq 64 ] || fail "admin token is ${#admin} characters, want 64 hex digits"
[ "$(stat -c %a "$s/admin/token")" = 600 ] || fail "admin token file mode $(stat -c %a "$s/admin/token"), want 600"
tok=$(cat "$s/token/token")
case $tok in scoped-*) ;; *) fail "p1logger's token is '$tok', not the scoped one created for it" ;; esac
[ "$tok" != "$admin" ] || fail "p1logger got the admin token"
grep -q -- "auth create .*--write-bucket 1000 --read-bucket 1000" "$s/calls" || fail "the token is not scoped to bucket p1 (1000): $(grep 'auth create' "$s/calls")"
grep -q -- "--all-access\|--operator" "$s/calls" && fail "an all-access token was created"
[ "$(stat -c '%a %u' "$s/token/token")" = "600 65532" ] || fail "token file $(stat -c '%a %u' "$s/token/token"), want 600 owned by 65532"
grep -q "^apply --stack-id stack1 " "$s/calls" || fail "dashboard not applied"
grep -q "docker compose exec influxdb cat /etc/p1logger-admin/password" "$s/out1" || fail "does not say where the password is"

# Every later `up`: the same admin and p1logger tokens, no new set-up.
init "$s" INFLUXDB_SETUP=local >"$s/out2" 2>&1 || fail "second local run failed: $(cat "$s/out2")"
[ "$(cat "$s/token/token")" = "$tok" ] || fail "a rerun replaced p1logger's working token"
[ "$(grep -c '^setup ' "$s/calls")" = 1 ] || fail "a rerun set InfluxDB up again"
[ "$(grep -c '^auth create' "$s/calls")" = 1 ] || fail "a rerun created another token"

# A token that stopped working (deleted in the UI) is replaced.
sed -i "/^$tok\$/d" "$s/tokens"
init "$s" INFLUXDB_SETUP=local >"$s/out3" 2>&1 || fail "run after the token was deleted failed: $(cat "$s/out3")"
[ "$(cat "$s/token/token")" != "$tok" ] || fail "a deleted token was kept"

# An existing server: no set-up, the bucket created, a scoped token made
# with the setup token from the secret.
e=$tmp/existing
mkdir -p "$e/token"
echo "the-admin-token" >"$e/tokens"
: >"$e/buckets"
printf 'the-admin-token\n' >"$e/setup-token"
init "$e" INFLUXDB_SETUP=existing INFLUX_SETUP_TOKEN_FILE="$e/setup-token" >"$e/out" 2>&1 || fail "existing run failed: $(cat "$e/out")"
grep -q '^setup ' "$e/calls" && fail "set up an existing server"
grep -q "^bucket create --name p1" "$e/calls" || fail "did not create the missing bucket"
grep -q "^scoped-" "$e/token/token" || fail "no scoped token for an existing server"

# Refusals, each one line that names the problem.
printf 'change-me-to-a-long-random-token\n' >"$e/placeholder"
if init "$e" INFLUXDB_SETUP=existing INFLUX_SETUP_TOKEN_FILE="$e/placeholder" >"$e/ph" 2>&1; then fail "accepted a placeholder setup token"; fi
grep -q "is a placeholder, not a token" "$e/ph" || fail "placeholder refused without saying so: $(cat "$e/ph")"
if init "$e" >"$e/none" 2>&1; then fail "ran without a situation"; fi
grep -q "choose a situation with COMPOSE_FILE" "$e/none" || fail "no situation, unclear message: $(cat "$e/none")"
mkdir "$e/dir-not-file"
if init "$e" INFLUXDB_SETUP=existing INFLUX_SETUP_TOKEN_FILE="$e/dir-not-file" >"$e/dir" 2>&1; then fail "accepted a directory as the setup token"; fi
grep -q "is not a file: create secrets/influxdb-setup-token" "$e/dir" || fail "missing secret file, unclear message: $(cat "$e/dir")"
echo "compose: influxdb-init.sh sets up, scopes p1logger's token to its bucket, keeps it across reruns, refuses placeholders"
