#!/usr/bin/env bash
# version.sh: print the version of the build that the Makefile stamps into
# every binary (--version, lifeboat_build_info): the newest v* tag as
# git describe gives it (v1.2.3 -> 1.2.3, v1.2.3-4-gabc -> 1.2.3-4-gabc),
# else 0.0.0-dev+<short commit>; "-dirty" when the work tree has changes;
# "devel" outside a git checkout.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
if d=$(git describe --tags --dirty --match 'v[0-9]*' 2>/dev/null); then
	echo "${d#v}"
elif c=$(git rev-parse --short HEAD 2>/dev/null); then
	dirty=
	git diff --quiet HEAD 2>/dev/null || dirty=-dirty
	echo "0.0.0-dev+$c$dirty"
else
	echo devel
fi
