package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version and revision are stamped by builds that know them better than
// the go command: a release (-ldflags "-X main.version=1.2.0
// -X main.revision=COMMIT", .goreleaser.yaml) and the Docker image, whose
// build context has no .git. Other builds leave them empty and take what the
// go command records in the binary: the module's version for `go install
// …@v1.2.0`; in a git checkout (unless -buildvcs=false) a pseudo-version
// from the tag and commit, and the commit; "(devel)" without either.
var version, revision string

// buildInfo is what `p1logger version` and p1logger_build_info report.
type buildInfo struct {
	Version   string // "v1.2.0", "v0.0.0-20261201…-b32b44e12345+dirty", "(devel)"
	Revision  string // the VCS commit, "unknown" when the build recorded none
	Time      string // the commit's time (RFC 3339), empty when unknown
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string
}

// readBuildInfo reads this binary's build information. A binary built
// without module support records none: its version is "(devel)" and its
// revision "unknown".
func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	info := newBuildInfo(bi, version)
	if revision != "" {
		info.Revision = revision
	}
	return info
}

// newBuildInfo turns the go command's record (nil when the binary has none)
// and the version stamped by the release build (empty when none was) into a
// buildInfo. A stamped version wins: GoReleaser builds from a checkout of
// the tag, where the recorded one would be the same or a pseudo-version.
func newBuildInfo(bi *debug.BuildInfo, stamped string) buildInfo {
	info := buildInfo{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	if bi != nil {
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if stamped != "" {
		info.Version = stamped
	}
	return info
}

// String is the line `p1logger version` prints, e.g.
// "p1logger v1.2.0 (revision 3f2a…, 2026-12-01T20:00:00Z) go1.26.8 linux/amd64";
// a revision built with uncommitted changes is followed by "+modified".
func (b buildInfo) String() string {
	rev := b.Revision
	if b.Modified {
		rev += "+modified"
	}
	if b.Time != "" {
		rev += ", " + b.Time
	}
	return fmt.Sprintf("p1logger %s (revision %s) %s %s/%s", b.Version, rev, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// runVersion is `p1logger version` and `p1logger --version`: one line on
// stdout, exit 0. It takes no arguments.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "p1logger version: takes no arguments, got %q\n", args)
		return 2
	}
	fmt.Fprintln(stdout, readBuildInfo())
	return 0
}
