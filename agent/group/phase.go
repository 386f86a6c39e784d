package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Local is this machine's part of a group point, as the agent runs it
// (its freezing phases, docs/ARCHITECTURE.md §4).
type Local interface {
	// Prepare runs the pre-scripts, flushes and drains what is dirty.
	Prepare(ctx context.Context) error
	// Freeze freezes the filesystems; on error none stays frozen.
	Freeze() error
	// Cut cuts the tracker and reads what the freeze flushed.
	Cut(ctx context.Context) error
	// Thaw thaws (if frozen) and runs the post-scripts of what ran, once;
	// it is also how a point is abandoned at any phase.
	Thaw(ctx context.Context) error
	// Validate runs the round that validates what was read while frozen:
	// it calls decide with whether that is valid, and if decide returns
	// true (the group commits) writes the point and tells written how
	// that went. Its error is the round's.
	Validate(ctx context.Context, decide func(valid bool) bool, written func(p api.AgentPoint, err error)) error
}

// PhaseConnect is the phase of a coordinator connecting to the members,
// before prepare.
const PhaseConnect = "connect"

// PhaseError is a group point that failed at Phase, on Members.
type PhaseError struct {
	// Phase is an api.GroupOp* operation, or PhaseConnect.
	Phase string
	// Members are the machines that failed, sorted (the coordinator
	// included when its own part failed).
	Members []string
	// Err says what went wrong on each, one "machine: error" a line.
	Err error
}

func (e *PhaseError) Error() string { return "failed at " + e.Phase + ": " + e.Err.Error() }
func (e *PhaseError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *PhaseError) Hint() string {
	if e.Phase == PhaseConnect {
		return "check that every member's agent runs with --group-listen and that the coordinator reaches that address (lifeboat group show GROUP)"
	}
	return fmt.Sprintf("see the agents' logs on %v; replication goes on and the next group point is tried at the next interval", e.Members)
}

// Failure is one member's failure of a phase; Err is reported as it is.
type Failure struct {
	Member string
	Err    error
}

// failure is a member's failure reported as "member: err".
func failure(member string, err error) Failure {
	return Failure{Member: member, Err: fmt.Errorf("%s: %w", member, err)}
}

// phaseError returns the failures of a phase as a *PhaseError, nil if
// there are none.
func phaseError(phase string, fs []Failure) *PhaseError {
	if len(fs) == 0 {
		return nil
	}
	e := &PhaseError{Phase: phase}
	var errs []error
	for _, f := range fs {
		e.Members = append(e.Members, f.Member)
		errs = append(errs, f.Err)
	}
	slices.Sort(e.Members)
	e.Err = errors.Join(errs...)
	return e
}

// Answers are the members' answers to one phase, coming in.
type Answers struct {
	phase string
	n     int
	ch    chan Failure // Err nil: the member answered ok
}

// Ask sends req to every peer and collects their answers in the
// background, each until timeout: the one broadcast of every phase.
func Ask(peers []*Conn, req api.GroupMessage, timeout time.Duration) *Answers {
	deadline := time.Now().Add(timeout)
	a := &Answers{phase: req.Op, n: len(peers), ch: make(chan Failure, len(peers))}
	for _, p := range peers {
		go func() {
			err := p.Send(req, deadline)
			if err == nil {
				var m api.GroupMessage
				m, err = p.Recv(deadline)
				if err == nil && (m.Op != req.Op || !m.OK) {
					err = fmt.Errorf("%s: %s", req.Op, m.Error)
				}
			}
			if err != nil {
				a.ch <- failure(p.Peer, err)
				return
			}
			a.ch <- Failure{Member: p.Peer}
		}()
	}
	return a
}

// Collect waits for every answer and returns the phase's failures, those
// given (this machine's) first; nil if every member answered ok.
func (a *Answers) Collect(local ...Failure) *PhaseError {
	fs := local
	for range a.n {
		if f := <-a.ch; f.Err != nil {
			fs = append(fs, f)
		}
	}
	return phaseError(a.phase, fs)
}

// Tell sends req to every peer without waiting for answers (abort).
func Tell(peers []*Conn, req api.GroupMessage, deadline time.Time) {
	for _, p := range peers {
		p.Send(req, deadline)
	}
}
