//go:build !windows

package main

// runAsWindowsService: only Windows has a service control manager to
// answer; elsewhere the service manager sends SIGTERM.
func runAsWindowsService() (bool, int) { return false, 0 }
