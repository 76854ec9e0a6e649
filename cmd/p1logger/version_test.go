package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestNewBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "-trimpath", Value: "true"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "b32b44e1234567890abcdef1234567890abcdef0"},
		{Key: "vcs.time", Value: "2026-12-01T20:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name    string
		bi      *debug.BuildInfo
		stamped string
		want    buildInfo
	}{
		{"no build info", nil, "", buildInfo{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}},
		{"go install module@version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}}, "",
			buildInfo{Version: "v1.2.0", Revision: "unknown", GoVersion: "go1.26.8"}},
		{"git checkout, uncommitted changes", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261201200000-b32b44e12345+dirty"}, Settings: vcs}, "",
			buildInfo{Version: "v0.0.0-20261201200000-b32b44e12345+dirty", Revision: "b32b44e1234567890abcdef1234567890abcdef0", Time: "2026-12-01T20:00:00Z", Modified: true, GoVersion: "go1.26.8"}},
		{"release build stamps the version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs[:4]}, "1.2.0",
			buildInfo{Version: "1.2.0", Revision: "b32b44e1234567890abcdef1234567890abcdef0", Time: "2026-12-01T20:00:00Z", GoVersion: "go1.26.8"}},
	}
	for _, tc := range tests {
		if got := newBuildInfo(tc.bi, tc.stamped); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	got := buildInfo{Version: "v1.2.0", Revision: "abc", Time: "2026-12-01T20:00:00Z", Modified: true, GoVersion: "go1.26.8"}.String()
	want := "p1logger v1.2.0 (revision abc+modified, 2026-12-01T20:00:00Z) go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH
	if got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
}

// TestBinaryVersion builds p1logger in this checkout and runs `version` and
// `--version`: both must print the commit git has checked out, which only
// the go command's VCS stamp can know.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout (git rev-parse HEAD: %v)", err)
	}
	rev := strings.TrimSpace(string(head))
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		// The go command looks for a .git directory; a worktree has a file.
		t.Skip("a git worktree: the go command records no VCS information in one")
	}
	bin := filepath.Join(t.TempDir(), "p1logger")
	// -buildvcs=auto: a GOFLAGS=-buildvcs=false in the environment must not
	// hide what every user's build records.
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`^p1logger v\S+ \(revision ` + rev + `(\+modified)?, \d{4}-\d\d-\d\dT\S+\) go1\.\S+ \S+/\S+\n$`)
	for _, arg := range []string{"version", "--version"} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, arg)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("p1logger %s: %v\n%s", arg, err, stderr.String())
		}
		if !line.MatchString(stdout.String()) {
			t.Errorf("p1logger %s printed %q, want the revision %s in %s", arg, stdout.String(), rev, line)
		}
	}
	if err := exec.Command(bin, "version", "extra").Run(); err == nil {
		t.Errorf("p1logger version extra: exit 0, want 2")
	}
}
