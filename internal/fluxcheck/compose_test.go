package fluxcheck

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// designVars are DESIGN.md's environment variables: the daemon must read
// each of them, and .env.example and the compose file must carry them.
var designVars = []string{
	"P1_GATEWAYS", "P1_GATEWAYS_FILE", "P1_CYCLE", "P1_INFLUX_URL",
	"P1_INFLUX_TOKEN", "P1_INFLUX_TOKEN_FILE", "P1_INFLUX_ORG", "P1_INFLUX_BUCKET",
	"P1_TIMEZONE", "P1_ROLLUP_INTERVAL", "P1_IDLE_TIMEOUT", "P1_SPOOL_DIR",
	"P1_HTTP_ADDR", "P1_LOG_LEVEL", "P1_LOG_FORMAT",
}

// daemonVars returns the variables the daemon reads: the env tags of its
// config struct. It is DESIGN.md's list plus what later issues added
// (P1_SPOOL_MAX_BYTES), so docs are checked against the code, not a copy.
func daemonVars(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`env:"(P1_[A-Z0-9_]+)"`).FindAllStringSubmatch(readRepoFile(t, "cmd/p1logger/config.go"), -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	for _, v := range designVars {
		if !slices.Contains(names, v) {
			t.Errorf("cmd/p1logger/config.go does not read %s (DESIGN.md)", v)
		}
	}
	return names
}

// documented returns the variables .env.example sets or shows commented out
// ("NAME=value" or "# NAME=value" at the start of a line).
func documented(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^(?:# ?)?([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(readRepoFile(t, ".env.example"), -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// stackFixed are the variables the compose stack sets to values of its
// own, not from .env: the token p1logger gets is the bucket-scoped one that
// influxdb-init writes to a file (P1_INFLUX_TOKEN must never be passed
// beside it: the daemon refuses both), and the spool directory and HTTP
// address are the container's.
var stackFixed = map[string]string{
	"P1_INFLUX_TOKEN_FILE": "/run/p1logger/influx/token",
	"P1_SPOOL_DIR":         "/var/lib/p1logger/spool",
	"P1_HTTP_ADDR":         `":9188"`,
	"P1_INFLUX_TOKEN":      "",
}

func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	doc := documented(t)
	vars := daemonVars(t)
	for _, v := range vars {
		if _, fixed := stackFixed[v]; !fixed && !slices.Contains(doc, v) {
			t.Errorf(".env.example does not document %s", v)
		}
	}
	for _, v := range doc {
		if strings.HasPrefix(v, "P1_") && !slices.Contains(vars, v) && v != "P1_HTTP_PORT" {
			t.Errorf(".env.example documents %s, which the daemon does not read", v)
		}
	}
	compose := readRepoFile(t, "docker-compose.yml")
	for _, m := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(compose, -1) {
		if !slices.Contains(doc, m[1]) {
			t.Errorf("docker-compose.yml uses ${%s}, which .env.example does not document", m[1])
		}
	}
}

func TestComposePassesEveryVariable(t *testing.T) {
	compose := readRepoFile(t, "docker-compose.yml")
	for _, v := range daemonVars(t) {
		if val, fixed := stackFixed[v]; fixed {
			passed := regexp.MustCompile(`(?m)^\s+` + v + `:`).MatchString(compose)
			switch {
			case val == "" && passed:
				t.Errorf("docker-compose.yml passes %s; the stack gives p1logger its token as a file only", v)
			case val != "" && !regexp.MustCompile(`(?m)^\s+`+v+`: `+regexp.QuoteMeta(val)+`$`).MatchString(compose):
				t.Errorf("docker-compose.yml does not set %s: %s", v, val)
			}
			continue
		}
		// Each as "NAME: ${NAME...}", so that .env reaches the daemon.
		if !regexp.MustCompile(`(?m)^\s+` + v + `: \$\{` + v + `[:}]`).MatchString(compose) {
			t.Errorf("docker-compose.yml does not pass %s: ${%s...} to p1logger", v, v)
		}
	}
	// The situations (local InfluxDB, existing InfluxDB, demo) are the
	// override files of deploy/compose, rendered and checked by
	// deploy/compose/test.sh; the base file holds what all three share.
	for _, want := range []string{
		"condition: service_completed_successfully",
		"restart: unless-stopped",
		"dockerfile: deploy/Dockerfile",
		"spool:/var/lib/p1logger/spool",
	} {
		if !strings.Contains(compose, want) {
			t.Errorf("docker-compose.yml lacks %q", want)
		}
	}
	// Files the compose file mounts must exist.
	for _, m := range regexp.MustCompile(`- \./([^:]+):`).FindAllStringSubmatch(compose, -1) {
		if _, err := os.Stat(repoFile(t, m[1])); err != nil {
			t.Errorf("docker-compose.yml mounts ./%s: %v", m[1], err)
		}
	}
}

func TestDockerfile(t *testing.T) {
	df := readRepoFile(t, "deploy/Dockerfile")
	for _, want := range []string{
		"CGO_ENABLED=0",
		"-trimpath",
		"./cmd/p1logger ./cmd/p1sim",
		"ENV P1_SPOOL_DIR=/var/lib/p1logger/spool",
		`VOLUME ["/var/lib/p1logger/spool"]`,
		"EXPOSE 9188",
		`CMD ["/usr/local/bin/p1logger", "healthcheck"]`,
		`ENTRYPOINT ["/usr/local/bin/p1logger"]`,
		"org.opencontainers.image.source",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("deploy/Dockerfile lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^USER [1-9]`).MatchString(df) {
		t.Error("deploy/Dockerfile does not end as a non-root USER")
	}
}
