// Package sysservice registers a Lifeboat program as a system service and
// controls it, through github.com/kardianos/service: a systemd unit on
// Linux with systemd, an init script (System V) on Linux without it, a
// Windows service on Windows. It is what `lifeboat-agent install|uninstall|
// start|stop|restart|status` and the same verbs of `lifeboat-server` run.
//
// The service always runs `PROGRAM run --config FILE`: the configuration
// file (internal/config) is the one place an operator sets it up.
//
// It owns the unit's text (rendered here, so that it can be printed and
// checked with `systemd-analyze verify`), the choice of init system and
// undoing everything install did. It must never start a program whose
// configuration is not complete (the Check hook says so), and never leave
// a registration behind on uninstall.
package sysservice
