#!/usr/bin/env bash
# package.sh: build the .deb and .rpm of lifeboat-agent and lifeboat-server
# with nfpm (go tool nfpm) into dist/:
#   dist/lifeboat-agent_<VERSION>_<arch>.deb   dist/lifeboat-agent-<VERSION>-1.<rpmarch>.rpm
#   dist/lifeboat-server_<VERSION>_<arch>.deb  dist/lifeboat-server-<VERSION>-1.<rpmarch>.rpm
# VERSION: from the environment, else `git describe --tags` (v1.2.3 -> 1.2.3),
# else 0.0.0~git<commit date>.<short hash>. DIST overrides dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
if [ -z "${VERSION:-}" ]; then
	if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		VERSION=${d#v}
		VERSION=${VERSION//-/+}
	else
		VERSION="0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S).$(git rev-parse --short HEAD)"
	fi
fi
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || { echo "package.sh: VERSION '$VERSION' is not a package version (digits first; letters, digits, . + ~)" >&2; exit 1; }
ARCH=${ARCH:-$($GO env GOARCH)}
DIST=${DIST:-dist}
build="$DIST/build"
rm -rf "$build"
mkdir -p "$build/man"
export VERSION ARCH BUILD=$build
echo "package.sh: version $VERSION, arch $ARCH, into $DIST/"
CGO_ENABLED=0 GOARCH=$ARCH $GO build -trimpath -ldflags "-s -w -X github.com/lifeboat-dr/lifeboat/internal/buildinfo.Version=$VERSION" -o "$build/" ./cmd/lifeboat-agent ./cmd/agentctl ./cmd/lifeboat-server ./cmd/lifeboat

# man pages from each program's --help text.
man() { # NAME SECTION SUMMARY FILES...
	local name=$1 sec=$2 summary=$3 help
	shift 3
	help=$("$build/$name" --help 2>&1 || true)
	{
		echo ".TH ${name^^} $sec \"$(git log -1 --format=%cs)\" \"lifeboat $VERSION\" \"Lifeboat\""
		echo ".SH NAME"
		echo "$name \\- $summary"
		echo ".SH SYNOPSIS"
		echo ".nf"
		sed -e 's/\\/\\\\/g' -e 's/^\([.'"'"']\)/\\\&\1/' <<<"$help"
		echo ".fi"
		echo ".SH DESCRIPTION"
		echo "Run \\fB$name COMMAND \\-h\\fR for the flags of a command."
		if [ $# -gt 0 ]; then
			echo ".SH FILES"
			for f in "$@"; do echo ".TP"; echo "$f"; done
		fi
		echo ".SH SEE ALSO"
		echo "/usr/share/doc/lifeboat-agent, /usr/share/doc/lifeboat-server, https://github.com/lifeboat-dr/lifeboat/tree/main/docs"
	} | gzip -9n >"$build/man/$name.$sec.gz"
}
man lifeboat-agent 8 "Lifeboat mobility agent" "/etc/lifeboat/agent.toml" "/etc/lifeboat/scripts.d" "/var/lib/lifeboat/agent"
man agentctl 8 "diagnose and control the local Lifeboat agent"
man lifeboat-server 8 "Lifeboat configuration, process and master-target server" "/etc/lifeboat/server.toml" "/var/lib/lifeboat/server"
man lifeboat 1 "Lifeboat admin command"

for p in agent server; do
	{
		echo "lifeboat-$p ($VERSION) unstable; urgency=medium"
		echo
		echo "  * Built from commit $(git rev-parse --short HEAD)."
		echo
		echo " -- Lifeboat developers <lifeboat@lifeboat-dr.invalid>  $(git log -1 --format=%cD)"
	} | gzip -9n >"$build/$p-changelog.gz"
done

for p in agent server; do
	$GO tool nfpm package --config "packaging/$p/nfpm.yaml" --packager deb --target "$DIST/lifeboat-${p}_${VERSION}_${ARCH}.deb"
	$GO tool nfpm package --config "packaging/$p/nfpm.yaml" --packager rpm --target "$DIST/"
done
ls -l "$DIST"/*.deb "$DIST"/*.rpm

# The Windows agent's MSI, beside them (wixl).
DIST=$DIST VERSION=$VERSION GO=$GO ./scripts/package-msi.sh
