package httpapi

// Log keys, the same in every component.
const (
	LogComponent = "component"
	LogMachine   = "machine"
	LogDisk      = "disk"
	LogSeq       = "seq"
	LogAddr      = "addr"
	LogErr       = "err"
	LogPoint     = "point"
	LogRemote    = "remote"
	LogStatus    = "status"
)
