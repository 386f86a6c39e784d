package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// PinRoot is where the tracker's pins live by default.
const PinRoot = "/sys/fs/bpf"

// DefaultPinDir is the bpffs directory of the tracker's pins of machine,
// PinRoot/lifeboat-NAME. bpffs refuses a '.' in a name, and a machine's
// name is often its dotted FQDN: such a name is mapped to a safe form,
// its dots made '_' and a hash of the whole name appended so that two
// names never share a directory (web1.example.com:
// lifeboat-web1_example_com-1a2b3c4d). Every other valid name
// (api.ValidName) is used as it is.
func DefaultPinDir(machine string) string {
	return PinRoot + "/lifeboat-" + pinName(machine)
}

func pinName(machine string) string {
	if !strings.Contains(machine, ".") {
		return machine
	}
	sum := sha256.Sum256([]byte(machine))
	return strings.ReplaceAll(machine, ".", "_") + "-" + hex.EncodeToString(sum[:4])
}
