#!/usr/bin/env bash
# package-msi.sh: build the MSI of the Windows agent (lifeboat-agent.exe,
# agentctl.exe, the lifeboat-agent service) with wixl (Debian's wixl and
# msitools) into dist/lifeboat-agent-<VERSION>-x64.msi. VERSION and DIST as
# for package.sh; the MSI's own version is the leading x.y.z of VERSION.
# The MSI is built and checked on Linux (msiinfo); it has not been installed
# on Windows by this project's CI (docs/windows.md).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
if ! command -v wixl >/dev/null; then
	echo "package-msi.sh: wixl not found: apt-get install wixl msitools (scripts/install-deps.sh)" >&2
	exit 1
fi
if [ -z "${VERSION:-}" ]; then
	if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then VERSION=${d#v}; else VERSION=0.0.0; fi
fi
msiver=$(grep -oE '^[0-9]+(\.[0-9]+){0,2}' <<<"$VERSION" || true)
[ -n "$msiver" ] || { echo "package-msi.sh: VERSION '$VERSION' does not start with x.y.z" >&2; exit 1; }
DIST=${DIST:-dist}
build="$DIST/build-windows"
rm -rf "$build"
mkdir -p "$build"
CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $GO build -trimpath -ldflags "-s -w" -o "$build/" ./cmd/lifeboat-agent ./cmd/agentctl
out="$(cd "$DIST" && pwd)/lifeboat-agent-${VERSION}-x64.msi"
# wixl finds Source files relative to the directory it runs in
(cd "$build" && wixl -a x64 -D Version="$msiver" -D BuildDir=. -o "$out" "$OLDPWD/packaging/windows/lifeboat-agent.wxs")
rm -rf "$build"
ls -l "$out"
