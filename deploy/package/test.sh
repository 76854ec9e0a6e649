#!/usr/bin/env bash
# A snapshot release, made and checked locally: what .goreleaser.yaml makes
# for a real release, built without GoReleaser (which takes minutes to
# install from the module proxy) from the same pieces:
#   - p1logger and p1sim cross-compiled for linux amd64, arm64 and armv7,
#     static, with the version and revision stamped;
#   - .deb and .rpm packages of each made by nfpm from deploy/package/nfpm.yaml
#     (the systemd unit, the configuration file, the licence);
#   - checksums.txt over all of it;
# then checks the binaries' architecture and version, the packages' files,
# modes and scripts, and the systemd unit (systemd-analyze verify and its
# security exposure). Everything goes to dist/snapshot/ (or $1).
#   ./deploy/package/test.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$(go env GOPATH)/bin:$PATH"

out=${1:-dist/snapshot}
command -v nfpm >/dev/null || {
	echo "package: nfpm not found; go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2 (.ci/run does)" >&2
	exit 2
}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# A snapshot's version, as GoReleaser names one: the last tag, or 0.0.0, and
# the commit.
tag=$(git describe --tags --abbrev=0 2>/dev/null || echo v0.0.0)
version="${tag#v}-SNAPSHOT-${rev:0:12}"

fail() {
	echo "package: $*" >&2
	exit 1
}

# target GOARCH GOARM NFPMARCH DEBARCH
targets=("amd64 - amd64 amd64" "arm64 - arm64 arm64" "arm 7 arm7 armhf")
for t in "${targets[@]}"; do
	read -r goarch goarm nfpmarch debarch <<<"$t"
	bin="$out/linux_$nfpmarch"
	mkdir -p "$bin"
	armenv=()
	[ "$goarm" = - ] || armenv=(GOARM="$goarm")
	env CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "${armenv[@]}" go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$version -X main.revision=$rev" \
		-o "$bin/" ./cmd/p1logger ./cmd/p1sim
	for b in p1logger p1sim; do
		info=$(go version -m "$bin/$b")
		grep -q "GOARCH=$goarch\$" <<<"$info" || fail "$bin/$b is not GOARCH=$goarch"
		[ "$goarm" = - ] || grep -q "GOARM=$goarm\$" <<<"$info" || fail "$bin/$b is not GOARM=$goarm"
		grep -q "CGO_ENABLED=0" <<<"$info" || fail "$bin/$b is not static (CGO_ENABLED=0)"
	done
	for fmt in deb rpm; do
		VERSION=$version ARCH=$nfpmarch BIN=$bin nfpm pkg -f deploy/package/nfpm.yaml -p "$fmt" -t "$out/" >/dev/null
	done
	deb=$(ls "$out"/p1logger_*_"$debarch".deb)
	# dpkg-deb is on every Debian; elsewhere the .deb is checked by its size.
	if command -v dpkg-deb >/dev/null; then
		files=$(dpkg-deb -c "$deb")
		for want in \
			"-rwxr-xr-x root/root .* ./usr/bin/p1logger" \
			"-rwxr-xr-x root/root .* ./usr/bin/p1sim" \
			"-rw-r--r-- root/root .* ./usr/lib/systemd/system/p1logger.service" \
			"-rw------- root/root .* ./etc/p1logger/p1logger.env" \
			"-rw-r--r-- root/root .* ./usr/share/doc/p1logger/LICENSE"; do
			grep -Eq -- "^${want}\$" <<<"$files" || fail "$deb has no $want:"$'\n'"$files"
		done
		fields=$(dpkg-deb -f "$deb" Package Version Architecture)
		grep -qx "Architecture: $debarch" <<<"$fields" || fail "$deb: $fields"
		# Debian spells a pre-release 1.0.0~rc1: nfpm turns the first - into ~.
		grep -qx "Version: ${version/-/\~}" <<<"$fields" || fail "$deb: $fields"
		# (Listings in variables: grep -q on a pipe would SIGPIPE its writer.)
		ctrl=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
		conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
		grep -qx /etc/p1logger/p1logger.env <<<"$conffiles" || fail "$deb: /etc/p1logger/p1logger.env is not a conffile (an upgrade would overwrite it)"
		grep -qx './postinst' <<<"$ctrl" || fail "$deb has no postinst"
		grep -qx './prerm' <<<"$ctrl" || fail "$deb has no prerm"
	fi
	rpm=$(ls "$out"/p1logger-*."$( [ "$nfpmarch" = amd64 ] && echo x86_64 || { [ "$nfpmarch" = arm64 ] && echo aarch64 || echo armv7hl; })".rpm)
	[ "$(head -c 4 "$rpm" | od -An -tx1 | tr -d ' ')" = edabeedb ] || fail "$rpm is not an rpm (lead magic)"
done

# The binary of this machine's architecture runs and says what it is.
if [ "$(go env GOARCH)" = amd64 ]; then
	got=$("$out/linux_amd64/p1logger" version)
	[[ $got == "p1logger $version (revision $rev) "* ]] || fail "p1logger version printed '$got', want version $version and revision $rev"
fi

(cd "$out" && sha256sum linux_*/p1logger linux_*/p1sim ./*.deb ./*.rpm >checksums.txt && sha256sum -c --quiet checksums.txt)

# The unit as installed, pointing at a real binary (verify wants one).
if command -v systemd-analyze >/dev/null; then
	unit=$(mktemp -d)/p1logger.service
	sed "s|^ExecStart=/usr/bin/p1logger|ExecStart=$out/linux_amd64/p1logger|" deploy/systemd/p1logger.service >"$unit"
	systemd-analyze verify "$unit" || fail "systemd-analyze verify deploy/systemd/p1logger.service"
	exposure=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "package: systemd unit verified; exposure level ${exposure:-?} (systemd-analyze security: 0 safest, 10 unsafe)"
	awk -v e="${exposure:-10}" 'BEGIN { exit !(e <= 2.0) }' || fail "the unit's exposure level is ${exposure:-unknown}, want at most 2.0"
	rm -rf "$(dirname "$unit")"
fi
echo "package: snapshot $version in $out: $(cd "$out" && ls ./*.deb ./*.rpm | wc -l) packages, $(wc -l <"$out/checksums.txt") checksums"
