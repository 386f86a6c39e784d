// Package buildinfo owns the version of the build: the string the Makefile
// and scripts/package.sh set with -ldflags -X (from git describe), the
// commit and Go version the toolchain stamps into the binary, the
// `--version` line every command prints, and the lifeboat_build_info
// metric. It never reads anything but the binary's own build information.
package buildinfo
