package process

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// Problems of the disks of this process role (issue 18): an applier that
// keeps failing and uploads the role refuses are shown per machine in
// `lifeboat machines` and raised as alerts, never only logged.

// refusals are the last refused upload of each disk, until one is
// accepted again.
type refusals struct {
	mu sync.Mutex
	m  map[diskKey]*api.DiskProblem
}

// Remedies of refused uploads by status.
func refusalRemedy(status int) string {
	switch status {
	case http.StatusInsufficientStorage:
		return "free space on the process server's data directory (cache/) or move --data to a larger disk; the agent keeps its segments and retries"
	case http.StatusConflict:
		return "the agent and the server disagree on the segment sequence: see the agent's 'agentctl status'; a resync of the disk realigns them"
	case http.StatusRequestEntityTooLarge:
		return "raise the server's --max-segment-bytes or make the agent rotate segments sooner"
	}
	return "see the answer's hint in the agent's log and the server's log"
}

// noteUpload records the outcome of a segment upload: a refusal (a 4xx
// other than a move's 421, or a 5xx of the server's own storage) is kept
// until the disk's next accepted upload.
func (p *Role) noteUpload(machine, disk string, seq uint64, err error) {
	k := diskKey{machine, disk}
	p.ref.mu.Lock()
	defer p.ref.mu.Unlock()
	if err == nil {
		delete(p.ref.m, k)
		return
	}
	var he *httpapi.Error
	if !errors.As(err, &he) || he.Status == http.StatusMisdirectedRequest || he.Status == http.StatusServiceUnavailable {
		return // no answer (the connection broke), or a move in progress
	}
	if he.Code == api.CodeSuperseded {
		return // a dead agent process's last upload (fence.go)
	}
	now := time.Now()
	if p.ref.m == nil {
		p.ref.m = map[diskKey]*api.DiskProblem{}
	}
	r := p.ref.m[k]
	if r == nil || r.Status != he.Status {
		r = &api.DiskProblem{Disk: disk, Kind: api.DiskProblemRefused, Status: he.Status, Since: now}
		p.ref.m[k] = r
	}
	r.Count++
	r.Seq = seq
	r.Message = fmt.Sprintf("upload of segment %d refused (%d %s): %s", seq, he.Status, http.StatusText(he.Status), he.Msg)
	r.Remedy = he.Remedy
	if r.Remedy == "" {
		r.Remedy = refusalRemedy(he.Status)
	}
}

// DiskProblems returns the problems of every disk of machine this role
// holds, declared or not, sorted by disk. A nil Role has none.
func (p *Role) DiskProblems(machine string) []api.DiskProblem {
	if p == nil {
		return nil
	}
	var out []api.DiskProblem
	for _, d := range p.loaded(machine) {
		d.mu.Lock()
		if d.applyErr != "" {
			out = append(out, api.DiskProblem{Disk: d.name, Kind: api.DiskProblemApply, Seq: d.applied,
				Message: d.applyErr, Since: d.applySince,
				Remedy: fmt.Sprintf("see the server's log; if the segment itself is bad (a size or range target storage cannot hold), discard it with 'lifeboat machines discard %s %s %d': the disk is then resynced", machine, d.name, d.applied)})
		}
		if mk := d.discard; mk != nil {
			out = append(out, api.DiskProblem{Disk: d.name, Kind: api.DiskProblemDiscarded, Seq: mk.Seq, Since: mk.Time,
				Message: fmt.Sprintf("segments %d to %d discarded by the operator; the agent's resync has not begun", mk.Seq, mk.Next-1),
				Remedy:  "the agent resyncs the disk at its next upload: check that it runs ('agentctl status' on the machine)"})
		}
		d.mu.Unlock()
	}
	p.ref.mu.Lock()
	for k, r := range p.ref.m {
		if k.machine == machine {
			out = append(out, *r)
		}
	}
	p.ref.mu.Unlock()
	slices.SortFunc(out, func(a, b api.DiskProblem) int {
		return strings.Compare(a.Disk+"/"+a.Kind, b.Disk+"/"+b.Kind)
	})
	return out
}

// ProblemText is a disk problem as `lifeboat machines` lists it; where is
// "" or " on process server ID".
func ProblemText(dp api.DiskProblem, where string) string {
	if dp.Kind == api.DiskProblemApply {
		return "apply of disk " + dp.Disk + " failing" + where + ": " + dp.Message + " (" + dp.Remedy + ")"
	}
	return "disk " + dp.Disk + where + ": " + dp.Message + " (" + dp.Remedy + ")"
}

// MaxDiskGrowth bounds how far a segment's disk size may exceed the size
// the machine declared for the disk: a disk that grew is re-declared by
// its agent when it starts, and segments cut in between are accepted up
// to twice the declared size, never beyond.
const MaxDiskGrowth = 2

// MaxUndeclaredDiskBytes bounds the disk size of a segment of a machine
// that declared no disk set yet (an agent older than the disk set).
const MaxUndeclaredDiskBytes = 1 << 46 // 64 TiB

// checkHeader refuses a segment whose header does not fit the machine's
// disk set: an undeclared disk, or a disk size beyond the bound.
func (p *Role) checkHeader(machine, disk string, size int64) error {
	decl := p.machines.Disks(machine)
	if len(decl) == 0 {
		if size <= 0 || size > MaxUndeclaredDiskBytes {
			return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("segment declares a disk of %d bytes, outside (0, %d]", size, int64(MaxUndeclaredDiskBytes)),
				"the segment's header is damaged or forged; the agent declares its disks (PUT /v1/machine) before it sends segments")
		}
		return nil
	}
	for _, d := range decl {
		if d.Name != disk {
			continue
		}
		if size <= 0 || size/MaxDiskGrowth > d.Size {
			return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("segment declares disk %s as %d bytes, the machine declared %d (growth is accepted up to %dx)", disk, size, d.Size, MaxDiskGrowth),
				"the segment's header is damaged or forged; a disk that grew is declared again when the agent restarts")
		}
		return nil
	}
	return undeclared(disk, decl)
}

// checkDeclared refuses a disk outside the machine's declared disk set
// (none declared yet: any).
func (p *Role) checkDeclared(machine, disk string) error {
	decl := p.machines.Disks(machine)
	if len(decl) == 0 {
		return nil
	}
	for _, d := range decl {
		if d.Name == disk {
			return nil
		}
	}
	return undeclared(disk, decl)
}

func undeclared(disk string, decl []api.DiskSpec) error {
	names := make([]string, len(decl))
	for i, d := range decl {
		names[i] = d.Name
	}
	return httpapi.Errorf(http.StatusConflict, fmt.Sprintf("disk %s is not in the machine's disk set (%s)", disk, strings.Join(names, ", ")),
		"the agent declares its disks when it starts (PUT /v1/machine): restart it with the disk among its --disk flags, or send only declared disks")
}
