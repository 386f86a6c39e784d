package tracker

import "errors"

// ErrGenerationMoved is returned by SettleChangeLog (dirtylog_linux.go)
// when the tracker was cut again since the generation it was given.
var ErrGenerationMoved = errors.New("change log: the generation moved on")
