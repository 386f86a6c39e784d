//go:build !linux

package tracker

// The change log of the kernel program (dirtylog_linux.go) does not exist
// here: an agent killed on this system resyncs by hashes.

// ArmChangeLog fails: there is no kernel change log on this system.
func (t *Linux) ArmChangeLog(path string) (bool, error) { return false, errNoTracker("change log") }

// ChangeLog fails: there is no kernel change log on this system.
func (t *Linux) ChangeLog(path string) ([]Range, error) { return nil, errNoTracker("change log") }

// SettleChangeLog fails: there is no kernel change log on this system.
func (t *Linux) SettleChangeLog(paths []string, gen uint64) error {
	return errNoTracker("change log")
}
